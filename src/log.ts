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

/** An error as logged: type, stable code and message, and the code chain of its causes; never response bodies. */
export function serializeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: String(err) };
  const out: Record<string, unknown> = { type: err.name, message: err.message };
  if (isOidcPublisherError(err)) out.code = err.code;
  const causes: string[] = [];
  let cause: unknown = err.cause;
  for (let i = 0; cause && i < 5; i++) {
    const c = cause as { name?: string; code?: unknown };
    causes.push([c.name, c.code].filter(Boolean).join(':'));
    cause = (cause as { cause?: unknown }).cause;
  }
  if (causes.length) out.causes = causes;
  return out;
}
