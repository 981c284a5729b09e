# Independent DSSE signer for the intake tests: Python's `cryptography` Ed25519, PAE written here
# from the DSSE spec (https://github.com/secure-systems-lab/dsse/blob/master/protocol.md), no
# project code. stdin: {"keys": ["<name>", ...], "sign": [{"key", "keyid", "payloadType", "payload_b64"}]}
# stdout: {"keys": {"<name>": "<SPKI PEM>"}, "envelopes": [{payload, payloadType, signatures: [{keyid, sig}]}]}
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

def pae(payload_type: bytes, body: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(body), body)

req = json.load(sys.stdin)
keys = {name: Ed25519PrivateKey.generate() for name in req.get("keys", [])}
out = {"keys": {}, "envelopes": []}
for name, k in keys.items():
    out["keys"][name] = k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
for s in req.get("sign", []):
    body = base64.b64decode(s["payload_b64"])
    sig = keys[s["key"]].sign(pae(s["payloadType"].encode(), body))
    out["envelopes"].append({"payload": base64.b64encode(body).decode(), "payloadType": s["payloadType"],
                             "signatures": [{"keyid": s["keyid"], "sig": base64.b64encode(sig).decode()}]})
json.dump(out, sys.stdout)
