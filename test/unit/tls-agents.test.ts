import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TlsAgents } from '../../src/kube/http.ts';

describe('TlsAgents', () => {
  it('keeps one agent while the TLS material is the same bytes, read again or not', () => {
    const agents = new TlsAgents(4);
    try {
      const a = agents.for({ ca: Buffer.from('CA'), cert: Buffer.from('CERT'), key: Buffer.from('KEY') });
      const b = agents.for({ ca: Buffer.from('CA'), cert: Buffer.from('CERT'), key: Buffer.from('KEY') });
      assert.equal(a, b);
      assert.equal(a.options.keepAlive, true);
      assert.equal(a.maxSockets, 4);
    } finally {
      agents.destroy();
    }
  });

  it('takes a new agent with the new material when a certificate, key, CA or server name changes', () => {
    const agents = new TlsAgents(4, 10);
    try {
      const base = { ca: Buffer.from('CA'), cert: Buffer.from('CERT'), key: Buffer.from('KEY') };
      let previous = agents.for(base);
      for (const change of [
        { cert: Buffer.from('CERT-2') },
        { key: Buffer.from('KEY-2') },
        { ca: Buffer.from('CA-2') },
        { servername: 'kubernetes' },
        { rejectUnauthorized: false },
      ]) {
        const next = agents.for({ ...base, ...change });
        assert.notEqual(next, previous, `a new agent for ${Object.keys(change).join()}`);
        for (const [k, v] of Object.entries(change)) {
          assert.deepEqual((next.options as Record<string, unknown>)[k], v, `${k} on the new agent`);
        }
        previous = agents.for(base);
      }
    } finally {
      agents.destroy();
    }
  });

  it('destroys the replaced agent after the grace period', async () => {
    const agents = new TlsAgents(4, 20);
    try {
      const old = agents.for({ cert: Buffer.from('A') });
      let destroyed = false;
      const destroy = old.destroy.bind(old);
      old.destroy = () => {
        destroyed = true;
        destroy();
      };
      agents.for({ cert: Buffer.from('B') });
      assert.equal(destroyed, false, 'not at once: requests on it may still run');
      await new Promise((r) => setTimeout(r, 60));
      assert.equal(destroyed, true);
    } finally {
      agents.destroy();
    }
  });
});
