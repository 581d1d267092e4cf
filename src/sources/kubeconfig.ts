/**
 * Kubeconfigs from Secrets are untrusted input: one could make the operator run
 * a command (exec, auth-provider), read its own files (token-file, client-key
 * paths: the operator's ServiceAccount token) and send them to any server, or
 * switch TLS verification off. Only inline credentials are accepted; what
 * passes is read without client-node, which never sees these kubeconfigs.
 */
import { parse } from 'yaml';
import { OidcPublisherError } from '../errors.ts';
import { type AccessSpec, resolveKubeconfig, serverUrlProblem } from '../kube/access.ts';

const USER_FIELDS_ALLOWED = new Set(['token', 'client-certificate-data', 'client-key-data', 'extensions']);
const USER_FIELDS_REFUSED: Record<string, string> = {
  exec: 'runs a command (exec)',
  'auth-provider': 'uses an auth-provider plugin',
  'token-file': 'reads a token from a local file (token-file)',
  tokenFile: 'reads a token from a local file (tokenFile)',
  'client-certificate': 'reads a client certificate from a local file',
  'client-key': 'reads a client key from a local file',
  username: 'uses basic authentication',
  password: 'uses basic authentication',
  as: 'impersonates another user',
  'as-groups': 'impersonates groups',
  'as-uid': 'impersonates another user',
  'as-user-extra': 'impersonates another user',
};
const CLUSTER_FIELDS_ALLOWED = new Set([
  'server',
  'certificate-authority-data',
  'tls-server-name',
  'extensions',
  'disable-compression',
]);
const CLUSTER_FIELDS_REFUSED: Record<string, string> = {
  'certificate-authority': 'reads its CA from a local file',
  'insecure-skip-tls-verify': 'turns TLS verification off',
  'proxy-url': 'sends requests through a proxy',
};

function refused(what: string): OidcPublisherError {
  return new OidcPublisherError('KUBECONFIG_REFUSED', `kubeconfig refused: ${what}`);
}

function invalidConfig(what: string, cause?: unknown): OidcPublisherError {
  return new OidcPublisherError('KUBECONFIG_INVALID', `kubeconfig invalid: ${what}`, { cause });
}

type Entry = Record<string, unknown>;

function named(list: unknown, field: string, what: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  if (list === undefined || list === null) return out;
  if (!Array.isArray(list)) throw invalidConfig(`${what} is not a list`);
  for (const item of list) {
    if (!item || typeof item !== 'object') throw invalidConfig(`an entry of ${what} is not an object`);
    const { name } = item as Entry;
    const body = (item as Entry)[field];
    if (typeof name !== 'string' || !name) throw invalidConfig(`an entry of ${what} has no name`);
    // client-node uses the first entry of a name; checking only the last would let a refused one through.
    if (out.has(name)) throw invalidConfig(`${what} has more than one entry named ${JSON.stringify(name)}`);
    if (!body || typeof body !== 'object')
      throw invalidConfig(`${what} entry ${JSON.stringify(name)} has no ${field}`);
    out.set(name, body as Entry);
  }
  return out;
}

/** Parses an untrusted kubeconfig, refusing anything but inline credentials over verified TLS. */
export function parseUntrustedKubeconfig(text: string): AccessSpec {
  let doc: unknown;
  try {
    doc = parse(text, { maxAliasCount: 10 });
  } catch (err) {
    throw invalidConfig('not valid YAML', err);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw invalidConfig('not a YAML mapping');
  const cfg = doc as Entry;
  const users = named(cfg.users, 'user', 'users');
  const clusters = named(cfg.clusters, 'cluster', 'clusters');
  const contexts = named(cfg.contexts, 'context', 'contexts');
  for (const [name, user] of users) {
    for (const field of Object.keys(user)) {
      // Own properties only: "constructor" or "__proto__" would otherwise find Object.prototype's.
      const why = Object.hasOwn(USER_FIELDS_REFUSED, field) ? USER_FIELDS_REFUSED[field] : undefined;
      if (why) throw refused(`user ${JSON.stringify(name)} ${why}`);
      if (!USER_FIELDS_ALLOWED.has(field))
        throw refused(`user ${JSON.stringify(name)} has unsupported field ${JSON.stringify(field)}`);
    }
  }
  for (const [name, cluster] of clusters) {
    for (const field of Object.keys(cluster)) {
      const why = Object.hasOwn(CLUSTER_FIELDS_REFUSED, field) ? CLUSTER_FIELDS_REFUSED[field] : undefined;
      if (field === 'insecure-skip-tls-verify' && cluster[field] === false) continue;
      if (why) throw refused(`cluster ${JSON.stringify(name)} ${why}`);
      if (!CLUSTER_FIELDS_ALLOWED.has(field)) {
        throw refused(`cluster ${JSON.stringify(name)} has unsupported field ${JSON.stringify(field)}`);
      }
    }
    const server = cluster.server;
    if (typeof server !== 'string' || !server.startsWith('https://')) {
      throw refused(`cluster ${JSON.stringify(name)} server must be an https URL`);
    }
    const problem = serverUrlProblem(server);
    if (problem) throw refused(`cluster ${JSON.stringify(name)} server ${problem}`);
  }
  const current = cfg['current-context'];
  if (typeof current !== 'string' || !current) throw invalidConfig('no current-context');
  const ctx = contexts.get(current);
  if (!ctx) throw invalidConfig(`current-context ${JSON.stringify(current)} is not among the contexts`);
  if (typeof ctx.cluster !== 'string' || !clusters.has(ctx.cluster)) {
    throw invalidConfig(`context ${JSON.stringify(current)} names no known cluster`);
  }
  if (typeof ctx.user !== 'string' || !users.has(ctx.user)) {
    throw invalidConfig(`context ${JSON.stringify(current)} names no known user`);
  }
  const resolved = resolveKubeconfig(cfg, '/nonexistent');
  // Everything that needs client-node or a file was refused above.
  if (resolved.kind !== 'static') throw refused(resolved.why);
  const { ca, cert, key, token } = resolved.spec;
  if ([ca, cert, key, token].some((m) => m && 'file' in m)) throw refused('reads a local file');
  return resolved.spec;
}
