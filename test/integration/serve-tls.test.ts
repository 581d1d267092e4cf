/**
 * `oidc-publisher serve` over HTTPS on 127.0.0.1, with certificates from a CA
 * of the test's own in a directory laid out as a mounted Secret: HSTS on every
 * answer, a new certificate served to new connections after the Secret is
 * updated, a pair that does not load leaves the current one served, a file
 * rewritten in place is picked up, and a client that never finishes its TLS
 * handshake is cut at the header deadline.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { request } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { Registry } from 'prom-client';
import { createLogger } from '../../src/log.ts';
import { SERVE_LIMITS } from '../../src/server/http-server.ts';
import { startIssuerServer } from '../../src/server/serve.ts';
import { ServeMetrics } from '../../src/server/serve-metrics.ts';
import { servePaths } from '../../src/server/serve-response.ts';
import { CertificateReloader } from '../../src/server/tls-files.ts';
import { type Ca, createCa, issueCert } from '../bed/pki.ts';
import { SecretVolume } from '../bed/secret-volume.ts';

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  serial: string;
}

/** A GET on a new connection, the chain checked against `ca`. */
function get(port: number, ca: Buffer, path: string, host = 'issuer.example.com'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        ca,
        servername: 'issuer.example.com',
        agent: false,
        headers: { host },
        timeout: 5000,
      },
      (res) => {
        const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, serial }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('serve over HTTPS: HSTS and certificate reload', () => {
  let dir: string;
  let ca: Ca;
  let caPem: Buffer;
  let volume: SecretVolume;
  let server: Server;
  let reloader: CertificateReloader;
  let port: number;
  const metrics = new ServeMetrics(new Registry());
  const logLines: string[] = [];
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write: (c: Buffer, _e, cb) => {
        logLines.push(c.toString());
        cb();
      },
    }),
  });
  let issued = 0;
  const issue = () => {
    issued += 1;
    const files = issueCert(ca, `serving-${issued}`, {
      commonName: 'issuer.example.com',
      serverNames: ['127.0.0.1', 'issuer.example.com'],
    });
    return { 'tls.crt': readFileSync(files.cert), 'tls.key': readFileSync(files.key) };
  };
  const serialOf = (pem: Buffer) => new X509Certificate(pem).serialNumber;
  const metric = async (re: RegExp) => Number(re.exec(await metrics.registry.metrics())?.[1] ?? 0);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'serve-tls-'));
    ca = createCa(dir, 'serve test CA');
    caPem = readFileSync(ca.cert);
    volume = new SecretVolume(join(dir, 'secret'), issue());
    const live: { server?: Server } = {};
    reloader = new CertificateReloader({
      files: { certFile: volume.path('tls.crt'), keyFile: volume.path('tls.key') },
      log,
      metrics: {
        reloaded: (r) => metrics.tlsReloads.labels(r).inc(),
        expiry: (d) => metrics.tlsExpiry.set(d.getTime() / 1000),
      },
      apply: (pair) =>
        (live.server as unknown as { setSecureContext(o: object): void }).setSecureContext({
          cert: pair.cert,
          key: pair.key,
        }),
      debounceMs: 50,
      pollMs: 500,
    });
    server = await startIssuerServer(
      { host: '127.0.0.1', port: 0 },
      {
        publishers: [
          {
            issuer: 'https://issuer.example.com',
            host: 'issuer.example.com',
            paths: servePaths(''),
            documents: () => undefined,
          },
        ],
        metrics,
        tls: { pair: reloader.current, hstsMaxAgeMs: 3_600_000 },
      },
      { ...SERVE_LIMITS, headersTimeoutMs: 800, checkIntervalMs: 200 },
    );
    live.server = server;
    reloader.start();
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    port = address.port;
  });

  after(() => {
    reloader.stop();
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends Strict-Transport-Security on every answer: a document, an unknown host', async () => {
    const doc = await get(port, caPem, '/openid/v1/jwks');
    assert.equal(doc.status, 503, 'nothing held yet');
    assert.equal(doc.headers['strict-transport-security'], 'max-age=3600');
    const other = await get(port, caPem, '/openid/v1/jwks', 'unknown.example.com');
    assert.equal(other.status, 404, 'an unknown host is not served');
    assert.equal(other.headers['strict-transport-security'], 'max-age=3600');
  });

  it('serves a new certificate to new connections once the Secret is updated', async () => {
    const before = (await get(port, caPem, '/')).serial;
    assert.equal(before, reloader.current.serial);
    const next = issue();
    volume.update(next);
    const expected = serialOf(next['tls.crt']);
    const deadline = Date.now() + 5000;
    let seen = before;
    while (seen !== expected && Date.now() < deadline) {
      await sleep(50);
      seen = (await get(port, caPem, '/')).serial;
    }
    assert.equal(seen, expected, 'the new certificate is served');
    assert.equal(await metric(/^oidc_publisher_serve_tls_reloads_total\{result="ok"\} (\d+)$/m), 1);
  });

  it('keeps the current certificate when the new pair does not match, and takes the next good one', async () => {
    const serving = reloader.current.serial;
    const a = issue();
    const b = issue();
    volume.update({ 'tls.crt': a['tls.crt'], 'tls.key': b['tls.key'] });
    const errorsAt = Date.now() + 5000;
    while ((await metric(/^oidc_publisher_serve_tls_reloads_total\{result="error"\} (\d+)$/m)) < 1) {
      assert.ok(Date.now() < errorsAt, 'the bad pair is counted');
      await sleep(50);
    }
    assert.equal((await get(port, caPem, '/')).serial, serving, 'still the previous certificate');
    assert.ok(logLines.some((l) => l.includes('is not the private key of the certificate')));
    volume.update(a);
    const deadline = Date.now() + 5000;
    while ((await get(port, caPem, '/')).serial !== serialOf(a['tls.crt'])) {
      assert.ok(Date.now() < deadline, 'the good pair is taken');
      await sleep(50);
    }
  });

  it('picks up files rewritten in place (no symlink), within a poll', async () => {
    const plain = join(dir, 'plain');
    const first = issue();
    writeFileSync(`${plain}.crt`, first['tls.crt']);
    writeFileSync(`${plain}.key`, first['tls.key']);
    const served: string[] = [];
    const r = new CertificateReloader({
      files: { certFile: `${plain}.crt`, keyFile: `${plain}.key` },
      log,
      metrics: { reloaded: () => {}, expiry: () => {} },
      apply: (pair) => served.push(pair.serial),
      pollMs: 100,
      debounceMs: 20,
    });
    r.start();
    try {
      const second = issue();
      // Certificate first, key a moment later: in between the pair does not match.
      writeFileSync(`${plain}.crt`, second['tls.crt']);
      await sleep(150);
      writeFileSync(`${plain}.key`, second['tls.key']);
      const deadline = Date.now() + 3000;
      while (served.length === 0 && Date.now() < deadline) await sleep(20);
      assert.deepEqual(served, [serialOf(second['tls.crt'])]);
    } finally {
      r.stop();
    }
  });

  it('cuts a client that connects and never completes its TLS handshake, at the header deadline', async () => {
    const t0 = Date.now();
    const closedAfter = await new Promise<number>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.on('close', () => resolve(Date.now() - t0));
      setTimeout(() => {
        s.destroy();
        resolve(-1);
      }, 5000);
    });
    assert.ok(
      closedAfter > 0 && closedAfter < 2500,
      `closed after ${closedAfter} ms (header deadline 800 ms)`,
    );
  });
});
