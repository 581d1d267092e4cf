/**
 * The document source of each OidcPublisher: the operator's own cluster, or a
 * kubeconfig from a Secret. A source (and its keep-alive agent) is reused until
 * the Secret's content changes, so a rotated kubeconfig takes effect on the
 * next sync without a restart.
 */
import { createHash } from 'node:crypto';
import type { ResolvedSpec } from '../core/spec.ts';
import { OidcPublisherError } from '../errors.ts';
import { type KubeAccess, StaticAccess } from '../kube/access.ts';
import type { SecretReader } from '../secrets.ts';
import { ApiServerSource, type DocumentSource } from './apiserver.ts';
import { parseUntrustedKubeconfig } from './kubeconfig.ts';

export class SourceCache {
  readonly #secrets: SecretReader;
  readonly #namespace: string;
  readonly #timeoutMs: number;
  readonly #defaultAccess: KubeAccess;
  #default: DocumentSource | undefined;
  readonly #fromSecrets = new Map<string, { hash: string; source: DocumentSource }>();

  constructor(opts: {
    secrets: SecretReader;
    namespace: string;
    timeoutMs: number;
    defaultAccess: KubeAccess;
  }) {
    this.#secrets = opts.secrets;
    this.#namespace = opts.namespace;
    this.#timeoutMs = opts.timeoutMs;
    this.#defaultAccess = opts.defaultAccess;
  }

  /** The source of `spec`, read through a kubeconfig Secret only when it allows the OidcPublisher `publisher`. */
  async get(spec: ResolvedSpec, publisher: string): Promise<DocumentSource> {
    const ref = spec.kubeconfigSecret;
    if (!ref) {
      this.#default ??= new ApiServerSource(this.#defaultAccess, { timeoutMs: this.#timeoutMs });
      return this.#default;
    }
    const data = await this.#secrets.readSecret(this.#namespace, ref.name, publisher);
    const bytes = data.get(ref.key);
    if (!bytes) {
      throw new OidcPublisherError(
        'SECRET_NOT_FOUND',
        `Secret ${this.#namespace}/${ref.name} has no key ${JSON.stringify(ref.key)}`,
      );
    }
    const id = `${ref.name}/${ref.key}`;
    const hash = createHash('sha256').update(bytes).digest('hex');
    const cached = this.#fromSecrets.get(id);
    if (cached?.hash === hash) return cached.source;
    const source = new ApiServerSource(new StaticAccess(parseUntrustedKubeconfig(bytes.toString('utf8'))), {
      timeoutMs: this.#timeoutMs,
    });
    cached?.source.close();
    this.#fromSecrets.set(id, { hash, source });
    return source;
  }

  close(): void {
    this.#default?.close();
    for (const { source } of this.#fromSecrets.values()) source.close();
    this.#fromSecrets.clear();
  }
}
