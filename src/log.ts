/**
 * One pino root logger. Credentials never reach it: errors are logged by code
 * and message (ours never embed secrets), and known credential paths are
 * redacted as a second line of defence.
 */
import { type DestinationStream, type Logger, pino } from 'pino';
import { isOidcPublisherError } from './errors.ts';

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
 * An error as logged: type, stable code, message and the codes of its causes;
 * never response bodies. Duck-typed: fetch errors from another realm are not
 * `instanceof Error`.
 */
export function serializeError(err: unknown): Record<string, unknown> {
  if (!err || typeof err !== 'object') return { message: String(err) };
  const e = err as { name?: unknown; message?: unknown; code?: unknown; cause?: unknown };
  const out: Record<string, unknown> = {
    type: typeof e.name === 'string' ? e.name : (err.constructor?.name ?? 'Object'),
    message: typeof e.message === 'string' ? e.message : 'non-Error value thrown',
  };
  if (isOidcPublisherError(err) || typeof e.code === 'string' || typeof e.code === 'number')
    out.code = e.code;
  const causes: string[] = [];
  let cause: unknown = e.cause;
  for (let i = 0; cause && typeof cause === 'object' && i < 5; i++) {
    const c = cause as { name?: string; code?: unknown; cause?: unknown };
    causes.push([c.name, c.code].filter(Boolean).join(':'));
    cause = c.cause;
  }
  if (causes.length) out.causes = causes;
  return out;
}
