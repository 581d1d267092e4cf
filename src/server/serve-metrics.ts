/** Prometheus metrics of `oidc-publisher serve`, on a registry made by its caller (no global state). */
import { Counter, Gauge, Registry } from './prometheus.ts';

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'path' | 'status'>;
  readonly refreshes: Counter<'result'>;
  readonly lastRefresh: Gauge;
  readonly keys: Gauge;

  constructor() {
    const r = <M extends { readonly name: string; render(): string }>(m: M) => this.registry.register(m);
    this.requests = r(
      new Counter({
        name: 'oidc_publisher_serve_requests_total',
        help: 'HTTP requests to the issuer server, by path (one of the two documents, or "other") and status.',
        labelNames: ['path', 'status'],
      }),
    );
    this.refreshes = r(
      new Counter({
        name: 'oidc_publisher_serve_refresh_total',
        help: 'Reads of the documents from the API server, by result: ok, or the error code or reason.',
        labelNames: ['result'],
      }),
    );
    this.lastRefresh = r(
      new Gauge({
        name: 'oidc_publisher_serve_last_refresh_success_timestamp_seconds',
        help: 'When the documents were last read from the API server and validated (Unix time); 0 before.',
      }),
    );
    this.keys = r(
      new Gauge({
        name: 'oidc_publisher_serve_published_keys',
        help: 'Keys in the served JWKS.',
      }),
    );
  }
}
