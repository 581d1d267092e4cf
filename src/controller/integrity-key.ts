/**
 * The key the operator seals status.keys records with (core/record-mac.ts), kept in the Secret
 * oidc-publisher-integrity in its namespace. The Secret comes with the operator's manifests,
 * empty; the operator writes a random key into it the first time a sync needs one, and may
 * update only that Secret (no `create` on Secrets: with it and `get`, a Secret of type
 * service-account-token would hand out tokens of any ServiceAccount in the namespace). Replicas
 * racing to fill it settle on the first key written: an update carries the resourceVersion read,
 * and the one that loses (409) reads the winner's key.
 *
 * Once held, the key is the one this process seals with. The Secret is compared with it at most
 * every CHECK_MS: holding another key, or none (deleted and applied again), the held key is put
 * back, with an error log; deleted, the held key is still used and an error logged until the
 * Secret is back. A Secret lost or emptied while no replica holds its key means a new key:
 * retired keys whose records were sealed with the old one are refused, with KeyRefused Events
 * naming both key ids. Without a held key and without the Secret nothing is published
 * (INTEGRITY_KEY_UNAVAILABLE): the bucket keeps its retired keys until the Secret is restored.
 * The key is never logged; its id (an HMAC of a fixed label) is.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { MAC_KEY_MAX_BYTES, MAC_KEY_MIN_BYTES, type MacKey, macKey } from '../core/record-mac.ts';
import { describeError, OidcPublisherError } from '../errors.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import type { Logger } from '../log.ts';

/** The Secret's name in the operator's namespace (the Role grants update on this name only). */
export const INTEGRITY_SECRET = 'oidc-publisher-integrity';
/** The Secret's data key holding the MAC key. */
export const INTEGRITY_SECRET_KEY = 'record-mac-key';
/** How often a held key is compared with the Secret. */
export const CHECK_MS = 60_000;
const ATTEMPTS = 3;

type SecretClient = Pick<ClusterClient, 'readOwnSecret' | 'updateOwnSecret'>;

export interface IntegrityKeyOptions {
  name?: string;
  checkEveryMs?: number;
  /** A new random key (tests pass their own). */
  newSecret?: () => Uint8Array;
}

function sameKey(a: MacKey, b: MacKey): boolean {
  return a.secret.length === b.secret.length && timingSafeEqual(a.secret, b.secret);
}

export class IntegrityKey {
  readonly #client: SecretClient;
  readonly #namespace: string;
  readonly #name: string;
  readonly #log: Logger;
  readonly #checkEveryMs: number;
  readonly #newSecret: () => Uint8Array;
  #held: { key: MacKey; checkedAt: number } | undefined;
  #pending: Promise<MacKey> | undefined;

  constructor(client: SecretClient, namespace: string, log: Logger, opts: IntegrityKeyOptions = {}) {
    this.#client = client;
    this.#namespace = namespace;
    this.#name = opts.name ?? INTEGRITY_SECRET;
    this.#log = log;
    this.#checkEveryMs = opts.checkEveryMs ?? CHECK_MS;
    this.#newSecret = opts.newSecret ?? (() => randomBytes(MAC_KEY_MIN_BYTES));
  }

  get #secretName(): string {
    return `${this.#namespace}/${this.#name}`;
  }

  /**
   * The key to seal and check records with; INTEGRITY_KEY_UNAVAILABLE when none is held and the
   * Secret cannot be read or written. Concurrent callers share one check.
   */
  async get(now: Date): Promise<MacKey> {
    const held = this.#held;
    if (held && now.getTime() - held.checkedAt < this.#checkEveryMs) return held.key;
    if (!this.#pending) {
      this.#pending = this.#check(now.getTime()).finally(() => {
        this.#pending = undefined;
      });
    }
    return this.#pending;
  }

  async #check(nowMs: number): Promise<MacKey> {
    try {
      const key = await this.#load();
      this.#held = { key, checkedAt: nowMs };
      return key;
    } catch (err) {
      if (this.#held) {
        this.#log.warn(
          { err, secret: this.#secretName },
          'could not check the record MAC key Secret; sealing with the key held',
        );
        this.#held.checkedAt = nowMs;
        return this.#held.key;
      }
      throw new OidcPublisherError(
        'INTEGRITY_KEY_UNAVAILABLE',
        `the record MAC key Secret ${this.#secretName}: ${describeError(err)}; retired keys cannot be checked, nothing was published`,
        { cause: err },
      );
    }
  }

  async #load(): Promise<MacKey> {
    const held = this.#held?.key;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const secret = await this.#client.readOwnSecret(this.#namespace, this.#name);
      if (!secret) {
        if (!held)
          throw new Error(
            "it does not exist: it comes with the operator's manifests (config/rbac, the Helm chart); apply them again",
          );
        this.#log.error(
          { secret: this.#secretName, keyID: held.id },
          'the record MAC key Secret is gone; sealing with the key held, which is written back once the Secret is applied again',
        );
        return held;
      }
      const bytes = secret.data.get(INTEGRITY_SECRET_KEY);
      const found =
        bytes && bytes.length >= MAC_KEY_MIN_BYTES && bytes.length <= MAC_KEY_MAX_BYTES
          ? macKey(new Uint8Array(bytes))
          : undefined;
      if (found && (!held || sameKey(found, held))) {
        if (!held) this.#log.info({ secret: this.#secretName, keyID: found.id }, 'loaded the record MAC key');
        return found;
      }
      const key = held ?? macKey(this.#newSecret());
      const written = await this.#client.updateOwnSecret(this.#namespace, this.#name, secret, [
        [INTEGRITY_SECRET_KEY, key.secret],
      ]);
      // Another replica (or writer) came first: read again.
      if (written === 'conflict') continue;
      const fields = { secret: this.#secretName, keyID: key.id, ...(found ? { found: found.id } : {}) };
      if (held)
        this.#log.error(
          fields,
          found
            ? 'the record MAC key Secret held another key; put back the key the records are sealed with'
            : 'the record MAC key Secret held no usable key; put back the key the records are sealed with',
        );
      else if (bytes?.length)
        this.#log.warn(
          fields,
          'the record MAC key Secret held no usable key; wrote a new one (retired keys sealed with an earlier key are refused)',
        );
      else this.#log.info(fields, 'wrote a new key into the record MAC key Secret');
      return key;
    }
    throw new Error(`it changed during each of ${ATTEMPTS} attempts to write it`);
  }
}
