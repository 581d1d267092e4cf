/**
 * Child processes of the test bed: each in its own process group, its output in
 * a log file, stopped with SIGTERM then SIGKILL, and killed when this process
 * exits unless the bed is meant to outlive it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export class BedStartError extends Error {
  override name = 'BedStartError';
}

export interface ProcessSpec {
  name: string;
  command: string;
  args: readonly string[];
  env?: Record<string, string>;
  logFile: string;
  cwd?: string;
}

const live = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of live) killGroup(pid, 'SIGKILL');
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function logTail(file: string, lines = 30): string {
  if (!existsSync(file)) return '(no log)';
  const text = readFileSync(file, 'utf8').trimEnd().split('\n');
  return text.slice(-lines).join('\n');
}

export class ManagedProcess {
  readonly spec: ProcessSpec;
  readonly pid: number;
  readonly #child: ChildProcess | undefined;
  #exitCode: number | null | undefined;

  private constructor(spec: ProcessSpec, pid: number, child?: ChildProcess) {
    this.spec = spec;
    this.pid = pid;
    this.#child = child;
    child?.on('exit', (code, signal) => {
      this.#exitCode = code ?? (signal ? -1 : null);
      live.delete(pid);
    });
  }

  /** Starts the process. With `persistent`, it survives this Node process. */
  static start(spec: ProcessSpec, persistent = false): ManagedProcess {
    const fd = openSync(spec.logFile, 'a');
    try {
      const child = spawn(spec.command, spec.args, {
        cwd: spec.cwd,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...spec.env },
        stdio: ['ignore', fd, fd],
        detached: true,
      });
      if (child.pid === undefined) throw new BedStartError(`${spec.name}: could not start ${spec.command}`);
      if (persistent) child.unref();
      else {
        installExitHook();
        live.add(child.pid);
      }
      return new ManagedProcess(spec, child.pid, child);
    } finally {
      closeSync(fd);
    }
  }

  /** A process started by another Node process (a bed brought up by `testbed up`). */
  static attach(spec: ProcessSpec, pid: number): ManagedProcess {
    return new ManagedProcess(spec, pid);
  }

  get running(): boolean {
    if (this.#child) return this.#exitCode === undefined;
    return isAlive(this.pid);
  }

  describe(): string {
    return `${this.spec.command} ${this.spec.args.join(' ')}`;
  }

  failure(reason: string): BedStartError {
    return new BedStartError(
      `${this.spec.name} ${reason}\n  command: ${this.describe()}\n  log: ${this.spec.logFile}\n  log tail:\n${logTail(
        this.spec.logFile,
      )
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n')}`,
    );
  }

  /** Polls `probe` until it returns true; fails fast if the process exits. */
  async waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw this.failure(`exited before it was ${what}`);
      if (await probe().catch(() => false)) return;
      if (Date.now() > deadline) throw this.failure(`was not ${what} after ${timeoutMs / 1000}s`);
      await sleep(150);
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    killGroup(this.pid, signal);
    const deadline = Date.now() + graceMs;
    while (this.running && Date.now() < deadline) await sleep(50);
    if (this.running) {
      killGroup(this.pid, 'SIGKILL');
      while (this.running) await sleep(50);
    }
    live.delete(this.pid);
  }
}
