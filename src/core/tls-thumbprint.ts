/**
 * Whether IAM needs a thumbprint for an issuer, and which one, from the TLS
 * certificate chain its JWKS host served. Pure: the chain and the roots in.
 *
 * IAM verifies the TLS certificate of a JWKS endpoint against its own library
 * of trusted root CAs and uses the thumbprints of a provider only when the
 * certificate does not chain to one of them (an S3-hosted JWKS, or any
 * publicly trusted CA). Then the thumbprint is the hex SHA-1 of the top
 * intermediate CA certificate of the chain, or of the root CA when the
 * server's certificate is signed by the root directly.
 */
import type { X509Certificate } from 'node:crypto';
import { OidcPublisherError } from '../errors.ts';

export type ThumbprintDecision =
  | { needed: false; root: string }
  | { needed: true; thumbprint: string; certificate: string };

/** The hex SHA-1 of the certificate's DER bytes, lower case, as IAM writes thumbprints. */
export function sha1Thumbprint(cert: X509Certificate): string {
  return cert.fingerprint.replaceAll(':', '').toLowerCase();
}

function selfSigned(cert: X509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey);
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

/**
 * The certificate whose thumbprint IAM takes: of `chain` (the server's certificate first, then
 * each issuer), the top intermediate CA; the root when there is none; the server's own
 * certificate when it is self-signed.
 */
export function thumbprintCertificate(chain: readonly X509Certificate[]): X509Certificate | undefined {
  const cas = chain.slice(1);
  return cas.filter((c) => !selfSigned(c)).at(-1) ?? cas.at(-1) ?? chain[0];
}

/** The root among `roots` that the chain ends at (a certificate of it, or issued by it). */
export function trustedRoot(
  chain: readonly X509Certificate[],
  roots: readonly X509Certificate[],
): X509Certificate | undefined {
  for (const cert of chain) {
    const root = roots.find((r) => r.fingerprint256 === cert.fingerprint256 || issuedBy(cert, r));
    if (root) return root;
  }
  return undefined;
}

/** Whether IAM needs a thumbprint for a JWKS host that served `chain`, given the roots IAM trusts. */
export function thumbprintDecision(
  chain: readonly X509Certificate[],
  roots: readonly X509Certificate[],
): ThumbprintDecision {
  const root = trustedRoot(chain, roots);
  if (root) return { needed: false, root: root.subject.replaceAll('\n', ', ') };
  const cert = thumbprintCertificate(chain);
  if (!cert) throw new OidcPublisherError('ISSUER_UNVERIFIED', 'the JWKS host presented no certificate');
  return { needed: true, thumbprint: sha1Thumbprint(cert), certificate: cert.subject.replaceAll('\n', ', ') };
}
