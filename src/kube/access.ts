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
import { OidcPublisherError, redactUrl } from '../errors.ts';

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
};

/**
 * Fields of a kubeconfig v1 user entry that nothing here acts on: client-node 2.0.1 sends only
 * Impersonate-User (from `as`), so requests would go out without the impersonation asked for.
 */
const UNSUPPORTED_USER_FIELDS: Record<string, string> = {
  'as-groups': 'impersonating groups',
  'as-uid': 'impersonating a UID',
  'as-user-extra': 'impersonating extra user fields',
};

/** Every field of a kubeconfig v1 user entry (AuthInfo); any other is a mistake, not ignored. */
const KNOWN_USER_FIELDS = new Set([
  'client-certificate',
  'client-certificate-data',
  'client-key',
  'client-key-data',
  'token',
  'tokenFile',
  'as',
  'as-uid',
  'as-groups',
  'as-user-extra',
  'username',
  'password',
  'auth-provider',
  'exec',
  'extensions',
]);

export type ResolvedKubeconfig = { kind: 'static'; spec: AccessSpec } | { kind: 'clientNode'; why: string };

function str(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw invalid(`${what} is not a string`);
  return v;
}

/** Standard base64 with padding, as kubectl writes and Go decodes it; line breaks allowed. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function base64(v: unknown, what: string): Material | undefined {
  const s = str(v, what);
  if (s === undefined) return undefined;
  const compact = s.replace(/\s+/g, '');
  // Buffer.from() skips what is not base64 and returns whatever is left: refuse instead.
  if (!compact || !BASE64.test(compact)) throw invalid(`${what} is not valid base64`);
  return { data: Buffer.from(compact, 'base64') };
}

function set(entry: Entry, field: string): boolean {
  const v = Object.hasOwn(entry, field) ? entry[field] : undefined;
  return v !== undefined && v !== null && v !== '';
}

/**
 * Why a kubeconfig server URL is refused, or undefined. Node sends a URL's user name and password
 * as basic authentication, and they would show in every message naming the server; a query or
 * fragment has no meaning for an API server and may carry a token.
 */
export function serverUrlProblem(server: string): string | undefined {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return 'is not a URL';
  }
  if (url.username || url.password || /^[a-z][a-z0-9+.-]*:\/\/[^/?#\\]*@/i.test(server)) {
    return 'must not contain a user name or password';
  }
  if (url.search || url.hash || server.includes('?') || server.includes('#')) {
    return 'must not contain a query or fragment';
  }
  return undefined;
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
  const c = `cluster ${JSON.stringify(clusterName)}`;
  const u = `user ${JSON.stringify(userName)}`;
  const server = str(cluster.server, `${c} server`);
  if (!server) throw invalid(`${c} has no server`);
  const serverProblem = serverUrlProblem(server);
  if (serverProblem) throw invalid(`${c} server ${serverProblem}`);
  for (const field of Object.keys(user)) {
    if (!KNOWN_USER_FIELDS.has(field)) {
      const hint = field === 'token-file' ? ' (kubectl reads tokenFile)' : '';
      throw invalid(`${u} has unknown field ${JSON.stringify(field)}${hint}`);
    }
    if (Object.hasOwn(UNSUPPORTED_USER_FIELDS, field) && set(user, field)) {
      throw invalid(`${u} sets ${field} (${UNSUPPORTED_USER_FIELDS[field]}), which is not supported`);
    }
  }
  const insecure = cluster['insecure-skip-tls-verify'];
  if (insecure !== undefined && typeof insecure !== 'boolean') {
    throw invalid(`${c} insecure-skip-tls-verify is not a boolean`);
  }
  if (insecure && (set(cluster, 'certificate-authority-data') || set(cluster, 'certificate-authority'))) {
    throw invalid(`${c} sets a certificate authority and insecure-skip-tls-verify: true; use one`);
  }
  for (const [data, file] of [
    ['client-certificate-data', 'client-certificate'],
    ['client-key-data', 'client-key'],
  ] as const) {
    if (set(user, data) && set(user, file)) throw invalid(`${u} sets both ${data} and ${file}`);
  }
  // The references disagree on which wins (client-go the data, client-node the file; kubectl
  // refuses the pair), so one is asked for.
  if (set(cluster, 'certificate-authority-data') && set(cluster, 'certificate-authority')) {
    throw invalid(`${c} sets both certificate-authority-data and certificate-authority`);
  }
  // client-go sends the file's token, client-node (which does not read tokenFile) the inline one.
  if (set(user, 'token') && set(user, 'tokenFile')) throw invalid(`${u} sets both token and tokenFile`);
  if (set(user, 'token') && (set(user, 'username') || set(user, 'password'))) {
    throw invalid(`${u} sets both a token and basic authentication`);
  }
  const ca = base64(cluster['certificate-authority-data'], `${c} certificate-authority-data`);
  const certData = base64(user['client-certificate-data'], `${u} client-certificate-data`);
  const keyData = base64(user['client-key-data'], `${u} client-key-data`);
  for (const [field, what] of Object.entries(CLIENT_NODE_USER_FIELDS)) {
    if (set(user, field)) {
      // client-node reads `token-file`, not kubectl's `tokenFile`: it would send no token.
      if (set(user, 'tokenFile')) {
        throw invalid(`${u} sets tokenFile, which is not supported together with ${what}`);
      }
      return { kind: 'clientNode', why: `${u} uses ${what}` };
    }
  }
  if (str(cluster['proxy-url'], 'proxy-url')) {
    if (set(user, 'tokenFile')) {
      throw invalid(`${u} sets tokenFile, which is not supported together with a proxy`);
    }
    return { kind: 'clientNode', why: `${c} uses a proxy` };
  }
  const path = (v: unknown, what: string): Material | undefined => {
    const p = str(v, what);
    return p === undefined ? undefined : { file: isAbsolute(p) ? p : resolve(baseDir, p) };
  };
  const spec: AccessSpec = { server };
  const caFile = ca ?? path(cluster['certificate-authority'], 'certificate-authority');
  const cert = certData ?? path(user['client-certificate'], 'client-certificate');
  const key = keyData ?? path(user['client-key'], 'client-key');
  const tokenText = str(user.token, 'token');
  const token = tokenText ? { data: Buffer.from(tokenText) } : path(user.tokenFile, 'tokenFile');
  const servername = str(cluster['tls-server-name'], 'tls-server-name');
  if (caFile) spec.ca = caFile;
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
      `kubeconfig ${where} names a server that is not https: ${JSON.stringify(redactUrl(access.server))}`,
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
