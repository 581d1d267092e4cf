/**
 * Serving mode: `oidc-publisher serve` as a child process reading the bed's
 * API server, its JWKS under keep-alive load from this process; and, as a
 * reference, the API server's own /openid/v1/jwks with a token.
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Bed } from '../test/bed/bed.ts';
import { freePort } from '../test/bed/bed.ts';
import { type LoadResult, load } from './load.ts';

export interface ServeResult {
  serve: LoadResult;
  apiserver: LoadResult;
  connections: number;
  durationS: number;
}

export async function measureServe(
  bed: Bed,
  entry: string,
  nodeArgs: string[],
  token: string,
  opts: { connections: number; durationMs: number },
): Promise<ServeResult> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      entry,
      'serve',
      '--issuer',
      bed.issuer,
      '--kubeconfig',
      bed.adminKubeconfig,
      '--listen',
      `127.0.0.1:${port}`,
      '--health-addr',
      '',
      '--log-level',
      'warn',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    },
  );
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}/openid/v1/jwks`;
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await fetch(url).catch(() => undefined);
      await res?.body?.cancel();
      if (res?.status === 200) break;
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`serve did not serve the JWKS: ${stderr}`);
      await sleep(50);
    }
    const serve = await load(url, { connections: opts.connections, durationMs: opts.durationMs });
    const apiserver = await load(`${bed.apiserverURL}/openid/v1/jwks`, {
      connections: opts.connections,
      durationMs: opts.durationMs,
      ca: bed.ca,
      headers: { authorization: `Bearer ${token}` },
    });
    return { serve, apiserver, connections: opts.connections, durationS: opts.durationMs / 1000 };
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  }
}
