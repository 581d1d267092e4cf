/**
 * A loopback TCP proxy that can slow down or stall what goes through it, for
 * fault tests: the operator talks TLS through it to a real API server or to
 * MinIO (the certificates name 127.0.0.1, so they stay valid), and the test
 * turns the connection bad underneath.
 *
 * Modes, for connections opened after the change (setMode cuts the open ones,
 * so keep-alive clients reconnect into the new mode):
 * - pass: bytes flow both ways;
 * - delay: every chunk, both ways, is held `ms` milliseconds (order kept);
 * - stall: the client's connection is accepted and then nothing ever comes
 *   back: no TLS handshake, no bytes; only the client can end it;
 * - reset: the connection is accepted and closed at once (a quick failure).
 *
 * Every connection is recorded with when it opened and closed, and which side
 * closed it, so a test can tell how long a client waited before giving up.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type ProxyMode =
  | { kind: 'pass' }
  | { kind: 'delay'; ms: number }
  | { kind: 'stall' }
  | { kind: 'reset' };

export interface ConnectionRecord {
  mode: ProxyMode['kind'];
  openedAt: number;
  closedAt?: number;
  /** Who ended it: the client, the target, or the proxy (setMode, close). */
  closedBy?: 'client' | 'target' | 'proxy';
}

export class TcpProxy {
  readonly port: number;
  readonly connections: ConnectionRecord[] = [];
  readonly #server: Server;
  readonly #open = new Set<{ client: Socket; target?: Socket; record: ConnectionRecord }>();
  #mode: ProxyMode = { kind: 'pass' };

  private constructor(server: Server, port: number) {
    this.#server = server;
    this.port = port;
  }

  /** Listens on 127.0.0.1 (a free port) and forwards to `target`. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => {
      if (proxy) proxy.#accept(client, target);
      else client.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    proxy = new TcpProxy(server, typeof addr === 'object' && addr ? addr.port : 0);
    return proxy;
  }

  /** `https://127.0.0.1:<port>` */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  /** Switches mode and cuts every open connection, so the next ones are in the new mode. */
  setMode(mode: ProxyMode): void {
    this.#mode = mode;
    this.cutAll();
  }

  /** Connections still open now. */
  get openCount(): number {
    return this.#open.size;
  }

  cutAll(): void {
    for (const c of [...this.#open]) {
      c.record.closedBy ??= 'proxy';
      c.client.destroy();
      c.target?.destroy();
    }
  }

  #accept(client: Socket, target: { host: string; port: number }): void {
    const record: ConnectionRecord = { mode: this.#mode.kind, openedAt: Date.now() };
    this.connections.push(record);
    const entry: { client: Socket; target?: Socket; record: ConnectionRecord } = { client, record };
    this.#open.add(entry);
    const finish = (by: 'client' | 'target') => {
      if (record.closedAt !== undefined) return;
      record.closedAt = Date.now();
      record.closedBy ??= by;
      this.#open.delete(entry);
      client.destroy();
      entry.target?.destroy();
    };
    client.on('error', () => finish('client'));
    client.on('close', () => finish('client'));
    const mode = this.#mode;
    if (mode.kind === 'reset') {
      record.closedBy = 'proxy';
      client.resetAndDestroy();
      return;
    }
    if (mode.kind === 'stall') {
      client.on('data', () => undefined);
      return;
    }
    const upstream = connect(target.port, target.host);
    entry.target = upstream;
    upstream.on('error', () => finish('target'));
    upstream.on('close', () => finish('target'));
    if (mode.kind === 'pass') {
      client.pipe(upstream);
      upstream.pipe(client);
      return;
    }
    const relay = (from: Socket, to: Socket) => {
      from.on('data', (chunk: Buffer) => {
        // Same delay for every chunk: timers of equal delay fire in order.
        setTimeout(() => {
          if (!to.destroyed) to.write(chunk);
        }, mode.ms);
      });
      from.on('end', () => setTimeout(() => to.end(), mode.ms));
    };
    relay(client, upstream);
    relay(upstream, client);
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
