// RFC 3161 against a real TSA (Debian's `openssl ts -reply` run by the test): our requests get
// tokens, the tokens verify (and `openssl ts -verify` agrees), and each kind of wrong token fails
// with a reason that names the rule.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AsnConvert } from '@peculiar/asn1-schema';
import { TimeStampReq } from '@peculiar/asn1-tsp';
import { buildTimeStampRequest, checkTsaPolicy, checkpointImprint, parseTimeStampResponse, TsaClient, verifyTimeStampToken } from '../../processors/evidence/tsa.ts';
import { opensslVerifyToken, startOpensslTsa, type RunningTsa } from './peers.ts';

const checkpoint = Buffer.from('stella-telemetry.example/tenants/acme\n42\nq7oD5Ow8nPAlVQfpZ2lXfbVlTt5JQeo39lIrZ4EBCtc=\n\n\u2014 stella-telemetry.example/tenants/acme AAAA\n');

let tsa: RunningTsa;
let other: RunningTsa;
beforeAll(async () => { [tsa, other] = await Promise.all([startOpensslTsa('Test TSA'), startOpensslTsa('Other TSA')]); }, 60_000);
afterAll(async () => { await tsa?.stop(); await other?.stop(); });

describe('RFC 3161 with a real openssl TSA', () => {
  it('builds a v1 request over SHA-256 of the checkpoint with a nonce and certReq', () => {
    const req = AsnConvert.parse(buildTimeStampRequest(checkpoint, Buffer.from('0102030405060708', 'hex')), TimeStampReq);
    expect(req.version).toBe(1);
    expect(req.messageImprint.hashAlgorithm.algorithm).toBe('2.16.840.1.101.3.4.2.1');
    expect(Buffer.from(req.messageImprint.hashedMessage.buffer)).toEqual(checkpointImprint(checkpoint));
    expect(Buffer.from(req.nonce!).toString('hex')).toBe('0102030405060708');
    expect(req.certReq).toBe(true);
  });

  it('nonces are minimal DER INTEGERs: ones a random draw can start with (0x00, 0x00 0x00, high bit set, all zero) are granted by openssl and verify', async () => {
    for (const hex of ['0012345678abcdef', '00003456789abcde', '00ff000000000001', '8000000000000000', '0000000000000000']) {
      const nonce = Buffer.from(hex, 'hex');
      const req = AsnConvert.parse(buildTimeStampRequest(checkpoint, nonce), TimeStampReq);
      const content = Buffer.from(req.nonce!);
      expect(content.length === 1 || !(content[0] === 0 && content[1]! < 0x80), hex).toBe(true); // no leading zero octet DER forbids
      const res = await fetch(`${tsa.url}`, { method: 'POST', headers: { 'content-type': 'application/timestamp-query' }, body: buildTimeStampRequest(checkpoint, nonce) });
      const parsed = parseTimeStampResponse(Buffer.from(await res.arrayBuffer()));
      expect(parsed.status, `${hex}: ${parsed.statusText}`).toBe(0);
      expect(verifyTimeStampToken(parsed.token!, checkpoint, [tsa.tsaCertPem], { nonce }).ok, hex).toBe(true);
    }
  });

  it('gets a token that verifies against the pinned TSA certificate, and against its CA; openssl ts -verify agrees', async () => {
    const c = new TsaClient({ url: tsa.url, certificates: [tsa.tsaCertPem] });
    const { token, info } = await c.timestamp(checkpoint);
    expect(Math.abs(info.genTime.getTime() - Date.now())).toBeLessThan(60_000);
    expect(info.policy).toBe('1.3.6.1.4.1.55555.1');
    const byLeaf = verifyTimeStampToken(token, checkpoint, [tsa.tsaCertPem]);
    expect(byLeaf.ok, JSON.stringify(byLeaf)).toBe(true);
    const byCa = verifyTimeStampToken(token, checkpoint, [tsa.caCertPem]);
    expect(byCa.ok, JSON.stringify(byCa)).toBe(true);
    const [ok, out] = opensslVerifyToken(tsa, token, checkpoint);
    expect(ok, out).toBe(true);
    expect(checkTsaPolicy(checkpoint, [token], { k: 1, certificates: [tsa.tsaCertPem] }).ok).toBe(true);
  });

  it('a token over another digest fails (ours and openssl agree)', async () => {
    const c = new TsaClient({ url: tsa.url, certificates: [tsa.tsaCertPem] });
    const { token } = await c.timestamp(checkpoint);
    const otherCheckpoint = Buffer.from(checkpoint.toString().replace('\n42\n', '\n43\n'));
    const v = verifyTimeStampToken(token, otherCheckpoint, [tsa.tsaCertPem]);
    expect(v).toMatchObject({ ok: false, detail: expect.stringContaining('message imprint does not match') });
    expect(opensslVerifyToken(tsa, token, otherCheckpoint)[0]).toBe(false);
    expect(checkTsaPolicy(otherCheckpoint, [token], { k: 1, certificates: [tsa.tsaCertPem] })).toMatchObject({ ok: false, reason: 'invalid' });
  });

  it('a token from another TSA key fails against our pinned TSA (leaf or CA), and its own client refuses to pin the wrong cert', async () => {
    const { token } = await new TsaClient({ url: other.url, certificates: [other.tsaCertPem] }).timestamp(checkpoint);
    expect(verifyTimeStampToken(token, checkpoint, [tsa.tsaCertPem])).toMatchObject({ ok: false, detail: expect.stringMatching(/neither pinned nor in the token|not pinned and not issued/) });
    expect(verifyTimeStampToken(token, checkpoint, [tsa.caCertPem])).toMatchObject({ ok: false, detail: expect.stringContaining('not issued by a pinned certificate') });
    expect(checkTsaPolicy(checkpoint, [token], { k: 1, certificates: [tsa.tsaCertPem] })).toMatchObject({ ok: false, reason: 'invalid' });
    await expect(new TsaClient({ url: other.url, certificates: [tsa.tsaCertPem] }).timestamp(checkpoint)).rejects.toThrow(/does not verify/);
  });

  it('a token whose signed content or signature is altered fails', async () => {
    const { token } = await new TsaClient({ url: tsa.url, certificates: [tsa.tsaCertPem] }).timestamp(checkpoint);
    // Flip one byte of the imprint inside the TSTInfo: the signed message-digest no longer matches.
    const imprint = checkpointImprint(checkpoint);
    const at = token.indexOf(imprint);
    expect(at).toBeGreaterThan(0);
    const tampered = Buffer.from(token);
    tampered[at + 5]! ^= 1;
    expect(verifyTimeStampToken(tampered, checkpoint, [tsa.tsaCertPem])).toMatchObject({ ok: false });
    // The signature's last byte (ECDSA DER, inside the SignerInfo at the end of the token).
    const sigFlip = Buffer.from(token);
    const certEnd = sigFlip.length - 3;
    sigFlip[certEnd]! ^= 0x01;
    expect(verifyTimeStampToken(sigFlip, checkpoint, [tsa.tsaCertPem])).toMatchObject({ ok: false, detail: expect.stringContaining('signature') });
  });

  it('k-of-n: one TSA does not satisfy k=2; two distinct TSAs do; an unparsable token is a failure, not skipped', async () => {
    const a = (await new TsaClient({ url: tsa.url, certificates: [tsa.tsaCertPem] }).timestamp(checkpoint)).token;
    const b = (await new TsaClient({ url: other.url, certificates: [other.tsaCertPem] }).timestamp(checkpoint)).token;
    const policy = { k: 2, certificates: [tsa.tsaCertPem, other.tsaCertPem] };
    expect(checkTsaPolicy(checkpoint, [a, a], policy)).toMatchObject({ ok: false, reason: 'unmet' });
    expect(checkTsaPolicy(checkpoint, [a, b], policy).ok).toBe(true);
    expect(checkTsaPolicy(checkpoint, [a, b, Buffer.from('junk')], policy)).toMatchObject({ ok: false, reason: 'invalid' });
    expect(checkTsaPolicy(checkpoint, [], { k: 0, certificates: [] }).ok).toBe(true);
  });

  it('a TSA outage or refusal is a TsaError naming the TSA', async () => {
    await tsa.setDown(true);
    try {
      await expect(new TsaClient({ url: tsa.url, certificates: [tsa.tsaCertPem] }).timestamp(checkpoint)).rejects.toThrow(/answered 503/);
    } finally { await tsa.setDown(false); }
    await expect(new TsaClient({ url: 'http://127.0.0.1:9/tsa', certificates: [tsa.tsaCertPem] }, 2000).timestamp(checkpoint)).rejects.toThrow(/unreachable/);
    expect(() => parseTimeStampResponse(Buffer.from('nope'))).toThrow(/not DER TimeStampResp/);
  });
});
