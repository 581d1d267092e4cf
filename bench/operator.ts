/**
 * The operator as a child process for the benchmark: like the e2e harness's
 * OperatorProcess (as its own ServiceAccount, the bed CA trusted) but with the
 * operator's default flags (the harness shortens --backoff-max) and without
 * leader election (a restart of the bed's API server outlasts the renew
 * deadline), plus what measuring needs: the spawn time, Node flags such as
 * --cpu-prof, log lines with their times, and waits on them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Bed } from '../test/bed/bed.ts';
import { freePort } from '../test/bed/bed.ts';
import { OPERATOR_NAMESPACE, ROOT } from '../test/e2e/harness.ts';

export interface LogLine {
  /** Epoch milliseconds, from the line's `time`. */
  at: number;
  msg: string;
  oidcpublisher?: string;
  [k: string]: unknown;
}

export interface LaunchOptions {
  /** The operator's entry point: the built dist/src/cli.js the image runs, or src/cli.ts. */
  entry?: string;
  /** Operator flags, after the defaults (a later flag wins). */
  args?: string[];
  /** Flags for node itself, e.g. --cpu-prof. */
  nodeArgs?: string[];
}

export class BenchOperator {
  readonly child: ChildProcess;
  readonly healthPort: number;
  /** Epoch milliseconds just before the spawn. */
  readonly spawnedAt: number;
  /** performance.now() just before the spawn. */
  readonly spawnedPerf: number;
  readonly logs: LogLine[] = [];
  readonly exited: Promise<number>;
  readonly #waiters = new Set<() => void>();
  readonly #tail: string[] = [];

  private constructor(child: ChildProcess, healthPort: number, spawnedAt: number, spawnedPerf: number) {
    this.child = child;
    this.healthPort = healthPort;
    this.spawnedAt = spawnedAt;
    this.spawnedPerf = spawnedPerf;
    let buffered = '';
    const collect = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) this.#line(line);
      for (const w of this.#waiters) w();
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 0))),
    );
  }

  #line(line: string): void {
    this.#tail.push(line);
    if (this.#tail.length > 20) this.#tail.shift();
    if (!line.startsWith('{')) return;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (typeof o.msg !== 'string') return;
      this.logs.push({ ...o, msg: o.msg, at: Date.parse(String(o.time)) } as LogLine);
    } catch {
      // Not a log line.
    }
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('the operator did not start');
    return this.child.pid;
  }

  /** The last lines of its output, for error messages. */
  tail(): string {
    return this.#tail.join('\n');
  }

  static async launch(bed: Bed, kubeconfig: string, opts: LaunchOptions = {}): Promise<BenchOperator> {
    const port = await freePort();
    const args = [
      ...(opts.nodeArgs ?? []),
      opts.entry ?? join(ROOT, 'src', 'cli.ts'),
      'run',
      '--kubeconfig',
      kubeconfig,
      '--namespace',
      OPERATOR_NAMESPACE,
      '--health-addr',
      `127.0.0.1:${port}`,
      '--log-level',
      'debug',
      '--leader-elect',
      'false',
      // The bed's storage servers listen on the loopback address.
      '--storage-allowed-hosts',
      's3=127.0.0.1,gcs=127.0.0.1,azureBlob=127.0.0.1,s3=localhost,gcs=localhost,azureBlob=localhost',
      ...(opts.args ?? []),
    ];
    const spawnedAt = Date.now();
    const spawnedPerf = performance.now();
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        NODE_EXTRA_CA_CERTS: bed.state.caFile,
      },
    });
    return new BenchOperator(child, port, spawnedAt, spawnedPerf);
  }

  /** HTTP status of /readyz, 0 when it does not answer. */
  async readyz(): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${this.healthPort}/readyz`).catch(() => undefined);
    await res?.body?.cancel();
    return res?.status ?? 0;
  }

  /** Polls /readyz every `everyMs` until 200; returns milliseconds since the spawn. */
  async waitReady(timeoutMs = 60_000, everyMs = 10): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if ((await this.readyz()) === 200) return performance.now() - this.spawnedPerf;
      if (this.child.exitCode !== null) throw new Error(`the operator exited:\n${this.tail()}`);
      await sleep(everyMs);
    }
    throw new Error(`the operator was not ready after ${timeoutMs} ms:\n${this.tail()}`);
  }

  /** The /metrics text. */
  async metrics(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.healthPort}/metrics`);
    return res.text();
  }

  /** Resolves with the first log line from index `from` on that matches, waiting for it. */
  async waitForLog(match: (l: LogLine) => boolean, timeoutMs: number, from = 0): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    let i = from;
    for (;;) {
      for (; i < this.logs.length; i++) {
        const l = this.logs[i];
        if (l && match(l)) return l;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching log line within ${timeoutMs} ms:\n${this.tail()}`);
      if (this.child.exitCode !== null) throw new Error(`the operator exited:\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.#waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, Math.min(left, 1000));
        this.#waiters.add(done);
      });
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Whether a log line reports the end of a sync of `name` (nothing to write, or objects written). */
export function isSyncOf(name: string): (l: LogLine) => boolean {
  return (l) => l.oidcpublisher === name && (l.msg === 'up to date' || l.msg === 'published');
}
