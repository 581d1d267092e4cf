/**
 * The client-side rate limit of requests to the API server, as client-go's
 * (`--kube-api-qps`, `--kube-api-burst`): a token bucket that holds up to
 * `burst` tokens and gains `qps` a second; each request (a watch's start
 * and each retry included) takes one, and waits for it when the bucket is empty.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export class TokenBucket {
  readonly qps: number;
  readonly burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  /** `now` in milliseconds (tests pass their own clock). */
  constructor(qps: number, burst: number, now: () => number = () => performance.now()) {
    if (!(qps > 0) || !Number.isFinite(qps))
      throw new RangeError(`qps must be a positive number, not ${qps}`);
    if (!Number.isInteger(burst) || burst < 1)
      throw new RangeError(`burst must be a whole number >= 1, not ${burst}`);
    this.qps = qps;
    this.burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#at = now();
  }

  /**
   * Takes a token and says how many milliseconds to wait before using it (0: at once). Tokens
   * may go below zero: each waiting caller holds its own place in the line, as in x/time/rate.
   */
  reserve(): number {
    const now = this.#now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.qps) / 1000);
    this.#at = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : (-this.#tokens * 1000) / this.qps;
  }

  /** Gives back a token reserved and not used. */
  cancel(): void {
    this.#tokens = Math.min(this.burst, this.#tokens + 1);
  }

  /**
   * Waits for a token. Rejects at once (ETIMEDOUT, the token given back) when the wait would end
   * after `deadline` (a performance.now() time): waiting only to time out helps no one. Resolves
   * early, the token given back, when `signal` aborts.
   */
  async take(opts: { deadline?: number; signal?: AbortSignal } = {}): Promise<void> {
    const wait = this.reserve();
    if (wait <= 0) return;
    if (opts.deadline !== undefined && performance.now() + wait > opts.deadline) {
      this.cancel();
      throw Object.assign(
        new Error(
          `client-side rate limit (${this.qps}/s, burst ${this.burst}): the wait would pass the deadline`,
        ),
        { code: 'ETIMEDOUT' },
      );
    }
    try {
      await sleep(wait, undefined, opts.signal ? { signal: opts.signal } : {});
    } catch {
      this.cancel();
    }
  }
}
