/**
 * host:port for the operator's and `serve`'s listeners: `:8081` (every
 * interface, IPv4 and IPv6), `127.0.0.1:8081`, `0.0.0.0:8081`, `[::1]:8081`.
 * Pure, so config parsing can use it without loading node:http.
 */

export interface ListenAddress {
  /** Absent: every interface (Node listens on `::`, which also accepts IPv4 where the host allows). */
  host?: string;
  port: number;
}

/** The address, or undefined when `text` is not host:port with a port from 0 to 65535. */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? m[2];
  return host ? { host, port } : { port };
}
