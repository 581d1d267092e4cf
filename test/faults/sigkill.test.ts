/**
 * The operator killed with SIGKILL at random points of a publish, 20 times in
 * a row, against the real bed (own bed). Each round changes spec.cacheControl
 * (so both objects must be written again) and, every other round, first
 * deletes both objects (discovery document first, as a careful person would),
 * so the operator has to publish from nothing; then kills the operator after
 * a random delay, records how far the publish got, starts a new operator and
 * waits for it to converge.
 *
 * Meanwhile an anonymous reader polls the public discovery document and the
 * JWKS it names, as a relying party does. It may find no discovery document
 * (the test deleted it), but it must never find one whose JWKS is missing,
 * unparsable, or lacks the key that signs current tokens: the JWKS is always
 * written before the discovery document that points at it, and an S3 PUT
 * replaces an object whole.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { createS3Client } from '../bed/s3.ts';
import { useBed } from '../bed/shared.ts';
import { applyYaml, OperatorProcess, waitForReady } from '../e2e/harness.ts';
import {
  installWithWriter,
  type LogLine,
  patchSpec,
  publisher,
  type StoredObject,
  sleep,
  stored,
} from './helpers.ts';

const NAME = 'killed';
const PREFIX = 'public/cluster-a';
const ROUNDS = 20;
const MAX_KILL_DELAY_MS = 1500;
const ARGS = ['--leader-elect', 'false'];

describe('faults: SIGKILL at random points of a publish', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  let kubeconfig: string;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await op?.stop('SIGTERM');
      },
    },
  );

  before(async () => {
    bed = useOwn();
    kubeconfig = await installWithWriter(bed);
    op = await OperatorProcess.start(bed, kubeconfig, ARGS);
    await applyYaml(bed, publisher(bed, NAME, { prefix: PREFIX }));
    await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
  });

  it(`converges after each of ${ROUNDS} kills; a concurrent reader never sees a discovery document whose JWKS lacks the signing key`, async (t) => {
    const kid = bed.signingKey.kid;
    const base = `${bed.state.s3.endpoint}/${bed.state.s3.bucket}/${PREFIX}`;
    const ca = bed.ca;
    const seen = { reads: 0, complete: 0, absent: 0, violations: [] as string[] };

    const readOnce = async () => {
      const d = await request(`${base}/.well-known/openid-configuration`, { ca }).catch((err: unknown) => ({
        status: -1,
        text: () => String(err),
      }));
      seen.reads++;
      if (d.status === 404) {
        seen.absent++;
        return;
      }
      if (d.status !== 200) {
        seen.violations.push(`discovery document: HTTP ${d.status} ${d.text().slice(0, 100)}`);
        return;
      }
      let doc: { issuer?: string; jwks_uri?: string };
      try {
        doc = JSON.parse(d.text()) as typeof doc;
      } catch {
        seen.violations.push(`discovery document is not JSON: ${d.text().slice(0, 100)}`);
        return;
      }
      if (doc.issuer !== bed.issuer) seen.violations.push(`discovery issuer ${doc.issuer}`);
      const j = await request(String(doc.jwks_uri), { ca });
      if (j.status !== 200) {
        seen.violations.push(`a discovery document was served while its JWKS answered HTTP ${j.status}`);
        return;
      }
      let kids: string[];
      try {
        kids = (JSON.parse(j.text()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
      } catch {
        seen.violations.push(`JWKS is not a key set: ${j.text().slice(0, 100)}`);
        return;
      }
      if (!kids.includes(kid)) seen.violations.push(`JWKS without the signing key ${kid}: ${kids.join(',')}`);
      seen.complete++;
    };

    let stopReading = false;
    let paused = false;
    let inFlight: Promise<void> = Promise.resolve();
    const reader = (async () => {
      while (!stopReading) {
        if (paused) {
          await sleep(10);
          continue;
        }
        inFlight = readOnce();
        await inFlight;
        await sleep(20);
      }
    })();
    /** Runs `fn` while the reader is between reads (so it does not see the test's own deletions half done). */
    const quietly = async (fn: () => Promise<void>) => {
      paused = true;
      await inFlight;
      try {
        await fn();
      } finally {
        paused = false;
      }
    };

    const s3 = createS3Client(bed.state.s3, bed.ca);
    const where = new Map<string, number>();
    const convergeMs: number[] = [];
    const publishMs: number[] = [];
    let killWindow = 600;
    const state = (o: StoredObject | undefined, cc: string) =>
      !o ? 'missing' : o.cacheControl === cc ? 'new' : 'old';
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const current = op;
        assert.ok(current);
        if (round % 2 === 0) {
          await quietly(async () => {
            for (const Key of [`${PREFIX}/.well-known/openid-configuration`, `${PREFIX}/openid/v1/jwks`]) {
              await s3.send(new DeleteObjectCommand({ Bucket: bed.state.s3.bucket, Key }));
            }
          });
        }
        const cc = `public, max-age=${100 + round}`;
        // The kill is timed from the start of `kubectl patch`, not its end: the operator often
        // publishes before kubectl has exited.
        const startedAt = Date.now();
        const patching = patchSpec(bed, NAME, { cacheControl: cc });
        await sleep(Math.floor(Math.random() * killWindow));
        current.child.kill('SIGKILL');
        await current.exited;
        await patching;
        const done = (current.logs() as LogLine[]).find(
          (l) => l.msg === 'published' && Date.parse(l.time ?? '') >= startedAt,
        );
        if (done) {
          // Learn how long a publish takes here. 'published' is logged after the writes, the status and
          // the Events, so kills within that time land before, between and after the two writes.
          publishMs.push(Date.parse(done.time ?? '') - startedAt);
          killWindow = Math.min(MAX_KILL_DELAY_MS, Math.max(150, Math.max(...publishMs)));
        }
        const at = await stored(bed, PREFIX);
        // How far the publish got when it was killed: JWKS/discovery, each missing, old or new.
        const key = `${state(at.jwks, cc)}/${state(at.discovery, cc)}`;
        where.set(key, (where.get(key) ?? 0) + 1);
        const restartAt = Date.now();
        op = await OperatorProcess.start(bed, kubeconfig, ARGS);
        await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
        const now = await stored(bed, PREFIX);
        assert.equal(now.jwks?.cacheControl, cc, `round ${round}: the JWKS is published with ${cc}`);
        assert.equal(now.discovery?.cacheControl, cc, `round ${round}: the discovery document too`);
        assert.ok(now.jwks?.body.includes(kid), `round ${round}: the JWKS holds the signing key`);
        convergeMs.push(Date.now() - restartAt);
      }
      // Let the reader see the final state too.
      await sleep(500);
    } finally {
      stopReading = true;
      await reader;
      s3.destroy();
    }
    const stages = [...where].map(([k, n]) => `${k}: ${n}`).join(', ');
    t.diagnostic(
      `${ROUNDS} kills within ${killWindow} ms of the patch (a publish took ${Math.min(...publishMs)}-${Math.max(...publishMs)} ms from it); state of JWKS/discovery at the kill: ${stages}; converged ${Math.min(...convergeMs)}-${Math.max(...convergeMs)} ms after restart; reader: ${seen.reads} reads, ${seen.complete} complete, ${seen.absent} with no discovery document`,
    );
    assert.deepEqual(seen.violations, [], 'what the anonymous reader must never see');
    assert.ok(seen.complete >= ROUNDS, `the reader completed ${seen.complete} reads`);
  });
});
