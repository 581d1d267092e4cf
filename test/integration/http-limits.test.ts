/**
 * The limits of the two HTTP servers, the health server (/healthz, /readyz,
 * /metrics) and `oidc-publisher serve`, over real sockets on 127.0.0.1: a
 * client that stalls in its request line, one that trickles its body, and one
 * connection too many. Small limits are configured, and every time bound is
 * derived from them: Node closes a connection at the first deadline check
 * after its timeout, so at most `timeout + checkInterval` after it connected;
 * one more interval is allowed for a late timer on a busy machine.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { startHealthServer } from '../../src/server/health.ts';
import type { HttpLimits } from '../../src/server/http-server.ts';
import { startIssuerServer } from '../../src/server/serve.ts';
import { ServeMetrics } from '../../src/server/serve-metrics.ts';
import { servePaths } from '../../src/server/serve-response.ts';

const LIMITS: HttpLimits = {
  headersTimeoutMs: 600,
  requestTimeoutMs: 1_200,
  checkIntervalMs: 200,
  keepAliveTimeoutMs: 300,
  maxConnections: 2,
};

/** Upper bound for a connection cut by `timeoutMs`: the check after it, and one interval of timer lateness. */
const cutBy = (timeoutMs: number, limits = LIMITS) => timeoutMs + 2 * limits.checkIntervalMs;

interface Closed {
  /** Milliseconds from connecting to the server closing the connection, or undefined if still open at `waitMs`. */
  afterMs: number | undefined;
  received: string;
}

/** Opens a connection, runs `talk` on it, and waits up to `waitMs` for the server to close it. */
function connection(port: number, talk: (socket: Socket) => void, waitMs: number): Promise<Closed> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    let t0 = 0;
    const giveUp = setTimeout(() => {
      socket.destroy();
      resolve({ afterMs: undefined, received });
    }, waitMs);
    socket.on('data', (d) => {
      received += d.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve({ afterMs: Date.now() - t0, received });
    });
    socket.on('connect', () => {
      t0 = Date.now();
      talk(socket);
    });
  });
}

/** Connects and waits until the server has accepted the connection (it counts toward maxConnections then). */
async function held(server: Server, port: number): Promise<Socket> {
  const accepted = new Promise<void>((resolve) => server.once('connection', () => resolve()));
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await accepted;
  return socket;
}

/** Sends a whole GET on an open connection and resolves with the status line. */
function statusLine(socket: Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n');
      if (end >= 0) {
        socket.off('data', onData);
        resolve(text.slice(0, end));
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed before a status line; got ${JSON.stringify(text)}`)));
    socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`);
  });
}

interface Target {
  name: string;
  path: string;
  start(limits: HttpLimits): Promise<Server>;
}

const targets: Target[] = [
  {
    name: 'health server',
    path: '/healthz',
    start: (limits) => startHealthServer('127.0.0.1:0', { ready: () => true }, limits),
  },
  {
    name: 'serve',
    path: '/.well-known/openid-configuration',
    start: (limits) =>
      startIssuerServer(
        { host: '127.0.0.1', port: 0 },
        {
          publishers: [
            { issuer: 'https://issuer.example.com', paths: servePaths(''), documents: () => undefined },
          ],
          metrics: new ServeMetrics(new Registry()),
        },
        limits,
      ),
  },
];

for (const target of targets) {
  describe(`${target.name}: connection limits`, () => {
    const servers: Server[] = [];
    const start = async (limits: HttpLimits) => {
      const server = await target.start(limits);
      servers.push(server);
      const address = server.address();
      assert.ok(address && typeof address === 'object');
      return { server, port: address.port };
    };
    after(() => {
      for (const s of servers) {
        s.closeAllConnections();
        s.close();
      }
    });

    it('closes a connection that sends half a request line and stalls, within headersTimeout + checkInterval', async () => {
      const { port } = await start(LIMITS);
      const bound = cutBy(LIMITS.headersTimeoutMs);
      const closed = await connection(port, (s) => s.write('GET /heal'), bound + 2_000);
      assert.ok(
        closed.afterMs !== undefined,
        `expected the stalled connection closed within ${bound} ms (headersTimeout ${LIMITS.headersTimeoutMs} + check interval ${LIMITS.checkIntervalMs}, + one interval of timer lateness); still open after ${bound + 2_000} ms`,
      );
      assert.ok(
        closed.afterMs <= bound && closed.afterMs >= LIMITS.headersTimeoutMs - LIMITS.checkIntervalMs,
        `expected the stalled connection closed between ${LIMITS.headersTimeoutMs - LIMITS.checkIntervalMs} and ${bound} ms; closed after ${closed.afterMs} ms`,
      );
      assert.match(closed.received, /^(HTTP\/1\.1 408 |$)/, 'a header timeout answers 408, or nothing');
    });

    it('cuts a request whose body trickles in, within requestTimeout + checkInterval', async () => {
      const { port } = await start(LIMITS);
      const bound = cutBy(LIMITS.requestTimeoutMs);
      let drip: NodeJS.Timeout | undefined;
      const closed = await connection(
        port,
        (s) => {
          // Headers at once, then one byte of the promised 10000 every 50 ms: never idle, never done.
          s.write(`POST ${target.path} HTTP/1.1\r\nHost: test\r\nContent-Length: 10000\r\n\r\n`);
          drip = setInterval(() => {
            if (!s.destroyed) s.write('x');
          }, 50);
          s.once('close', () => clearInterval(drip));
        },
        bound + 2_000,
      );
      clearInterval(drip);
      assert.ok(
        closed.afterMs !== undefined,
        `expected the trickling request cut within ${bound} ms (requestTimeout ${LIMITS.requestTimeoutMs} + check interval ${LIMITS.checkIntervalMs}, + one interval of timer lateness); still open after ${bound + 2_000} ms`,
      );
      assert.ok(
        closed.afterMs <= bound && closed.afterMs >= LIMITS.requestTimeoutMs - LIMITS.checkIntervalMs,
        `expected the trickling request cut between ${LIMITS.requestTimeoutMs - LIMITS.checkIntervalMs} and ${bound} ms; cut after ${closed.afterMs} ms`,
      );
    });

    it('closes the (maxConnections+1)th concurrent connection at once and keeps serving the others', async () => {
      // Long request deadlines here, so only the connection limit can close anything during the test.
      const limits = {
        ...LIMITS,
        headersTimeoutMs: 10_000,
        requestTimeoutMs: 20_000,
        keepAliveTimeoutMs: 10_000,
      };
      const { server, port } = await start(limits);
      const open: Socket[] = [];
      for (let i = 0; i < limits.maxConnections; i++) open.push(await held(server, port));
      try {
        const extra = await connection(port, () => {}, limits.headersTimeoutMs / 2);
        assert.ok(
          extra.afterMs !== undefined,
          `expected connection ${limits.maxConnections + 1} closed at once (maxConnections ${limits.maxConnections}); still open after ${limits.headersTimeoutMs / 2} ms`,
        );
        assert.equal(extra.received, '', 'the refused connection gets no answer');
        for (const socket of open) assert.match(await statusLine(socket, target.path), /^HTTP\/1\.1 \d{3} /);
      } finally {
        for (const socket of open) socket.destroy();
      }
    });
  });
}

describe('health server: listen address', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  for (const [addr, expected] of [
    ['127.0.0.1:0', '127.0.0.1'],
    ['[::1]:0', '::1'],
    [':0', '::'],
  ] as const) {
    it(`binds ${JSON.stringify(addr)} to ${expected}`, async (t) => {
      const server = await startHealthServer(addr, { ready: () => true }).catch(
        (err: NodeJS.ErrnoException) => {
          if (expected.includes(':') && err.code === 'EADDRNOTAVAIL') return undefined;
          throw err;
        },
      );
      if (!server) {
        t.skip('no IPv6 on this host');
        return;
      }
      servers.push(server);
      const address = server.address();
      assert.ok(address && typeof address === 'object');
      assert.equal(address.address, expected);
    });
  }
});
