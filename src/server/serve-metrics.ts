/**
 * Prometheus metrics of `oidc-publisher serve` (prom-client), on a registry made by its caller (no
 * global state). Series are addressed by positional label values, as in metrics.ts.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export class ServeMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'issuer' | 'path' | 'status'>;
  readonly refreshes: Counter<'issuer' | 'result'>;
  readonly lastRefresh: Gauge<'issuer'>;
  readonly keys: Gauge<'issuer'>;
  readonly retainedKeys: Gauge<'issuer'>;
  readonly tlsReloads: Counter<'result'>;
  readonly tlsExpiry: Gauge;

  /** Registers the metrics in `registry`. */
  constructor(registry: Registry) {
    this.registry = registry;
    const registers = [registry];
    this.requests = new Counter({
      name: 'oidc_publisher_serve_requests_total',
      help: 'HTTP requests to the issuer server, by issuer ("" when no publisher serves the host and path), path (one of the two documents, or "other") and status.',
      labelNames: ['issuer', 'path', 'status'],
      registers,
    });
    this.refreshes = new Counter({
      name: 'oidc_publisher_serve_refresh_total',
      help: 'Reads of the documents from the API server, by issuer and result: ok, or the error code or reason.',
      labelNames: ['issuer', 'result'],
      registers,
    });
    this.lastRefresh = new Gauge({
      name: 'oidc_publisher_serve_last_refresh_success_timestamp_seconds',
      help: 'When the documents of an issuer were last read from the API server and validated (Unix time).',
      labelNames: ['issuer'],
      registers,
    });
    this.keys = new Gauge({
      name: 'oidc_publisher_serve_published_keys',
      help: "Keys in an issuer's served JWKS, retired ones included.",
      labelNames: ['issuer'],
      registers,
    });
    this.retainedKeys = new Gauge({
      name: 'oidc_publisher_serve_retained_keys',
      help: "Keys in an issuer's served JWKS that its API server no longer serves, kept for --key-retention.",
      labelNames: ['issuer'],
      registers,
    });
    this.tlsReloads = new Counter({
      name: 'oidc_publisher_serve_tls_reloads_total',
      help: 'Changes of the TLS certificate and key files, by result: ok (served from then on) or error (the current pair kept).',
      labelNames: ['result'],
      registers,
    });
    this.tlsExpiry = new Gauge({
      name: 'oidc_publisher_serve_tls_certificate_expiry_timestamp_seconds',
      help: 'When the served TLS certificate expires (Unix time).',
      registers,
    });
  }
}
