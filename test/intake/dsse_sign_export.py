#!/usr/bin/env python3
"""Independent DSSE signer for orchestrator export tests (Python `cryptography`, not the project's code).

stdin: {"export": {...contract fields...}, "keyid": "...", "seed_hex": "<32-byte Ed25519 seed>"}
stdout: {"envelope": {payload, payloadType, signatures:[{keyid, sig}]}, "public_pem": "..."}

The statement is an in-toto Statement v1 whose subject is the artifact digest and whose predicate
repeats the export's fields except signatures (docs/intake.md "Orchestrator exports").
"""
import base64
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://stella-telemetry.example/orchestrator-export/v1"


def pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 " + str(len(t)).encode() + b" " + t + b" " + str(len(body)).encode() + b" " + body


def main() -> None:
    req = json.load(sys.stdin)
    exp = req["export"]
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(req["seed_hex"]))
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": exp["runId"], "digest": {"sha256": exp["artifactHash"][len("sha256:"):].lower()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {k: v for k, v in exp.items() if k != "signatures"},
    }
    body = json.dumps(statement, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    sig = key.sign(pae(PAYLOAD_TYPE, body))
    env = {"payload": base64.b64encode(body).decode(), "payloadType": PAYLOAD_TYPE,
           "signatures": [{"keyid": req["keyid"], "sig": base64.b64encode(sig).decode()}]}
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    json.dump({"envelope": env, "public_pem": pem}, sys.stdout)


if __name__ == "__main__":
    main()
