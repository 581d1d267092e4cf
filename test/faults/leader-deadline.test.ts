/**
 * A leader whose API server first fails fast and then stops answering
 * (connections accepted, nothing comes back) must give up leadership by its
 * renew deadline: a Lease request may not outlast the deadline, or the
 * replica would keep reconciling after a standby could take the Lease
 * (lease duration after the last renewal). Against the bed's API server
 * through a loopback proxy (proxy.ts); the elector is the operator's own.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { LeaderElector } from '../../src/controller/leader.ts';
import { KubeLeases } from '../../src/controller/leases.ts';
import { type AccessSpec, resolveKubeconfig, StaticAccess } from '../../src/kube/access.ts';
import { createLogger } from '../../src/log.ts';
import type { Bed } from '../bed/bed.ts';
import { useBed } from '../bed/shared.ts';
import { eventually } from '../e2e/harness.ts';
import { sleep } from './helpers.ts';
import { TcpProxy } from './proxy.ts';

const RENEW_DEADLINE_MS = 4000;

describe('faults: a leader whose API server hangs', () => {
  const useShared = useBed();
  let bed: Bed;
  let proxy: TcpProxy;
  let elector: LeaderElector | undefined;

  before(async () => {
    bed = useShared();
    const url = new URL(bed.apiserverURL);
    proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port) });
  });
  after(async () => {
    await elector?.stop();
    await proxy?.close();
  });

  it('steps down by its renew deadline when requests start to hang after quick failures', async (t) => {
    const resolved = resolveKubeconfig(
      parse(readFileSync(bed.adminKubeconfig, 'utf8')),
      dirname(bed.adminKubeconfig),
    );
    assert.equal(resolved.kind, 'static');
    const spec: AccessSpec = {
      ...(resolved.kind === 'static' ? resolved.spec : { server: '' }),
      server: proxy.url,
    };
    const log = createLogger({ level: 'fatal', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
    let startedAt = 0;
    let stoppedAt = 0;
    elector = new LeaderElector(
      new KubeLeases(new StaticAccess(spec), {
        namespace: 'default',
        name: 'deadline-check',
        timeoutMs: RENEW_DEADLINE_MS,
      }),
      {
        namespace: 'default',
        name: 'deadline-check',
        identity: 'replica-a',
        leaseDurationMs: 6000,
        renewDeadlineMs: RENEW_DEADLINE_MS,
        retryPeriodMs: 500,
      },
      log,
    );
    elector.start({
      onStartedLeading: () => {
        startedAt = Date.now();
      },
      onStoppedLeading: () => {
        stoppedAt = Date.now();
      },
    });
    await eventually('leading', async () => (startedAt ? true : undefined), 15_000);
    await sleep(1200); // a few renewals through the proxy
    const lastGood = Date.now();
    proxy.setMode({ kind: 'reset' });
    await sleep(RENEW_DEADLINE_MS - 1000);
    proxy.setMode({ kind: 'stall' });
    await eventually('stepped down', async () => (stoppedAt ? true : undefined), 20_000);
    const after = stoppedAt - lastGood;
    t.diagnostic(
      `stepped down ${after} ms after the last renewal it could have made (renew deadline ${RENEW_DEADLINE_MS} ms)`,
    );
    assert.ok(
      after <= RENEW_DEADLINE_MS + 1000,
      `stepped down ${after} ms after the last possible renewal; the renew deadline is ${RENEW_DEADLINE_MS} ms`,
    );
    assert.ok(after >= RENEW_DEADLINE_MS - 600, `not before the deadline: ${after} ms`);
  });
});
