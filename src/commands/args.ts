/**
 * What the subcommands (`authn-config`, `publish`, `serve`) share: their flags
 * parsed strictly, --help, and one line on stderr for a failure with the exit
 * code that goes with it (2 for bad arguments).
 */
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { describeError, isOidcPublisherError, OidcPublisherError } from '../errors.ts';

/** The exit code of a command whose arguments are wrong; nothing was read or written. */
export const BAD_ARGUMENTS = 2;

/** The flags of `argv`, no positionals; CONFIG_INVALID with the first line of what parseArgs said. */
export function parseFlags<const T extends ParseArgsOptionsConfig>(argv: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new OidcPublisherError('CONFIG_INVALID', describeError(err).split('\n')[0] ?? 'bad arguments');
  }
}

export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Writes `err` as one line on stderr and returns `exit`. */
export type Fail = (exit: number, err: unknown) => number;

export interface Command<A> {
  /** As typed after `oidc-publisher`: the prefix of every failure line. */
  name: string;
  usage(): string;
  /** The arguments, or CONFIG_INVALID naming what is wrong with them. */
  parse(): { help: true } | A;
  /** Failure lines start with the error's code (as `SOURCE_UNAUTHORIZED: ...`), except CONFIG_INVALID's. */
  errorCodes: boolean;
}

/**
 * Runs a command: arguments that do not parse exit 2 with their problems on one line, --help
 * prints the usage and exits 0, anything else is `run`'s, which reports failures with `fail`.
 */
export async function runCommand<A extends { help: false }>(
  command: Command<A>,
  io: CommandIo,
  run: (args: A, fail: Fail) => Promise<number>,
): Promise<number> {
  const fail: Fail = (exit, err) => {
    const code =
      command.errorCodes && isOidcPublisherError(err) && err.code !== 'CONFIG_INVALID' ? `${err.code}: ` : '';
    io.stderr(`oidc-publisher ${command.name}: ${code}${describeError(err).replaceAll('\n', ' ')}\n`);
    return exit;
  };
  let args: { help: true } | A;
  try {
    args = command.parse();
  } catch (err) {
    return fail(BAD_ARGUMENTS, err);
  }
  if (args.help) {
    io.stdout(command.usage());
    return 0;
  }
  return run(args, fail);
}
