/**
 * A TLS certificate and private key read from files and read again when they
 * change, for `oidc-publisher serve --tls-cert-file --tls-private-key-file`.
 *
 * Kubernetes updates a mounted Secret by writing a new directory and swapping
 * the `..data` symlink its files point through, so the files' directories are
 * watched (a watch on a file would follow the old inode), and the files are
 * checked every `pollMs` as well, for file systems whose events are lost or
 * never come. A change is taken only when the new certificate parses, its
 * private key matches, it has not expired and Node builds a secure context of
 * the pair; otherwise the current pair stays and the failure is logged and
 * counted. A pair that failed is not tried again until the files change.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { type FSWatcher, readFileSync, statSync, watch } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../log.ts';
import type { TlsFiles } from './serve-args.ts';

/** A certificate chain and its private key, checked. */
export interface KeyPair {
  cert: Buffer;
  key: Buffer;
  /** The leaf certificate's serial number (hex, upper case, as Node prints it). */
  serial: string;
  notAfter: Date;
  subject: string;
}

/** Where the outcome of each reload goes. */
export interface TlsReloadMetrics {
  reloaded(result: 'ok' | 'error'): void;
  expiry(notAfter: Date): void;
}

/** Reads and checks a pair; throws an Error saying what is wrong with it. */
export function loadKeyPair(files: TlsFiles, now: Date = new Date()): KeyPair {
  const cert = readFileSync(files.certFile);
  const key = readFileSync(files.keyFile);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`${files.certFile}: not a PEM certificate`, { cause: err });
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`${files.keyFile}: not a PEM private key`, { cause: err });
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new Error(`${files.keyFile} is not the private key of the certificate in ${files.certFile}`);
  }
  const notAfter = new Date(leaf.validTo);
  if (!(notAfter.getTime() > now.getTime())) {
    throw new Error(`the certificate in ${files.certFile} expired at ${notAfter.toISOString()}`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new Error(`${files.certFile} and ${files.keyFile} do not make a TLS context`, { cause: err });
  }
  return { cert, key, serial: leaf.serialNumber, notAfter, subject: leaf.subject.replaceAll('\n', ', ') };
}

/** What the files look like from outside: changes when either is replaced, rewritten or removed. */
function stamp(files: TlsFiles): string {
  return [files.certFile, files.keyFile]
    .map((f) => {
      try {
        const s = statSync(f);
        return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      } catch (err) {
        return `missing:${(err as { code?: string }).code ?? ''}`;
      }
    })
    .join('|');
}

export class CertificateReloader {
  readonly #files: TlsFiles;
  readonly #log: Logger;
  readonly #metrics: TlsReloadMetrics;
  readonly #apply: (pair: KeyPair) => void;
  readonly #pollMs: number;
  readonly #debounceMs: number;
  #current: KeyPair;
  /** The files as last looked at, taken or refused. */
  #seen: string;
  #watchers: FSWatcher[] = [];
  #poll: NodeJS.Timeout | undefined;
  #pending: NodeJS.Timeout | undefined;

  /** Reads the files once; throws when they do not make a pair. */
  constructor(opts: {
    files: TlsFiles;
    log: Logger;
    metrics: TlsReloadMetrics;
    /** Serves the new pair to new connections (https.Server#setSecureContext). */
    apply: (pair: KeyPair) => void;
    pollMs?: number;
    debounceMs?: number;
  }) {
    this.#files = opts.files;
    this.#log = opts.log;
    this.#metrics = opts.metrics;
    this.#apply = opts.apply;
    this.#pollMs = opts.pollMs ?? 10_000;
    this.#debounceMs = opts.debounceMs ?? 200;
    this.#seen = stamp(this.#files);
    this.#current = loadKeyPair(this.#files);
    this.#metrics.expiry(this.#current.notAfter);
  }

  get current(): KeyPair {
    return this.#current;
  }

  /** Watches the files' directories and polls them. */
  start(): void {
    const dirs = new Set([this.#files.certFile, this.#files.keyFile].map((f) => dirname(resolve(f))));
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#soon());
        w.on('error', (err) => {
          this.#log.warn({ err, dir }, 'watching the TLS files stopped; checking them every poll only');
          w.close();
        });
        this.#watchers.push(w);
      } catch (err) {
        this.#log.warn({ err, dir }, 'cannot watch the TLS files; checking them every poll only');
      }
    }
    this.#poll = setInterval(() => this.check(), this.#pollMs);
    this.#poll.unref();
  }

  stop(): void {
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    clearInterval(this.#poll);
    clearTimeout(this.#pending);
  }

  /** A burst of events (a Secret update writes several files) makes one check, after it settles. */
  #soon(): void {
    clearTimeout(this.#pending);
    this.#pending = setTimeout(() => this.check(), this.#debounceMs);
    this.#pending.unref();
  }

  /** Takes the files when they changed and make a good pair; returns whether a new pair is served. */
  check(): boolean {
    const now = stamp(this.#files);
    if (now === this.#seen) return false;
    this.#seen = now;
    let pair: KeyPair;
    try {
      pair = loadKeyPair(this.#files);
    } catch (err) {
      this.#metrics.reloaded('error');
      this.#log.error(
        { err, serving: this.#current.serial },
        'the changed TLS files do not make a usable pair; serving the current certificate',
      );
      return false;
    }
    if (pair.cert.equals(this.#current.cert) && pair.key.equals(this.#current.key)) return false;
    this.#apply(pair);
    const previous = this.#current.serial;
    this.#current = pair;
    this.#metrics.reloaded('ok');
    this.#metrics.expiry(pair.notAfter);
    this.#log.info(
      { serial: pair.serial, previous, subject: pair.subject, notAfter: pair.notAfter.toISOString() },
      'serving a new TLS certificate',
    );
    return true;
  }
}
