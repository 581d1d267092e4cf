/**
 * How to reach an API server: its URL, and the TLS material and credentials of
 * each request. Requests go over node:https with what this gives
 * (kube/http.ts, sources/apiserver.ts). The kubeconfigs the operator meets
 * (in-cluster ServiceAccount, token, token file, client certificate) are read
 * here without @kubernetes/client-node, which loads about 1,500 modules and
 * 50 MB with them; client-node is imported only for a kubeconfig that needs
 * what only it does (exec and auth-provider plugins, proxies, basic
 * authentication, impersonation).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { OidcPublisherError } from '../errors.ts';

export interface KubeAccess {
  /** The API server URL, without a trailing slash. */
  readonly server: string;
  /** TLS options and the Authorization header for one request: a fresh object each call. */
  requestOptions(): Promise<RequestOptions>;
  /**
   * requestOptions() sets an agent that must be used (client-node's, for a proxy): callers do not
   * put their own keep-alive agent in its place.
   */
  readonly ownAgent: boolean;
  /** Why client-node was needed, when it was. */
  readonly viaClientNode?: string;
}

/** Inline bytes, or a file read when the material is refreshed. */
export type Material = { data: Buffer } | { file: string };

/** What a kubeconfig without plugins says about its current context. */
export interface AccessSpec {
  server: string;
  ca?: Material;
  cert?: Material;
  key?: Material;
  token?: Material;
  /** tls-server-name: the name the server's certificate is checked against. */
  servername?: string;
  insecureSkipTlsVerify?: boolean;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** How long token and certificate files are trusted before being read again (client-node's too). */
const REFRESH_MS = 60_000;

function invalid(what: string, cause?: unknown): OidcPublisherError {
  return new OidcPublisherError('KUBECONFIG_INVALID', `kubeconfig invalid: ${what}`, { cause });
}

/**
 * An AccessSpec put to use. Files (a projected ServiceAccount token, rotated by the kubelet)
 * are read again once they are a minute old.
 */
export class StaticAccess implements KubeAccess {
  readonly server: string;
  readonly ownAgent = false;
  readonly #spec: AccessSpec;
  readonly #refreshMs: number;
  #cached: { at: number; options: RequestOptions } | undefined;

  constructor(spec: AccessSpec, opts: { refreshMs?: number } = {}) {
    this.server = spec.server.replace(/\/+$/, '');
    this.#spec = spec;
    this.#refreshMs = opts.refreshMs ?? REFRESH_MS;
  }

  #read(m: Material | undefined, what: string): Buffer | undefined {
    if (!m) return undefined;
    if ('data' in m) return m.data;
    try {
      return readFileSync(m.file);
    } catch (err) {
      const code = (err as { code?: string } | undefined)?.code;
      throw invalid(
        `${what} file ${JSON.stringify(m.file)} could not be read${code ? ` (${code})` : ''}`,
        err,
      );
    }
  }

  #load(): RequestOptions {
    const s = this.#spec;
    const token = this.#read(s.token, 'token')?.toString('utf8').trim();
    const ca = this.#read(s.ca, 'certificate-authority');
    const cert = this.#read(s.cert, 'client-certificate');
    const key = this.#read(s.key, 'client-key');
    return {
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      ...(s.servername ? { servername: s.servername } : {}),
      ...(s.insecureSkipTlsVerify ? { rejectUnauthorized: false } : {}),
      ...(token ? { headers: { Authorization: `Bearer ${token}` } } : {}),
    };
  }

  async requestOptions(): Promise<RequestOptions> {
    const now = Date.now();
    if (!this.#cached || now - this.#cached.at >= this.#refreshMs) {
      this.#cached = { at: now, options: this.#load() };
    }
    const o = this.#cached.options;
    return { ...o, ...(o.headers ? { headers: { ...o.headers } } : {}) };
  }
}

type Entry = Record<string, unknown>;

/** The first entry of that name, as kubectl and client-node take it. */
function entry(list: unknown, name: string, field: string, what: string): Entry {
  if (!Array.isArray(list)) throw invalid(`no ${what}`);
  for (const item of list) {
    if (item && typeof item === 'object' && (item as Entry).name === name) {
      const body = (item as Entry)[field];
      if (!body || typeof body !== 'object' || Array.isArray(body)) {
        throw invalid(`${what} entry ${JSON.stringify(name)} has no ${field}`);
      }
      return body as Entry;
    }
  }
  throw invalid(`no ${what} entry named ${JSON.stringify(name)}`);
}

/** Fields only client-node can act on, and what each does. */
const CLIENT_NODE_USER_FIELDS: Record<string, string> = {
  exec: 'an exec credential plugin',
  'auth-provider': 'an auth-provider plugin',
  username: 'basic authentication',
  password: 'basic authentication',
  as: 'impersonation',
  'as-groups': 'impersonation',
  'as-uid': 'impersonation',
  'as-user-extra': 'impersonation',
};

export type ResolvedKubeconfig = { kind: 'static'; spec: AccessSpec } | { kind: 'clientNode'; why: string };

function str(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw invalid(`${what} is not a string`);
  return v;
}

function base64(v: unknown, what: string): Material | undefined {
  const s = str(v, what);
  return s === undefined ? undefined : { data: Buffer.from(s, 'base64') };
}

/**
 * The current context of a parsed kubeconfig, with file paths made absolute against `baseDir`
 * (the kubeconfig's directory, as kubectl does); `clientNode` when it needs client-node.
 */
export function resolveKubeconfig(doc: unknown, baseDir: string): ResolvedKubeconfig {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw invalid('not a YAML mapping');
  const cfg = doc as Entry;
  const current = str(cfg['current-context'], 'current-context');
  if (!current) throw invalid('no current-context');
  const ctx = entry(cfg.contexts, current, 'context', 'contexts');
  const clusterName = str(ctx.cluster, `context ${JSON.stringify(current)} cluster`);
  if (!clusterName) throw invalid(`context ${JSON.stringify(current)} names no cluster`);
  const cluster = entry(cfg.clusters, clusterName, 'cluster', 'clusters');
  const userName = str(ctx.user, `context ${JSON.stringify(current)} user`);
  const user = userName ? entry(cfg.users, userName, 'user', 'users') : {};
  for (const [field, what] of Object.entries(CLIENT_NODE_USER_FIELDS)) {
    if (user[field] !== undefined && user[field] !== null && user[field] !== '') {
      return { kind: 'clientNode', why: `user ${JSON.stringify(userName)} uses ${what}` };
    }
  }
  if (str(cluster['proxy-url'], 'proxy-url')) {
    return { kind: 'clientNode', why: `cluster ${JSON.stringify(clusterName)} uses a proxy` };
  }
  const server = str(cluster.server, `cluster ${JSON.stringify(clusterName)} server`);
  if (!server) throw invalid(`cluster ${JSON.stringify(clusterName)} has no server`);
  const path = (v: unknown, what: string): Material | undefined => {
    const p = str(v, what);
    return p === undefined ? undefined : { file: isAbsolute(p) ? p : resolve(baseDir, p) };
  };
  const insecure = cluster['insecure-skip-tls-verify'];
  if (insecure !== undefined && typeof insecure !== 'boolean') {
    throw invalid(`cluster ${JSON.stringify(clusterName)} insecure-skip-tls-verify is not a boolean`);
  }
  const spec: AccessSpec = { server };
  const ca =
    base64(cluster['certificate-authority-data'], 'certificate-authority-data') ??
    path(cluster['certificate-authority'], 'certificate-authority');
  const cert =
    base64(user['client-certificate-data'], 'client-certificate-data') ??
    path(user['client-certificate'], 'client-certificate');
  const key = base64(user['client-key-data'], 'client-key-data') ?? path(user['client-key'], 'client-key');
  const tokenText = str(user.token, 'token');
  const token = tokenText ? { data: Buffer.from(tokenText) } : path(user.tokenFile, 'tokenFile');
  const servername = str(cluster['tls-server-name'], 'tls-server-name');
  if (ca) spec.ca = ca;
  if (cert) spec.cert = cert;
  if (key) spec.key = key;
  if (token) spec.token = token;
  if (servername) spec.servername = servername;
  if (insecure) spec.insecureSkipTlsVerify = true;
  return { kind: 'static', spec };
}

/** The in-cluster ServiceAccount, when the process runs in a Pod with one mounted. */
export function inClusterSpec(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): AccessSpec | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port || !existsSync(join(dir, 'token'))) return undefined;
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: { file: join(dir, 'ca.crt') },
    token: { file: join(dir, 'token') },
  };
}

async function viaClientNode(
  why: string,
  load: (kc: import('@kubernetes/client-node').KubeConfig) => void,
): Promise<KubeAccess> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  load(kc);
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw invalid('no current cluster');
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ownAgent: Boolean(cluster.proxyUrl),
    viaClientNode: why,
    async requestOptions() {
      const opts: RequestOptions = {};
      await kc.applyToHTTPSOptions(opts);
      return opts;
    },
  };
}

async function fromFile(file: string): Promise<KubeAccess> {
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, 'utf8'), { maxAliasCount: 10 });
  } catch (err) {
    const code = (err as { code?: string } | undefined)?.code;
    throw new OidcPublisherError(
      'KUBECONFIG_INVALID',
      `kubeconfig ${JSON.stringify(file)} could not be read${code ? ` (${code})` : ''}`,
      { cause: err },
    );
  }
  const resolved = resolveKubeconfig(doc, dirname(resolve(file)));
  if (resolved.kind === 'static') return new StaticAccess(resolved.spec);
  return viaClientNode(resolved.why, (kc) => kc.loadFromFile(file));
}

function requireHttps(access: KubeAccess, where: string): KubeAccess {
  if (!access.server.startsWith('https://')) {
    throw new OidcPublisherError(
      'KUBECONFIG_INVALID',
      `kubeconfig ${where} names a server that is not https: ${JSON.stringify(access.server)}`,
    );
  }
  return access;
}

/**
 * A kubeconfig the person running the process chose, loaded as kubectl loads it: `path` (a
 * file), else $KUBECONFIG, ~/.kube/config, then the
 * in-cluster ServiceAccount. Only https servers.
 */
export async function loadKubeAccess(
  path: string | undefined,
  env: NodeJS.ProcessEnv,
  opts: { serviceAccountDir?: string } = {},
): Promise<KubeAccess> {
  const where = path ? JSON.stringify(path) : '(default)';
  try {
    const files = (path ?? env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
    if (files.length > 1) {
      throw invalid(`${where} lists ${files.length} files; pass one kubeconfig (merging is not supported)`);
    }
    const [file] = files;
    if (file) return requireHttps(await fromFile(file), where);
    const home = join(env.HOME ?? homedir(), '.kube', 'config');
    if (existsSync(home)) return requireHttps(await fromFile(home), where);
    const inCluster = inClusterSpec(env, opts.serviceAccountDir);
    if (inCluster) return new StaticAccess(inCluster);
  } catch (err) {
    if (err instanceof OidcPublisherError) throw err;
    const code = (err as { code?: string } | undefined)?.code;
    throw new OidcPublisherError(
      'KUBECONFIG_INVALID',
      `kubeconfig ${where} could not be loaded${code ? ` (${code})` : ''}`,
      { cause: err },
    );
  }
  throw new OidcPublisherError(
    'KUBECONFIG_INVALID',
    'no kubeconfig: pass --kubeconfig, set $KUBECONFIG, or run in a Pod with a ServiceAccount',
  );
}
