// Trusted time: RFC 3161 time-stamp tokens over checkpoints (with RFC 5816's ESSCertIDv2).
//
// What is stamped: the SHA-256 of the signed checkpoint file exactly as stored
// (checkpoints/<size>), so a token dates that note, its signature included.
// What a token must satisfy here (fail closed, RFC 3161 §2.4.2, RFC 5652 §5.4):
//   - a CMS SignedData of one SignerInfo over an id-ct-TSTInfo, with signed attributes whose
//     content-type is id-ct-TSTInfo and whose message-digest is the digest of the TSTInfo;
//   - the TSTInfo's message imprint equals SHA-256/384/512 of the checkpoint bytes;
//   - an ESS signing-certificate attribute (v2, or v1) naming the signer certificate by hash;
//   - the signer certificate is one of the pinned TSA certificates, or is issued directly by one of
//     them (a pinned CA); it has the one critical extended key usage id-kp-timeStamping; genTime
//     lies in its validity (and the issuer's);
//   - the signature over the signed attributes verifies with the signer certificate's key.
//
// DER is parsed and built with @peculiar/asn1-* (typed schemas for TSP, CMS and X.509) and asn1js
// (for the two ESS attributes the schemas lack); signatures and certificate links are checked with
// node:crypto, synchronously, so bundle verification stays synchronous.
import { X509Certificate, createHash, randomBytes, verify as cryptoVerify } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { SignerInfo, id_signedData, type SignedData } from '@peculiar/asn1-cms';
import { AlgorithmIdentifier, Certificate, ExtendedKeyUsage, id_ce_extKeyUsage, id_kp_timeStamping } from '@peculiar/asn1-x509';
import { MessageImprint, PKIStatusInfo, TimeStampReq, TSTInfo, id_ct_tstInfo } from '@peculiar/asn1-tsp';
import * as asn1js from 'asn1js';

export class TsaError extends Error {
  override readonly name = 'TsaError';
}

const DIGESTS: Readonly<Record<string, 'sha256' | 'sha384' | 'sha512'>> = {
  '2.16.840.1.101.3.4.2.1': 'sha256', '2.16.840.1.101.3.4.2.2': 'sha384', '2.16.840.1.101.3.4.2.3': 'sha512',
};
const OID_SHA256 = '2.16.840.1.101.3.4.2.1';
const OID_SHA1 = '1.3.14.3.2.26';
const OID_CONTENT_TYPE = '1.2.840.113549.1.9.3';
const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';
const OID_SIGNING_CERTIFICATE = '1.2.840.113549.1.9.16.2.12';
const OID_SIGNING_CERTIFICATE_V2 = '1.2.840.113549.1.9.16.2.47';
// Signature algorithms: the hash node:crypto.verify is given (undefined: the key type implies it).
const SIGNATURE_ALGS: Readonly<Record<string, 'sha256' | 'sha384' | 'sha512' | 'digest' | 'none'>> = {
  '1.2.840.113549.1.1.1': 'digest', // rsaEncryption: PKCS#1 v1.5 with the SignerInfo's digest
  '1.2.840.113549.1.1.11': 'sha256', '1.2.840.113549.1.1.12': 'sha384', '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256', '1.2.840.10045.4.3.3': 'sha384', '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.10045.2.1': 'digest', // id-ecPublicKey as signature algorithm (seen in the wild)
  '1.3.101.112': 'none', // Ed25519
};

const ab = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
const buf = (a: ArrayBuffer | ArrayBufferView): Buffer => (ArrayBuffer.isView(a) ? Buffer.from(a.buffer, a.byteOffset, a.byteLength) : Buffer.from(a));

/** The imprint a checkpoint gets: SHA-256 of its stored bytes. */
export const checkpointImprint = (checkpointBytes: Uint8Array): Buffer => createHash('sha256').update(checkpointBytes).digest();

/** DER TimeStampReq (v1) for SHA-256(data), asking for the TSA's certificate in the token. */
export function buildTimeStampRequest(data: Uint8Array, nonce: Uint8Array = randomBytes(8)): Buffer {
  const req = new TimeStampReq({
    messageImprint: new MessageImprint({ hashAlgorithm: new AlgorithmIdentifier({ algorithm: OID_SHA256, parameters: null }), hashedMessage: new OctetString(checkpointImprint(data)) }),
    nonce: ab(positiveInteger(nonce)),
    certReq: true,
  });
  return buf(AsnConvert.serialize(req));
}

/** A DER INTEGER's content must be positive: prefix 0x00 when the top bit is set. */
/**
 * The DER content octets of the non-negative INTEGER whose big-endian bytes are `b`: minimal (DER
 * forbids leading zero octets; OpenSSL refuses them as illegal padding, so a random nonce starting
 * with 0x00 and a byte below 0x80 got a TSA's "bad request format", 1 request in 512), with one
 * zero octet added when the high bit would make it negative.
 */
function positiveInteger(b: Uint8Array): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const x = Buffer.from(b.subarray(i));
  if (x.length === 0) return Buffer.from([0]);
  return x[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), x]) : x;
}

export interface ParsedResponse { status: number; statusText: string; failInfo?: string; token?: Buffer }

/** Parse a DER TimeStampResp; the token is returned as its exact DER bytes (a ContentInfo). */
export function parseTimeStampResponse(der: Uint8Array): ParsedResponse {
  // TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken OPTIONAL }: the status is parsed
  // with its schema; the token is kept as its own bytes (verified separately, never re-encoded).
  const parsed = asn1js.fromBER(der);
  const seq = parsed.result;
  if (parsed.offset === -1 || parsed.offset !== der.byteLength || !(seq instanceof asn1js.Sequence) || seq.valueBlock.value.length < 1 || seq.valueBlock.value.length > 2) {
    throw new TsaError('time-stamp response is not DER TimeStampResp');
  }
  let info: PKIStatusInfo;
  try { info = AsnConvert.parse(seq.valueBlock.value[0]!.valueBeforeDecodeView, PKIStatusInfo); } catch (e) { throw new TsaError(`time-stamp response status is malformed: ${(e as Error).message}`); }
  const status = info.status as number;
  const statusText = (info.statusString ?? []).map((s) => String(s)).join('; ');
  const tokenBlock = seq.valueBlock.value[1];
  if (!tokenBlock) return { status, statusText, ...(info.failInfo ? { failInfo: String(info.failInfo) } : {}) };
  return { status, statusText, token: Buffer.from(tokenBlock.valueBeforeDecodeView) };
}

export interface TokenInfo {
  genTime: Date;
  /** SHA-256 fingerprint (hex, lowercase) of the pinned certificate that vouches for the token. */
  trustedCertSha256: string;
  signerSubject: string;
  serialHex: string;
  policy: string;
  nonce?: Buffer;
}

export type TokenVerdict = { ok: true; info: TokenInfo } | { ok: false; detail: string };

interface Pinned { x509: X509Certificate; der: Buffer; sha256: string }

/** Parse PEM (or DER) certificates; throws TsaError naming the problem. */
export function parseCertificates(pems: readonly string[]): X509Certificate[] {
  return pems.map((p, i) => {
    try { return new X509Certificate(p); } catch (e) { throw new TsaError(`TSA certificate ${i + 1} is not a PEM X.509 certificate: ${(e as Error).message}`); }
  });
}

const pin = (x: X509Certificate): Pinned => ({ x509: x, der: x.raw, sha256: createHash('sha256').update(x.raw).digest('hex') });

/** Verify one token over `data` against the pinned TSA certificates (never throws). */
export function verifyTimeStampToken(token: Uint8Array, data: Uint8Array, trusted: readonly (string | X509Certificate)[], opts: { nonce?: Uint8Array } = {}): TokenVerdict {
  try {
    return { ok: true, info: verifyOrThrow(token, data, trusted.map((t) => pin(typeof t === 'string' ? parseCertificates([t])[0]! : t)), opts) };
  } catch (e) {
    return { ok: false, detail: e instanceof TsaError ? e.message : `malformed token: ${(e as Error).message}` };
  }
}

function verifyOrThrow(token: Uint8Array, data: Uint8Array, trusted: readonly Pinned[], opts: { nonce?: Uint8Array }): TokenInfo {
  if (trusted.length === 0) throw new TsaError('no TSA certificate is trusted');
  // The structure is walked once with asn1js (keeping exact bytes); the typed schemas parse the parts.
  const raw = rawParts(token);
  if (raw.contentType !== id_signedData) throw new TsaError(`token content type is ${raw.contentType}, not SignedData`);
  if (raw.eContentType !== id_ct_tstInfo) throw new TsaError(`token encapsulates ${raw.eContentType}, not id-ct-TSTInfo`);
  const tstBytes = raw.eContent;
  const tst = AsnConvert.parse(tstBytes, TSTInfo);

  // The message imprint: the checkpoint's digest.
  const imprintAlg = DIGESTS[tst.messageImprint.hashAlgorithm.algorithm] ?? fail(`message imprint algorithm ${tst.messageImprint.hashAlgorithm.algorithm} is not SHA-256/384/512`);
  const expected = createHash(imprintAlg).update(data).digest();
  if (!expected.equals(buf(tst.messageImprint.hashedMessage.buffer))) throw new TsaError('message imprint does not match the checkpoint (the token dates other data)');
  if (opts.nonce && !positiveInteger(opts.nonce).equals(buf(tst.nonce ?? new ArrayBuffer(0)))) throw new TsaError('token nonce differs from the request');

  if (raw.signerInfos.length !== 1) throw new TsaError(`token has ${raw.signerInfos.length} signers, expected 1`);
  const si = AsnConvert.parse(raw.signerInfos[0]!, SignerInfo);
  const digestAlg = DIGESTS[si.digestAlgorithm.algorithm] ?? fail(`signer digest algorithm ${si.digestAlgorithm.algorithm} is not SHA-256/384/512`);
  const attrs = si.signedAttrs ?? fail('token signer has no signed attributes');
  const attr = (oid: string): ArrayBuffer | undefined => {
    const found = attrs.filter((a) => a.attrType === oid);
    if (found.length > 1 || (found[0] && found[0].attrValues.length !== 1)) throw new TsaError(`signed attribute ${oid} must occur once with one value`);
    return found[0]?.attrValues[0];
  };
  const ct = attr(OID_CONTENT_TYPE) ?? fail('signed attributes lack content-type');
  const ctValue = asn1js.fromBER(ct).result;
  if (!(ctValue instanceof asn1js.ObjectIdentifier) || ctValue.valueBlock.toString() !== id_ct_tstInfo) throw new TsaError('signed content-type attribute is not id-ct-TSTInfo');
  const md = attr(OID_MESSAGE_DIGEST) ?? fail('signed attributes lack message-digest');
  const mdValue = asn1js.fromBER(md).result;
  if (!(mdValue instanceof asn1js.OctetString) || !createHash(digestAlg).update(tstBytes).digest().equals(Buffer.from(mdValue.valueBlock.valueHexView))) {
    throw new TsaError('signed message-digest does not match the TSTInfo (content altered)');
  }

  // The signer certificate: named by hash in the ESS signing-certificate attribute.
  const ess = essCertId(attr(OID_SIGNING_CERTIFICATE_V2), attr(OID_SIGNING_CERTIFICATE));
  const named = (d: Buffer): boolean => createHash(ess.alg).update(d).digest().equals(ess.hash);
  const signerDer = trusted.map((t) => t.der).find(named) ?? raw.certificates.find(named)
    ?? fail('the signer certificate named by the ESS signing-certificate attribute is neither pinned nor in the token');
  const signerInfo = certInfo(signerDer);
  const signer = signerInfo.x509;
  checkSid(si.sid, signerInfo);
  if (signerInfo.ekuProblem) throw new TsaError(signerInfo.ekuProblem);
  const genTime = tst.genTime;
  within(signer, genTime, 'TSA certificate');
  const direct = trusted.find((t) => t.der.equals(signerDer));
  let anchor: Pinned;
  if (direct) anchor = direct;
  else {
    const issuer = trusted.find((t) => t.x509.ca && signer.checkIssued(t.x509) && signer.verify(t.x509.publicKey));
    if (!issuer) throw new TsaError(`TSA certificate "${signer.subject.replace(/\n/g, ', ')}" is not pinned and not issued by a pinned certificate`);
    within(issuer.x509, genTime, 'TSA issuer certificate');
    anchor = issuer;
  }

  // The signature over the DER of the signed attributes (SET OF, tag 0x31, not the [0] of the SignerInfo).
  const signedAttrs = Buffer.from(raw.signedAttrs);
  signedAttrs[0] = 0x31;
  const sigAlg = SIGNATURE_ALGS[si.signatureAlgorithm.algorithm] ?? fail(`signature algorithm ${si.signatureAlgorithm.algorithm} is not supported`);
  const hash = sigAlg === 'digest' ? digestAlg : sigAlg === 'none' ? null : sigAlg;
  const ok = cryptoVerify(hash, signedAttrs, signer.publicKey, buf(si.signature.buffer));
  if (!ok) throw new TsaError('the TSA signature over the token does not verify');
  return {
    genTime, trustedCertSha256: anchor.sha256, signerSubject: signer.subject.replace(/\n/g, ', '), serialHex: buf(tst.serialNumber).toString('hex'),
    policy: tst.policy, ...(tst.nonce ? { nonce: buf(tst.nonce) } : {}),
  };
}

function fail(detail: string): never { throw new TsaError(detail); }

/**
 * Bytes exactly as encoded in the token: the signed attributes ([0] IMPLICIT SET OF Attribute of
 * the one SignerInfo) and the certificates ([0] IMPLICIT of SignedData). The schema parser keeps
 * no raw bytes for repeated fields (and re-encoding is not guaranteed byte-exact), so asn1js walks
 * ContentInfo → [0] → SignedData.
 */
interface RawToken { contentType: string; eContentType: string; eContent: Buffer; signerInfos: Uint8Array[]; signedAttrs: Uint8Array; certificates: Buffer[] }
function rawParts(token: Uint8Array): RawToken {
  const parsed = asn1js.fromBER(token);
  if (parsed.offset === -1 || parsed.offset !== token.byteLength) throw new TsaError('token is not one DER ContentInfo');
  const ci = parsed.result;
  const ctOid = ci instanceof asn1js.Sequence ? ci.valueBlock.value[0] : undefined;
  const explicit = ci instanceof asn1js.Sequence ? (ci.valueBlock.value[1] as asn1js.Constructed | undefined) : undefined;
  if (!(ctOid instanceof asn1js.ObjectIdentifier) || !explicit || explicit.idBlock.tagClass !== 3 || explicit.idBlock.tagNumber !== 0) throw new TsaError('token is not a CMS ContentInfo');
  const sd = explicit.valueBlock.value[0];
  if (!(sd instanceof asn1js.Sequence) || sd.valueBlock.value.length < 4) throw new TsaError('token content is not a SignedData');
  const parts = sd.valueBlock.value;
  const encap = parts[2];
  const eType = encap instanceof asn1js.Sequence ? encap.valueBlock.value[0] : undefined;
  const eWrap = encap instanceof asn1js.Sequence ? (encap.valueBlock.value[1] as asn1js.Constructed | undefined) : undefined;
  const eOctets = eWrap?.valueBlock.value?.[0];
  if (!(eType instanceof asn1js.ObjectIdentifier) || !(eOctets instanceof asn1js.OctetString) || eOctets.idBlock.isConstructed) throw new TsaError('token has no TSTInfo content (DER OCTET STRING)');
  const infos = parts[parts.length - 1];
  if (!(infos instanceof asn1js.Set)) throw new TsaError('token has no SignerInfos');
  const si = infos.valueBlock.value[0];
  const attrs = si instanceof asn1js.Sequence ? si.valueBlock.value.find((b) => b.idBlock.tagClass === 3 && b.idBlock.tagNumber === 0) : undefined;
  if (!attrs) throw new TsaError('token signer has no signed attributes');
  const certs = parts.find((b) => b.idBlock.tagClass === 3 && b.idBlock.tagNumber === 0) as asn1js.Constructed | undefined;
  return {
    contentType: ctOid.valueBlock.toString(), eContentType: eType.valueBlock.toString(), eContent: Buffer.from(eOctets.valueBlock.valueHexView),
    signerInfos: infos.valueBlock.value.map((x) => x.valueBeforeDecodeView), signedAttrs: attrs.valueBeforeDecodeView,
    certificates: (certs?.valueBlock.value ?? []).filter((c) => c instanceof asn1js.Sequence).map((c) => Buffer.from(c.valueBeforeDecodeView)),
  };
}

interface CertInfo { x509: X509Certificate; serial: Buffer; issuerDer: Buffer; ski: Buffer | undefined; ekuProblem: string | undefined }
// The same few TSA certificates come back in every token: parse and check each once.
const certCache = new Map<string, CertInfo>();
function certInfo(der: Buffer): CertInfo {
  const key = createHash('sha256').update(der).digest('hex');
  let c = certCache.get(key);
  if (c) return c;
  const cert = AsnConvert.parse(der, Certificate);
  const ski = cert.tbsCertificate.extensions?.find((e) => e.extnID === '2.5.29.14');
  c = {
    x509: new X509Certificate(der), serial: buf(cert.tbsCertificate.serialNumber), issuerDer: buf(AsnConvert.serialize(cert.tbsCertificate.issuer)),
    ski: ski ? Buffer.from((asn1js.fromBER(buf(ski.extnValue.buffer)).result as asn1js.OctetString).valueBlock.valueHexView) : undefined,
    ekuProblem: timeStampingEkuProblem(cert),
  };
  if (certCache.size >= 64) certCache.delete(certCache.keys().next().value!);
  certCache.set(key, c);
  return c;
}

function within(c: X509Certificate, t: Date, what: string): void {
  if (t.getTime() < Date.parse(c.validFrom) || t.getTime() > Date.parse(c.validTo)) throw new TsaError(`${what} is not valid at the token's time ${t.toISOString()} (valid ${c.validFrom} to ${c.validTo})`);
}

/** The certificate hash from SigningCertificateV2 (RFC 5035/5816) or SigningCertificate (RFC 2634). */
function essCertId(v2: ArrayBuffer | undefined, v1: ArrayBuffer | undefined): { alg: string; hash: Buffer } {
  const first = (der: ArrayBuffer): asn1js.Sequence => {
    const sc = asn1js.fromBER(der).result as asn1js.Sequence;
    const certs = sc.valueBlock?.value?.[0] as asn1js.Sequence | undefined;
    const id = certs?.valueBlock?.value?.[0] as asn1js.Sequence | undefined;
    if (!(sc instanceof asn1js.Sequence) || !(certs instanceof asn1js.Sequence) || !(id instanceof asn1js.Sequence)) throw new TsaError('ESS signing-certificate attribute is malformed');
    return id;
  };
  if (v2) {
    const id = first(v2);
    let i = 0;
    let alg = 'sha256'; // ESSCertIDv2.hashAlgorithm DEFAULT id-sha256
    const head = id.valueBlock.value[0];
    if (head instanceof asn1js.Sequence) {
      const oid = (head.valueBlock.value[0] as asn1js.ObjectIdentifier).valueBlock.toString();
      alg = DIGESTS[oid] ?? fail(`ESSCertIDv2 hash algorithm ${oid} is not SHA-256/384/512`);
      i = 1;
    }
    const h = id.valueBlock.value[i];
    if (!(h instanceof asn1js.OctetString)) throw new TsaError('ESSCertIDv2 has no certificate hash');
    return { alg, hash: Buffer.from(h.valueBlock.valueHexView) };
  }
  if (v1) {
    const h = first(v1).valueBlock.value[0];
    if (!(h instanceof asn1js.OctetString)) throw new TsaError('ESSCertID has no certificate hash');
    return { alg: 'sha1', hash: Buffer.from(h.valueBlock.valueHexView) };
  }
  throw new TsaError('signed attributes lack the ESS signing-certificate attribute (RFC 3161 §2.4.1)');
}

/** The SignerInfo's sid must name the certificate the ESS attribute names. */
function checkSid(sid: SignedData['signerInfos'][number]['sid'], cert: CertInfo): void {
  if (sid.issuerAndSerialNumber) {
    const same = buf(sid.issuerAndSerialNumber.serialNumber).equals(cert.serial)
      && buf(AsnConvert.serialize(sid.issuerAndSerialNumber.issuer)).equals(cert.issuerDer);
    if (!same) throw new TsaError('the SignerInfo names another certificate than the ESS signing-certificate attribute');
    return;
  }
  if (sid.subjectKeyIdentifier) {
    if (!cert.ski || !cert.ski.equals(buf(sid.subjectKeyIdentifier.buffer))) throw new TsaError('the SignerInfo key identifier does not match the signer certificate');
    return;
  }
  throw new TsaError('the SignerInfo has no signer identifier');
}

/** RFC 3161 §2.3: exactly one extended key usage, id-kp-timeStamping, marked critical. */
function timeStampingEkuProblem(cert: Certificate): string | undefined {
  const eku = cert.tbsCertificate.extensions?.find((e) => e.extnID === id_ce_extKeyUsage);
  if (!eku) return 'TSA certificate has no extended key usage (needs critical id-kp-timeStamping)';
  if (!eku.critical) return 'TSA certificate extended key usage is not critical';
  const usages = AsnConvert.parse(eku.extnValue.buffer, ExtendedKeyUsage);
  if (usages.length !== 1 || usages[0] !== id_kp_timeStamping) return `TSA certificate extended key usage must be only id-kp-timeStamping (has ${[...usages].join(', ')})`;
  return undefined;
}

// ---- the k-of-n policy --------------------------------------------------------------------------

export interface TsaPolicy { k: number; certificates: readonly string[] }

export type TsaPolicyVerdict =
  | { ok: true; stampedBy: { trustedCertSha256: string; genTime: Date }[] }
  | { ok: false; reason: 'invalid' | 'unmet' | 'malformed'; detail: string };

/**
 * Check a checkpoint's tokens: every token present must verify against the pinned certificates
 * (a token that does not is a failure, not something to skip); k distinct pinned certificates
 * must vouch for one.
 */
export function checkTsaPolicy(checkpointBytes: Uint8Array, tokens: readonly Uint8Array[], policy: TsaPolicy): TsaPolicyVerdict {
  if (!Number.isSafeInteger(policy.k) || policy.k < 0) return { ok: false, reason: 'malformed', detail: `TSA policy k must be a non-negative integer (got ${policy.k})` };
  let certs: X509Certificate[];
  try { certs = parseCertificates(policy.certificates); } catch (e) { return { ok: false, reason: 'malformed', detail: (e as Error).message }; }
  if (policy.k > certs.length) return { ok: false, reason: 'malformed', detail: `TSA policy needs ${policy.k} of ${certs.length} TSAs` };
  const by = new Map<string, Date>();
  for (const [i, t] of tokens.entries()) {
    const v = verifyTimeStampToken(t, checkpointBytes, certs);
    if (!v.ok) return { ok: false, reason: 'invalid', detail: `token ${i + 1}: ${v.detail}` };
    if (!by.has(v.info.trustedCertSha256)) by.set(v.info.trustedCertSha256, v.info.genTime);
  }
  if (by.size < policy.k) return { ok: false, reason: 'unmet', detail: `${by.size} of the required ${policy.k} time-stamp tokens from trusted TSAs` };
  return { ok: true, stampedBy: [...by].map(([trustedCertSha256, genTime]) => ({ trustedCertSha256, genTime })) };
}

// ---- the client ---------------------------------------------------------------------------------

export interface TsaConfig { url: string; certificates: readonly string[] }

/** Requests tokens from one TSA (RFC 3161 §3.4, HTTP) and keeps only tokens that verify against its pinned certificate(s). */
export class TsaClient {
  readonly url: string;
  private readonly certs: X509Certificate[];

  constructor(cfg: TsaConfig, private readonly timeoutMs = 10_000) {
    this.url = cfg.url;
    this.certs = parseCertificates(cfg.certificates);
    if (this.certs.length === 0) throw new TsaError('the TSA needs at least one pinned certificate');
  }

  async timestamp(data: Uint8Array): Promise<{ token: Buffer; info: TokenInfo }> {
    const nonce = randomBytes(8);
    let res: Response;
    try {
      res = await fetch(this.url, { method: 'POST', headers: { 'content-type': 'application/timestamp-query' }, body: buildTimeStampRequest(data, nonce), signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (e) { throw new TsaError(`TSA ${this.url} unreachable: ${(e as Error).message}`); }
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) throw new TsaError(`TSA ${this.url} answered ${res.status}`);
    const parsed = parseTimeStampResponse(body);
    if ((parsed.status !== 0 && parsed.status !== 1) || !parsed.token) throw new TsaError(`TSA ${this.url} refused: status ${parsed.status}${parsed.statusText ? ` (${parsed.statusText})` : ''}`);
    const v = verifyTimeStampToken(parsed.token, data, this.certs, { nonce });
    if (!v.ok) throw new TsaError(`TSA ${this.url} returned a token that does not verify: ${v.detail}`);
    return { token: parsed.token, info: v.info };
  }
}
