/**
 * moto's server (the moto Python package) on a free loopback port: a stand-in
 * for AWS IAM, which no real server here offers. Started per test file, stopped
 * after it. moto 5.2.1 lacks two of IAM's OIDC provider actions; moto-iam.py
 * adds them (see there).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './bed.ts';
import { BedStartError, ManagedProcess } from './process.ts';

export interface Moto {
  endpoint: string;
  /** moto's fixed account. */
  account: string;
  logFile: string;
  stop(): Promise<void>;
}

export const MOTO_INSTALL = "pip install 'moto[server]'";

/** Starts moto; a clear failure (never a skip) when moto_server is not installed. */
export async function startMoto(): Promise<Moto> {
  const found = spawnSync('sh', ['-c', 'command -v moto_server'], { encoding: 'utf8' });
  if (found.status !== 0) {
    throw new BedStartError(`moto_server is not on the PATH: install it with ${MOTO_INSTALL}`);
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'oidc-moto-'));
  const proc = ManagedProcess.start({
    name: 'moto_server',
    command: 'python3',
    args: [join(import.meta.dirname, 'moto-iam.py'), '-H', '127.0.0.1', '-p', String(port)],
    logFile: join(dir, 'moto.log'),
    env: {
      PYTHONUNBUFFERED: '1',
      ...(process.env.PYENV_VERSION ? { PYENV_VERSION: process.env.PYENV_VERSION } : {}),
    },
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await proc.waitUntil(
      `serving on ${endpoint} (if python3 cannot import moto: ${MOTO_INSTALL})`,
      async () => (await fetch(`${endpoint}/moto-api/`)).status < 500,
      30_000,
    );
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
  return {
    endpoint,
    account: '123456789012',
    logFile: proc.spec.logFile,
    stop: () => proc.stop('SIGTERM', 5_000),
  };
}
