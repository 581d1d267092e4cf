/**
 * End-to-end helpers: install the operator's CRD and RBAC exactly as shipped in
 * crds/ and config/rbac, run the operator as its own ServiceAccount, and check
 * the results only from outside (kubectl, anonymous HTTPS, jose).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLocalJWKSet, type JWTPayload, jwtVerify } from 'jose';
import { parse } from 'yaml';
import type { Bed } from '../bed/bed.ts';
import { freePort } from '../bed/bed.ts';
import { request } from '../bed/http.ts';

export const ROOT = join(import.meta.dirname, '..', '..');
export const OPERATOR_NAMESPACE = 'oidc-publisher-system';
export const OPERATOR_SA = 'oidc-publisher';
/** --storage-allowed-hosts for the bed: MinIO, fake-gcs-server and Azurite, each on the loopback address. */
export const BED_STORAGE_ALLOWED_HOSTS = ['s3', 'gcs', 'azureBlob']
  .flatMap((kind) => [`${kind}=127.0.0.1`, `${kind}=localhost`])
  .join(',');

/** Applies crds/ and config/rbac; returns a kubeconfig with a token of the operator's ServiceAccount. */
export async function installOperator(bed: Bed): Promise<string> {
  await bed.kubectl(['apply', '-f', join(ROOT, 'crds')]);
  const established = () =>
    bed.kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/oidcpublishers.oidcpublisher.io',
    ]);
  // kubectl wait fails at once when it reads the CRD before the API server wrote any condition
  // (".status.conditions accessor error: <nil> is of the type <nil>"): wait again.
  for (let attempt = 1; ; attempt++) {
    try {
      await established();
      break;
    } catch (err) {
      if (attempt >= 5 || !/accessor error/.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await bed.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${OPERATOR_NAMESPACE}\n`,
  });
  await bed.kubectl(['apply', '-k', join(ROOT, 'config', 'rbac')]);
  return bed.serviceAccountKubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA);
}

export async function applyYaml(bed: Bed, yaml: string): Promise<string> {
  return bed.kubectl(['apply', '-f', '-'], { input: yaml });
}

/**
 * Creates or updates a Secret in the operator's namespace. It opts in to being used by the
 * OidcPublishers `allowedPublishers` names (the annotation oidcpublisher.io/allowed-publishers;
 * default "*", every publisher), or by none with `allowedPublishers: null`.
 */
export async function createSecret(
  bed: Bed,
  name: string,
  data: Record<string, string>,
  { allowedPublishers = '*' }: { allowedPublishers?: string | null } = {},
): Promise<void> {
  const encoded = Object.fromEntries(
    Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
  );
  const annotations =
    allowedPublishers === null ? {} : { 'oidcpublisher.io/allowed-publishers': allowedPublishers };
  await applyYaml(
    bed,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace: OPERATOR_NAMESPACE, annotations },
      type: 'Opaque',
      data: encoded,
    }),
  );
}

/** An OidcPublisher as `kubectl apply` takes it (JSON is YAML too). */
export interface PublisherManifest {
  apiVersion: string;
  kind: 'OidcPublisher';
  metadata: { name: string };
  spec: Record<string, unknown> & { storage: { s3: Record<string, unknown> } };
}

/**
 * The S3 sample of config/samples pointed at the bed: the bed's issuer, synced every 10s, written
 * to the bed's bucket under public/cluster-a (where the bed's issuer URL points) with the keys of
 * the Secret s3-writer. `spec` replaces members of the spec, `s3` members of spec.storage.s3.
 */
export function samplePublisher(
  bed: Bed,
  {
    name,
    spec = {},
    s3 = {},
  }: { name: string; spec?: Record<string, unknown>; s3?: Record<string, unknown> },
): PublisherManifest {
  const sample = parse(
    readFileSync(join(ROOT, 'config', 'samples', 'oidcpublisher_s3.yaml'), 'utf8'),
  ) as PublisherManifest;
  return {
    ...sample,
    metadata: { ...sample.metadata, name },
    spec: {
      ...sample.spec,
      issuerURL: bed.issuer,
      syncInterval: '10s',
      storage: {
        s3: {
          ...sample.spec.storage.s3,
          bucket: bed.state.s3.bucket,
          region: bed.state.s3.region,
          prefix: 'public/cluster-a',
          endpoint: bed.state.s3.endpoint,
          forcePathStyle: true,
          credentialsSecretRef: { name: 's3-writer' },
          ...s3,
        },
      },
      ...spec,
    },
  };
}

export interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface PublisherView {
  metadata: { name: string; generation: number; finalizers?: string[] };
  status?: {
    conditions?: Condition[];
    keys?: { kid: string }[];
    keyCount?: number;
    objects?: { key: string; url: string; sha256: string }[];
    [k: string]: unknown;
  };
}

export async function getPublisher(bed: Bed, name: string): Promise<PublisherView> {
  return JSON.parse(await bed.kubectl(['get', 'oidcpublisher', name, '-o', 'json'])) as PublisherView;
}

export function condition(p: PublisherView, type: string): Condition | undefined {
  return p.status?.conditions?.find((c) => c.type === type);
}

/** Polls until `check` returns a value (not undefined), or fails with the last view. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    }
    await sleep(200);
  }
}

/** Waits until the publisher's Ready condition has this status and reason. */
export async function waitForReady(
  bed: Bed,
  name: string,
  status: 'True' | 'False',
  reason?: string,
  timeoutMs = 30_000,
): Promise<PublisherView> {
  let last: PublisherView | undefined;
  try {
    return await eventually(
      `oidcpublisher/${name} Ready=${status}${reason ? `/${reason}` : ''}`,
      async () => {
        last = await getPublisher(bed, name);
        const ready = condition(last, 'Ready');
        const gen = last.metadata.generation;
        return ready?.status === status &&
          (!reason || ready.reason === reason) &&
          ready.observedGeneration === gen
          ? last
          : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}\nlast status: ${JSON.stringify(last?.status?.conditions, null, 2)}`,
    );
  }
}

export class OperatorProcess {
  readonly child: ChildProcess;
  readonly output: string[] = [];
  readonly healthPort: number;
  readonly exited: Promise<number>;

  private constructor(child: ChildProcess, healthPort: number) {
    this.child = child;
    this.healthPort = healthPort;
    let buffered = '';
    const collect = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      this.output.push(...lines);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 0))),
    );
  }

  /** Runs the operator (src/cli.ts on this Node) against the bed with the given kubeconfig. */
  static async start(bed: Bed, kubeconfig: string, args: string[] = []): Promise<OperatorProcess> {
    const op = await OperatorProcess.launch(bed, kubeconfig, args);
    await eventually('the operator to be ready', async () => {
      const res = await fetch(`http://127.0.0.1:${op.healthPort}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    });
    return op;
  }

  /** Like start, without waiting for /readyz: for operators that are expected never to get ready. */
  static async launch(bed: Bed, kubeconfig: string, args: string[] = []): Promise<OperatorProcess> {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'src', 'cli.ts'),
        'run',
        '--kubeconfig',
        kubeconfig,
        '--namespace',
        OPERATOR_NAMESPACE,
        '--health-addr',
        `127.0.0.1:${port}`,
        '--log-level',
        'debug',
        '--backoff-max',
        '5s',
        // The bed's MinIO, fake-gcs-server and Azurite listen on the loopback address.
        '--storage-allowed-hosts',
        BED_STORAGE_ALLOWED_HOSTS,
        ...args,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          NODE_EXTRA_CA_CERTS: bed.state.caFile,
        },
      },
    );
    return new OperatorProcess(child, port);
  }

  /** The text of its /metrics. */
  async metrics(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.healthPort}/metrics`);
    if (res.status !== 200) throw new Error(`/metrics: HTTP ${res.status}`);
    return res.text();
  }

  /** HTTP status of its /readyz, or 0 when it does not answer. */
  async readyz(): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${this.healthPort}/readyz`).catch(() => undefined);
    return res?.status ?? 0;
  }

  /** Structured log lines. */
  logs(): Record<string, unknown>[] {
    return this.output.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** The sum of a metric's samples over all its labels (0 when it has none yet). */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([-+\\d.eE]+|NaN)$`, 'gm'))) {
    sum += Number(m[1]);
  }
  return sum;
}

interface DiscoveryDoc {
  issuer: string;
  jwks_uri: string;
}

/**
 * Verifies a token the way a relying party does: anonymous GET of the issuer's
 * discovery document, exact issuer match, GET of its jwks_uri, signature check.
 */
export async function verifyAsRelyingParty(
  issuer: string,
  token: string,
  audience: string,
  ca: Buffer,
): Promise<JWTPayload> {
  const base = issuer.endsWith('/') ? issuer.slice(0, -1) : issuer;
  const d = await request(`${base}/.well-known/openid-configuration`, { ca });
  if (d.status !== 200) throw new Error(`discovery document: HTTP ${d.status}`);
  const discovery = d.json() as DiscoveryDoc;
  if (discovery.issuer !== issuer) throw new Error(`discovery issuer ${discovery.issuer} != ${issuer}`);
  const j = await request(discovery.jwks_uri, { ca });
  if (j.status !== 200) throw new Error(`JWKS: HTTP ${j.status}`);
  const jwks = createLocalJWKSet(j.json() as Parameters<typeof createLocalJWKSet>[0]);
  const { payload } = await jwtVerify(token, jwks, { issuer, audience });
  return payload;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `oidc-publisher <args>` (src/cli.ts on this Node), as a user would. */
export function runCli(args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'src', 'cli.ts'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
    });
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code: code ?? (signal ? 128 : 0), stdout, stderr }));
  });
}

/** The kid in a token's header ('' when it has none). */
export function kidOf(token: string): string {
  const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as {
    kid?: string;
  };
  return header.kid ?? '';
}
