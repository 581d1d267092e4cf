/** Reads Secrets in the operator's namespace (the only ones it may read). */
export interface SecretReader {
  /** The Secret's data, decoded; throws SECRET_NOT_FOUND or SECRET_FORBIDDEN. */
  readSecret(namespace: string, name: string): Promise<Map<string, Buffer>>;
}
