/**
 * JSON requests to an API server over one keep-alive connection pool, and
 * watches as streams of events. The access's current credentials are applied
 * to each request, so a rotated token file is picked up.
 */
import type { IncomingMessage } from 'node:http';
import { Agent, type RequestOptions, request } from 'node:https';
import type { KubeAccess } from './access.ts';

/** An answer other than 2xx: its status and the Status object's reason, never its message. */
export class KubeHttpError extends Error {
  override name = 'KubeHttpError';
  readonly status: number;
  readonly reason: string | undefined;

  constructor(status: number, reason: string | undefined) {
    super(`HTTP ${status}${reason ? ` ${reason}` : ''}`);
    this.status = status;
    this.reason = reason;
  }
}

const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** Of an error answer to a watch, only the Status object's reason is read. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** One line of a watch: an event with its object. */
const MAX_WATCH_LINE_BYTES = 16 * 1024 * 1024;

function timeoutError(): Error {
  return Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' });
}

function sameBytes(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return typeof a === 'string' && typeof b === 'string' ? a === b : false;
}

/**
 * Keep-alive agents with the TLS material of the current request options (a kubeconfig's CA,
 * client certificate and key). Node lets an agent's TLS options win over a request's, so when
 * the material changes (a rotated client certificate file) a new agent takes over; the old one
 * is destroyed after `graceMs`, when the requests it still carries are over (a watch on it ends
 * and is resumed on the new one).
 */
export class TlsAgents {
  readonly #maxSockets: number;
  readonly #graceMs: number;
  #agent: Agent | undefined;
  #material: Pick<RequestOptions, 'ca' | 'cert' | 'key' | 'servername' | 'rejectUnauthorized'> = {};
  readonly #retiring = new Set<NodeJS.Timeout>();

  constructor(maxSockets: number, graceMs = 60_000) {
    this.#maxSockets = maxSockets;
    this.#graceMs = graceMs;
  }

  for(opts: RequestOptions): Agent {
    const m = this.#material;
    const same =
      sameBytes(m.ca, opts.ca) &&
      sameBytes(m.cert, opts.cert) &&
      sameBytes(m.key, opts.key) &&
      m.servername === opts.servername &&
      m.rejectUnauthorized === opts.rejectUnauthorized;
    if (this.#agent && same) return this.#agent;
    const old = this.#agent;
    if (old) {
      const t = setTimeout(() => {
        this.#retiring.delete(t);
        old.destroy();
      }, this.#graceMs);
      t.unref();
      this.#retiring.add(t);
    }
    this.#material = {
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      servername: opts.servername,
      rejectUnauthorized: opts.rejectUnauthorized,
    };
    this.#agent = new Agent({
      keepAlive: true,
      maxSockets: this.#maxSockets,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      ...(opts.servername ? { servername: opts.servername } : {}),
      ...(opts.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
    });
    return this.#agent;
  }

  destroy(): void {
    for (const t of this.#retiring) clearTimeout(t);
    this.#retiring.clear();
    this.#agent?.destroy();
    this.#agent = undefined;
  }
}

export interface StreamOptions {
  /** Stops the stream; the promise then resolves. */
  signal: AbortSignal;
  /** Gives up (ETIMEDOUT) when nothing arrives for this long. */
  idleMs: number;
  /** The server answered 200: the watch is established. */
  onOpen?: () => void;
}

/** One finished request: `code` is the answer's status, or `<error>` when none came. */
export interface KubeRequestResult {
  method: string;
  host: string;
  code: number | '<error>';
  seconds: number;
}

/** Told of each finished request (a watch once its answer's status arrived), e.g. for metrics. */
export type KubeRequestObserver = (result: KubeRequestResult) => void;

export class KubeHttp {
  readonly server: string;
  readonly #access: KubeAccess;
  readonly #timeoutMs: number;
  readonly #agents = new TlsAgents(8);
  readonly #host: string;
  readonly #observer: KubeRequestObserver | undefined;

  constructor(access: KubeAccess, opts: { timeoutMs?: number; observer?: KubeRequestObserver } = {}) {
    this.#access = access;
    this.server = access.server;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#host = new URL(access.server).host;
    this.#observer = opts.observer;
  }

  #observe(method: string, started: number, code: number | '<error>'): void {
    this.#observer?.({ method, host: this.#host, code, seconds: (performance.now() - started) / 1000 });
  }

  async #options(): Promise<RequestOptions> {
    const opts = await this.#access.requestOptions();
    if (!this.#access.ownAgent) opts.agent = this.#agents.for(opts);
    return opts;
  }

  /**
   * Sends `body` as JSON (`contentType`, default application/json); resolves with the parsed
   * answer; rejects with KubeHttpError or the network error, ETIMEDOUT after `timeoutMs` (default:
   * the client's).
   */
  async send(
    method: string,
    path: string,
    body?: unknown,
    opts: { contentType?: string; timeoutMs?: number } = {},
  ): Promise<unknown> {
    const contentType = opts.contentType ?? 'application/json';
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    const base = await this.#options();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const started = performance.now();
    let code: number | '<error>' = '<error>';
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err: Error | undefined, value?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        this.#observe(method, started, code);
        if (err) reject(err);
        else resolve(value);
      };
      const req = request(
        `${this.server}${path}`,
        {
          ...base,
          method,
          headers: {
            ...(base.headers as Record<string, string> | undefined),
            accept: 'application/json',
            ...(payload ? { 'content-type': contentType, 'content-length': String(payload.length) } : {}),
          },
        },
        (res: IncomingMessage) => {
          code = res.statusCode ?? 0;
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) req.destroy(new Error('response too large'));
            else chunks.push(c);
          });
          res.on('error', (err) => settle(err));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            let json: unknown;
            try {
              json = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
            } catch {
              json = undefined;
            }
            if (status >= 200 && status < 300) settle(undefined, json);
            else settle(new KubeHttpError(status, (json as { reason?: string } | undefined)?.reason));
          });
        },
      );
      const deadline = setTimeout(() => req.destroy(timeoutError()), timeoutMs);
      req.on('error', (err) => settle(err));
      req.end(payload);
    });
  }

  /**
   * A streaming GET (a watch): calls `onEvent` with each newline-delimited JSON value. Resolves
   * when the server ends the stream or `signal` aborts it; rejects with KubeHttpError for an
   * answer other than 200, with what `onEvent` threw, or with the network error.
   */
  async stream(path: string, onEvent: (value: unknown) => void, opts: StreamOptions): Promise<void> {
    const base = await this.#options();
    if (opts.signal.aborted) return;
    const started = performance.now();
    let answered = false;
    return new Promise((resolve, reject) => {
      let settled = false;
      let idle: NodeJS.Timeout | undefined;
      const settle = (err?: unknown) => {
        if (!answered && !opts.signal.aborted) this.#observe('GET', started, '<error>');
        answered = true;
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        opts.signal.removeEventListener('abort', onAbort);
        if (err && !opts.signal.aborted) reject(err);
        else resolve();
      };
      const onAbort = () => {
        req.destroy();
        settle();
      };
      const touch = () => {
        clearTimeout(idle);
        idle = setTimeout(() => req.destroy(timeoutError()), opts.idleMs);
      };
      const req = request(
        `${this.server}${path}`,
        {
          ...base,
          method: 'GET',
          headers: { ...(base.headers as Record<string, string> | undefined), accept: 'application/json' },
        },
        (res: IncomingMessage) => {
          const status = res.statusCode ?? 0;
          answered = true;
          this.#observe('GET', started, status);
          if (status !== 200) {
            const chunks: Buffer[] = [];
            let size = 0;
            res.on('data', (c: Buffer) => {
              size += c.length;
              if (size <= MAX_ERROR_BODY_BYTES) chunks.push(c);
            });
            res.on('end', () => {
              let reason: string | undefined;
              try {
                reason = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { reason?: string }).reason;
              } catch {
                reason = undefined;
              }
              settle(new KubeHttpError(status, reason));
            });
            res.on('error', settle);
            return;
          }
          opts.onOpen?.();
          res.setEncoding('utf8');
          let pending = '';
          const deliver = (line: string) => {
            if (!line.trim()) return;
            onEvent(JSON.parse(line));
          };
          res.on('data', (chunk: string) => {
            touch();
            pending += chunk;
            try {
              let nl = pending.indexOf('\n');
              while (nl >= 0) {
                const line = pending.slice(0, nl);
                pending = pending.slice(nl + 1);
                deliver(line);
                nl = pending.indexOf('\n');
              }
              if (pending.length > MAX_WATCH_LINE_BYTES) throw new Error('watch event too large');
            } catch (err) {
              req.destroy();
              settle(err);
            }
          });
          res.on('error', settle);
          // A connection cut mid-stream ends without 'end'.
          res.on('close', () =>
            settle(Object.assign(new Error('watch connection closed'), { code: 'ECONNRESET' })),
          );
          res.on('end', () => {
            try {
              deliver(pending);
              settle();
            } catch (err) {
              settle(err);
            }
          });
        },
      );
      opts.signal.addEventListener('abort', onAbort, { once: true });
      touch();
      req.on('error', settle);
      req.end();
    });
  }

  close(): void {
    this.#agents.destroy();
  }
}
