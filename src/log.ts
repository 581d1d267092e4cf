/**
 * One pino root logger. Credentials never reach it: errors are logged by code
 * and message (ours never embed secrets), and known credential paths are
 * redacted as a second line of defence.
 */
import { type DestinationStream, type Logger, pino } from 'pino';
import { isOidcPublisherError, redactUrls } from './errors.ts';

export type { Logger };

export const REDACT_PATHS = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'kubeconfig',
  '*.kubeconfig',
  'credentials',
  '*.credentials',
  'secretAccessKey',
  '*.secretAccessKey',
  'sessionToken',
  '*.sessionToken',
  'privateKey',
  '*.privateKey',
  'private_key',
  '*.private_key',
  // Header names as Node and the AWS SDK spell them, kubeconfig user fields, Secret keys.
  'Authorization',
  '*.Authorization',
  'headers.Authorization',
  '*.headers.Authorization',
  'password',
  '*.password',
  '["client-key-data"]',
  '*["client-key-data"]',
  'AWS_SECRET_ACCESS_KEY',
  '*.AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  '*.AWS_SESSION_TOKEN',
];

export function createLogger(opts: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: opts.level,
      base: { app: 'oidc-publisher' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: serializeError },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination,
  );
}

/**
 * A cause's name or code as logged: a short word (ECONNREFUSED, S3's AccessDenied), a number, or
 * `?`. A storage SDK names its error after the code the endpoint answered, which may be anything
 * (40 KB of it, or the token the endpoint was sent).
 */
function logWord(value: unknown): string | undefined {
  if (typeof value === 'number') return String(value);
  if (typeof value !== 'string' || value === '') return undefined;
  return /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(value) ? value : '?';
}

/**
 * An error as logged: type, stable code, message and the codes of its causes;
 * never response bodies. Duck-typed: fetch errors from another realm are not
 * `instanceof Error`.
 */
export function serializeError(err: unknown): Record<string, unknown> {
  if (!err || typeof err !== 'object') return { message: String(err) };
  const e = err as { name?: unknown; message?: unknown; code?: unknown; cause?: unknown };
  const out: Record<string, unknown> = {
    type: typeof e.name === 'string' ? e.name : (err.constructor?.name ?? 'Object'),
    message: typeof e.message === 'string' ? redactUrls(e.message) : 'non-Error value thrown',
  };
  // client-node's ApiException embeds the response headers and body in its message: log the code and reason only.
  const body = (err as { body?: unknown }).body;
  if (typeof e.code === 'number' && body !== undefined) {
    let reason: unknown;
    try {
      reason = (
        typeof body === 'string' ? (JSON.parse(body) as { reason?: unknown }) : (body as { reason?: unknown })
      )?.reason;
    } catch {
      reason = undefined;
    }
    out.message = `API server answered HTTP ${e.code}${typeof reason === 'string' ? ` ${reason}` : ''}`;
  }
  if (isOidcPublisherError(err) || typeof e.code === 'string' || typeof e.code === 'number')
    out.code = e.code;
  const causes: string[] = [];
  let cause: unknown = e.cause;
  for (let i = 0; cause && typeof cause === 'object' && i < 5; i++) {
    const c = cause as { name?: unknown; code?: unknown; cause?: unknown };
    causes.push([logWord(c.name), logWord(c.code)].filter(Boolean).join(':'));
    cause = c.cause;
  }
  if (causes.length) out.causes = causes;
  return out;
}
