/**
 * JSON requests to an API server over one keep-alive connection pool, and
 * watches as streams of events. The access's current credentials are applied
 * to each request, so a rotated token file is picked up. Every request says
 * who sends it (USER_AGENT), may wait for a client-side rate limit
 * (rate-limit.ts), and is sent again after a 429 (or a 5xx with Retry-After,
 * for a GET) as client-go does, within its deadline.
 */
import type { IncomingMessage } from 'node:http';
import { Agent, type RequestOptions, request } from 'node:https';
import { arch, platform, versions } from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { type HttpsAnswer, type HttpsRequestError, httpsRequest, timeoutError } from '../https-request.ts';
import { VERSION } from '../version.ts';
import type { KubeAccess } from './access.ts';
import type { TokenBucket } from './rate-limit.ts';

/**
 * The User-Agent of every request to an API server, in client-go's form
 * (`binary/version (os/arch) kubernetes/commit`) with Node's version in place of the commit:
 * `oidc-publisher/0.1.0 (linux/amd64) node/24.11.1`. The API server takes what comes before the
 * first `/` as the field manager of the operator's writes, and shows the whole in audit logs.
 */
export const USER_AGENT = `oidc-publisher/${VERSION} (${platform}/${arch === 'x64' ? 'amd64' : arch}) node/${versions.node}`;

/** An answer other than 2xx: its status and the Status object's reason, never its message. */
export class KubeHttpError extends Error {
  override name = 'KubeHttpError';
  readonly status: number;
  readonly reason: string | undefined;
  /** The answer's Retry-After, in milliseconds, when it had one that parses. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, reason: string | undefined, retryAfterMs?: number) {
    super(`HTTP ${status}${reason ? ` ${reason}` : ''}`);
    this.status = status;
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * A Retry-After header in milliseconds: delay-seconds (what the API server sends) or an HTTP
 * date (IMF-fixdate); undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP date in its one current form (IMF-fixdate): Date.parse alone takes "-1" for a year.
  if (!/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** When a failed request is sent again, and how long it waits before. */
export interface RetryPolicy {
  /** Retries after the first attempt (client-go: 10). */
  maxRetries: number;
  /** The first wait without a Retry-After, doubled each retry. */
  baseMs: number;
  /** No wait is longer, whatever Retry-After says. */
  maxWaitMs: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze({
  maxRetries: 5,
  baseMs: 500,
  maxWaitMs: 60_000,
});

/**
 * Whether an answer is worth sending the request again. A 429 (API Priority and Fairness, the
 * max-in-flight limit, a server shutting down) refuses a request before it runs, so every method
 * is retried, as client-go does. A 5xx with Retry-After may come after a write was carried out
 * (a timeout while storage finished it), so only GETs are retried on it; client-go retries every
 * method there, the operator's writes are left to its own reconcile backoff.
 */
export function isRetryable(method: string, err: unknown): err is KubeHttpError {
  if (!(err instanceof KubeHttpError)) return false;
  if (err.status === 429) return true;
  return (method === 'GET' || method === 'HEAD') && err.status >= 500 && err.retryAfterMs !== undefined;
}

/** How long to wait before retry number `retry` (from 0): Retry-After or the backoff, the longer, capped. */
export function retryWaitMs(err: KubeHttpError, retry: number, policy: RetryPolicy): number {
  const backoff = policy.baseMs * 2 ** Math.min(retry, 20);
  return Math.min(policy.maxWaitMs, Math.max(err.retryAfterMs ?? 0, backoff));
}

const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** Of an error answer to a watch, only the Status object's reason is read. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** One line of a watch: an event with its object. */
const MAX_WATCH_LINE_BYTES = 16 * 1024 * 1024;

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

export interface KubeHttpOptions {
  /**
   * Deadline of a call (default 30 s): waiting for the rate limit, every attempt and the waits
   * between them included, as client-go's request timeout.
   */
  timeoutMs?: number;
  observer?: KubeRequestObserver;
  /** The client-side rate limit, shared by the clients given the same one; none when absent. */
  limiter?: TokenBucket | undefined;
  retry?: Partial<RetryPolicy>;
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
  readonly #limiter: TokenBucket | undefined;
  readonly #retry: RetryPolicy;

  constructor(access: KubeAccess, opts: KubeHttpOptions = {}) {
    this.#access = access;
    this.server = access.server;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#host = new URL(access.server).host;
    this.#observer = opts.observer;
    this.#limiter = opts.limiter;
    this.#retry = { ...DEFAULT_RETRY, ...opts.retry };
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
   * the client's), which bounds the retries too: a retry whose wait would end after it is not made.
   */
  async send(
    method: string,
    path: string,
    body?: unknown,
    opts: { contentType?: string; timeoutMs?: number } = {},
  ): Promise<unknown> {
    const contentType = opts.contentType ?? 'application/json';
    const deadline = performance.now() + (opts.timeoutMs ?? this.#timeoutMs);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    for (let retry = 0; ; retry++) {
      await this.#limiter?.take({ deadline });
      const base = await this.#options();
      const left = deadline - performance.now();
      if (left <= 0) throw timeoutError();
      try {
        return await this.#sendOnce(method, path, payload, contentType, base, left);
      } catch (err) {
        if (retry >= this.#retry.maxRetries || !isRetryable(method, err)) throw err;
        const wait = retryWaitMs(err, retry, this.#retry);
        if (performance.now() + wait >= deadline) throw err;
        await sleep(wait);
      }
    }
  }

  async #sendOnce(
    method: string,
    path: string,
    payload: Buffer | undefined,
    contentType: string,
    base: RequestOptions,
    timeoutMs: number,
  ): Promise<unknown> {
    const started = performance.now();
    let answer: HttpsAnswer;
    try {
      answer = await httpsRequest({
        url: `${this.server}${path}`,
        options: {
          ...base,
          method,
          headers: {
            ...(base.headers as Record<string, string> | undefined),
            accept: 'application/json',
            'user-agent': USER_AGENT,
            ...(payload ? { 'content-type': contentType, 'content-length': String(payload.length) } : {}),
          },
        },
        body: payload,
        maxBytes: MAX_RESPONSE_BYTES,
        timeoutMs,
      });
    } catch (err) {
      const failure = err as HttpsRequestError;
      this.#observe(method, started, failure.status ?? '<error>');
      throw failure.kind === 'tooLarge' ? new Error('response too large') : failure.cause;
    }
    this.#observe(method, started, answer.status);
    let json: unknown;
    try {
      json = answer.body.length ? JSON.parse(answer.body.toString('utf8')) : undefined;
    } catch {
      json = undefined;
    }
    if (answer.status >= 200 && answer.status < 300) return json;
    throw new KubeHttpError(
      answer.status,
      (json as { reason?: string } | undefined)?.reason,
      parseRetryAfter(answer.headers['retry-after']),
    );
  }

  /**
   * A streaming GET (a watch): calls `onEvent` with each newline-delimited JSON value. Resolves
   * when the server ends the stream or `signal` aborts it; rejects with KubeHttpError for an
   * answer other than 200, with what `onEvent` threw, or with the network error. An answer the
   * retry policy retries (429, or a 5xx with Retry-After) is retried before the watch opens.
   */
  async stream(path: string, onEvent: (value: unknown) => void, opts: StreamOptions): Promise<void> {
    for (let retry = 0; ; retry++) {
      await this.#limiter?.take({ signal: opts.signal });
      if (opts.signal.aborted) return;
      let opened = false;
      try {
        await this.#streamOnce(path, onEvent, {
          ...opts,
          onOpen: () => {
            opened = true;
            opts.onOpen?.();
          },
        });
        return;
      } catch (err) {
        if (opened || retry >= this.#retry.maxRetries || !isRetryable('GET', err)) throw err;
        const waited = await sleep(retryWaitMs(err, retry, this.#retry), true, { signal: opts.signal }).catch(
          () => false,
        );
        if (!waited) return;
      }
    }
  }

  async #streamOnce(path: string, onEvent: (value: unknown) => void, opts: StreamOptions): Promise<void> {
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
          headers: {
            ...(base.headers as Record<string, string> | undefined),
            accept: 'application/json',
            'user-agent': USER_AGENT,
          },
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
              settle(new KubeHttpError(status, reason, parseRetryAfter(res.headers['retry-after'])));
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
