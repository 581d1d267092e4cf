/**
 * Canary tokens: one per OidcPublisher, requested from the API server
 * (TokenRequest) for a ServiceAccount in the operator's namespace, and reused
 * for a minute (or half its lifetime, if shorter), so a sync verifies it again
 * without a new request. The token stays in this cache and goes only to core/canary.ts: it is
 * never logged, and never put in status, Events or metrics.
 */
import { CANARY_AUDIENCE, CANARY_TOKEN_SECONDS, type CanaryRefusal } from '../core/canary.ts';
import type { ClusterClient, IssuedToken } from '../kube/cluster-client.ts';

interface Cached extends IssuedToken {
  serviceAccount: string;
  /** When a new token is requested: CANARY_RENEW_MS or half its lifetime after it was issued, whichever is sooner. */
  renewAt: number;
}

/**
 * A canary token is reused for at most a minute: its kid tells which key the API server signs with
 * now (status.verification.signingKeyID, the SigningKeyNotTrusted check), so a switched signing key
 * shows within a minute and a sync. A TokenRequest is not stored in etcd.
 */
export const CANARY_RENEW_MS = 60_000;

export class CanaryTokens {
  readonly #client: Pick<ClusterClient, 'createToken'>;
  readonly #namespace: string;
  readonly #cache = new Map<string, Cached>();

  /** `namespace`: the operator's, the only one whose ServiceAccounts it asks tokens for. */
  constructor(client: Pick<ClusterClient, 'createToken'>, namespace: string) {
    this.#client = client;
    this.#namespace = namespace;
  }

  /** A token of `serviceAccount` for publisher `publisher`, cached or new; or why there is none. */
  async get(
    publisher: string,
    serviceAccount: string,
    now: Date,
  ): Promise<{ token: string } | CanaryRefusal> {
    const cached = this.#cache.get(publisher);
    if (cached && cached.serviceAccount === serviceAccount && now.getTime() < cached.renewAt) {
      return { token: cached.token };
    }
    this.#cache.delete(publisher);
    const issued = await this.#client.createToken(
      this.#namespace,
      serviceAccount,
      CANARY_AUDIENCE,
      CANARY_TOKEN_SECONDS,
    );
    if ('refused' in issued) return issued;
    const lifetime = issued.expiresAt.getTime() - now.getTime();
    const renewIn = Math.min(lifetime / 2, CANARY_RENEW_MS);
    this.#cache.set(publisher, { ...issued, serviceAccount, renewAt: now.getTime() + renewIn });
    return { token: issued.token };
  }

  /** Drops the token of a publisher that no longer has a canary, or is gone. */
  forget(publisher: string): void {
    this.#cache.delete(publisher);
  }
}
