/**
 * Credentials in a kubeconfig's server URL (`https://user:password@host`), through the real
 * operator against the bed's real API server: Node would send them as basic authentication, and
 * every message naming the server (conditions, Events, logs) would show them. A kubeconfig Secret
 * with them is refused with KubeconfigRefused, and the password appears nowhere the operator
 * writes; the operator's own kubeconfig with them stops it at start, without echoing them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Bed } from '../bed/bed.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  installOperator,
  OPERATOR_NAMESPACE,
  OperatorProcess,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const NAME = 'kubeconfig-server-url';
const PASSWORD = 's3cret-in-the-url';

describe('a kubeconfig whose server URL carries a user name and password', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  let tmp: string;
  const useShared = useBed(undefined, {
    beforeStop: async () => {
      await op?.stop('SIGTERM');
    },
  });
  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** The bed API server's URL with a user name and password in it. */
  const withCredentials = () => bed.apiserverURL.replace('https://', `https://admin:${PASSWORD}@`);

  async function secret(name: string, data: Record<string, string>): Promise<void> {
    await applyYaml(
      bed,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name,
          namespace: OPERATOR_NAMESPACE,
          annotations: { 'oidcpublisher.io/allowed-publishers': NAME },
        },
        type: 'Opaque',
        data: Object.fromEntries(
          Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        ),
      }),
    );
  }

  before(async () => {
    bed = useShared();
    tmp = mkdtempSync(join(tmpdir(), 'oidc-server-url-'));
  });

  it('refuses a kubeconfig Secret with them (KubeconfigRefused); no condition, Event or log line shows the password', async () => {
    const kubeconfig = await installOperator(bed);
    await secret('server-url-s3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    // A token the API server does not know: without the refusal, its 401 would name the URL.
    await secret('server-url-kubeconfig', {
      kubeconfig: bed.inlineKubeconfig('not-a-valid-token', withCredentials()),
    });
    op = await OperatorProcess.start(bed, kubeconfig, ['--oidcpublisher', NAME, '--leader-elect', 'false']);
    await applyYaml(
      bed,
      JSON.stringify(
        samplePublisher(bed, {
          name: NAME,
          spec: {
            issuerURL: `${bed.state.s3.endpoint}/${bed.state.s3.bucket}/public/${NAME}`,
            syncInterval: '1m',
            source: { kubeconfigSecretRef: { name: 'server-url-kubeconfig' } },
          },
          s3: { prefix: `public/${NAME}`, credentialsSecretRef: { name: 'server-url-s3-writer' } },
        }),
      ),
    );
    const p = await waitForReady(bed, NAME, 'False', 'KubeconfigRefused', 60_000);
    assert.equal(
      condition(p, 'SourceAvailable')?.message,
      'kubeconfig refused: cluster "bed" server must not contain a user name or password',
    );
    const publisher = await bed.kubectl(['get', 'oidcpublisher', NAME, '-o', 'json']);
    const events = await bed.kubectl(['get', 'events.events.k8s.io', '-A', '-o', 'json']);
    const coreEvents = await bed.kubectl(['get', 'events', '-A', '-o', 'json']);
    assert.match(events, /KubeconfigRefused/, 'the refusal was recorded as an Event');
    const logs = op.output.join('\n');
    assert.match(logs, /must not contain a user name or password/, 'the refusal was logged');
    for (const [where, text] of [
      ['the OidcPublisher', publisher],
      ['Events (events.k8s.io/v1)', events],
      ['Events (v1)', coreEvents],
      ['the operator log', logs],
    ] as const) {
      assert.ok(!text.includes(PASSWORD), `${where} shows the password from the server URL`);
    }
    await bed.kubectl(['delete', 'oidcpublisher', NAME, '--wait=true']);
  });

  it("stops at start when the operator's own kubeconfig has them, without echoing them", async () => {
    const file = join(tmp, 'own.yaml');
    writeFileSync(file, bed.inlineKubeconfig('not-a-valid-token', withCredentials()));
    const own = await OperatorProcess.launch(bed, file, ['--leader-elect', 'false']);
    const code = await Promise.race([
      own.exited,
      new Promise<number>((r) => setTimeout(() => r(-1), 30_000)),
    ]);
    await own.stop('SIGKILL');
    const output = own.output.join('\n');
    assert.notEqual(code, 0, `the operator does not start; it printed:\n${output}`);
    assert.notEqual(code, -1, 'the operator exits at once');
    assert.match(output, /server must not contain a user name or password/);
    assert.ok(!output.includes(PASSWORD), `the password is not printed:\n${output}`);
  });
});
