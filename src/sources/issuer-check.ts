/**
 * What `register` checks before it registers an issuer with a cloud: an
 * anonymous HTTPS GET of <issuer>/.well-known/openid-configuration that names
 * exactly this issuer, and of the jwks_uri it names, which must serve a valid
 * JWKS. Size-capped, one deadline for both, no redirects, the process's trusted
 * CAs. Keeps the certificate chain of the JWKS host, for IAM's thumbprint.
 */
import { X509Certificate } from 'node:crypto';
import { MAX_DOCUMENT_BYTES, type PublicJwk, validateDiscovery, validateJwks } from '../core/documents.ts';
import { DISCOVERY_PATH, issuerBase } from '../core/spec.ts';
import { isOidcPublisherError, OidcPublisherError } from '../errors.ts';
import { type HttpsAnswer, HttpsRequestError, httpsRequest } from '../https-request.ts';

export const ISSUER_CHECK_TIMEOUT_MS = 10_000;

export interface CheckedIssuer {
  issuer: string;
  jwksURI: string;
  keys: PublicJwk[];
  /** The JWKS host's certificate chain, its own certificate first. */
  jwksChain: X509Certificate[];
}

function unverified(message: string, cause?: unknown): OidcPublisherError {
  return new OidcPublisherError('ISSUER_UNVERIFIED', message, cause === undefined ? undefined : { cause });
}

async function get(url: string, deadline: number): Promise<HttpsAnswer> {
  let answer: HttpsAnswer;
  try {
    answer = await httpsRequest({
      url,
      options: { method: 'GET', agent: false, headers: { accept: 'application/json' } },
      maxBytes: MAX_DOCUMENT_BYTES,
      timeoutMs: Math.max(0, deadline - Date.now()),
      readBody: (status) => status === 200,
      peerChain: true,
    });
  } catch (err) {
    if (err instanceof HttpsRequestError) {
      const why =
        err.kind === 'tooLarge'
          ? `larger than ${MAX_DOCUMENT_BYTES} bytes`
          : err.kind === 'network'
            ? ((err.cause as { code?: string } | undefined)?.code ?? 'request failed')
            : err.kind === 'timeout'
              ? 'timed out'
              : 'response interrupted';
      throw unverified(`GET ${url}: ${why}`, err);
    }
    throw err;
  }
  if (answer.status !== 200) {
    const where = answer.headers.location
      ? ` (a redirect to ${answer.headers.location} is not followed)`
      : '';
    throw unverified(`GET ${url}: HTTP ${answer.status}${where}; a relying party needs 200`);
  }
  return answer;
}

/** `validate()`, its DOCUMENT_INVALID naming the URL the document came from. */
function named<T>(url: string, validate: () => T): T {
  try {
    return validate();
  } catch (err) {
    if (isOidcPublisherError(err) && err.code === 'DOCUMENT_INVALID') {
      throw new OidcPublisherError('DOCUMENT_INVALID', `${url}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

/**
 * Reads and validates the public issuer as a relying party would. ISSUER_UNVERIFIED (or
 * DOCUMENT_INVALID for a document that is not valid) when it would not trust it.
 */
export async function checkIssuer(
  issuer: string,
  timeoutMs = ISSUER_CHECK_TIMEOUT_MS,
): Promise<CheckedIssuer> {
  const deadline = Date.now() + timeoutMs;
  const discoveryURL = `${issuerBase(issuer)}/${DISCOVERY_PATH}`;
  const discoveryBody = (await get(discoveryURL, deadline)).body;
  const discovery = named(discoveryURL, () => validateDiscovery(discoveryBody));
  if (discovery.issuer !== issuer) {
    throw unverified(
      `${discoveryURL} names the issuer ${JSON.stringify(discovery.issuer)}, not ${JSON.stringify(issuer)}: tokens would not match it`,
    );
  }
  let jwksURL: URL;
  try {
    jwksURL = new URL(discovery.jwksURI);
  } catch (err) {
    throw unverified(`${discoveryURL}: jwks_uri ${JSON.stringify(discovery.jwksURI)} is not a URL`, err);
  }
  if (jwksURL.protocol !== 'https:') {
    throw unverified(`${discoveryURL}: jwks_uri ${JSON.stringify(discovery.jwksURI)} is not https`);
  }
  const jwks = await get(discovery.jwksURI, deadline);
  const keys = named(discovery.jwksURI, () => validateJwks(jwks.body));
  return {
    issuer,
    jwksURI: discovery.jwksURI,
    keys,
    jwksChain: (jwks.peerChain ?? []).map((der) => new X509Certificate(der)),
  };
}
