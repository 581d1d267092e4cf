/**
 * Azurite, Microsoft's Azure Storage emulator (its blob service only), for the
 * bed: run from node_modules with this Node, over HTTPS with a serving
 * certificate of the bed CA, with the emulator's well-known development
 * account. One container allows anonymous blob reads (public access level
 * 'blob'), as an Azure issuer container does.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  BlobServiceClient,
  type StoragePipelineOptions,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';

/** The emulator's development account and key, published by Microsoft (not secrets). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzureInfo {
  /** Azurite's blob service, https://127.0.0.1:<port>. */
  endpoint: string;
  account: string;
  /** The account's blob endpoint (path style, as the emulator serves it): endpoint/account. */
  accountURL: string;
  /** A container whose blobs anonymous clients may read. */
  container: string;
  /** A connection string with the account key and the blob endpoint. */
  connectionString: string;
}

export function azureInfo(port: number): AzureInfo {
  const endpoint = `https://127.0.0.1:${port}`;
  const accountURL = `${endpoint}/${AZURITE_ACCOUNT}`;
  return {
    endpoint,
    account: AZURITE_ACCOUNT,
    accountURL,
    container: 'oidc-bed',
    connectionString: `DefaultEndpointsProtocol=https;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_ACCOUNT_KEY};BlobEndpoint=${accountURL};`,
  };
}

/** The azurite-blob script of the installed azurite package (its `bin`, not an import). */
export function azuriteBlobScript(): string {
  const require = createRequire(import.meta.url);
  const pkgFile = require.resolve('azurite/package.json');
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { bin?: Record<string, string> };
  const bin = pkg.bin?.['azurite-blob'];
  if (!bin) throw new Error(`${pkgFile} has no azurite-blob bin`);
  return join(dirname(pkgFile), bin);
}

/** Arguments for `node <azuriteBlobScript()>`: HTTPS on 127.0.0.1:port, data under `location`. */
export function azuriteArgs(
  info: AzureInfo,
  location: string,
  serving: { cert: string; key: string },
): string[] {
  return [
    azuriteBlobScript(),
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    new URL(info.endpoint).port,
    '--location',
    location,
    '--cert',
    serving.cert,
    '--key',
    serving.key,
    '--skipApiVersionCheck',
    '--disableTelemetry',
    '--loose',
  ];
}

/**
 * A client of the development account that trusts `ca` itself, so it works in
 * processes without NODE_EXTRA_CA_CERTS (`testbed up`). The SDK passes
 * `tlsOptions` through to its HTTP pipeline, though StoragePipelineOptions does
 * not declare it.
 */
export function createBlobServiceClient(
  info: AzureInfo,
  ca: Buffer,
  key = AZURITE_ACCOUNT_KEY,
): BlobServiceClient {
  const options: StoragePipelineOptions & { tlsOptions: { ca: string } } = {
    tlsOptions: { ca: ca.toString('utf8') },
    retryOptions: { maxTries: 1 },
  };
  return new BlobServiceClient(info.accountURL, new StorageSharedKeyCredential(info.account, key), options);
}

/** Creates the bed's container with public access level 'blob' (anonymous blob reads, no listing). */
export async function prepareAzureContainer(info: AzureInfo, ca: Buffer): Promise<void> {
  const container = createBlobServiceClient(info, ca).getContainerClient(info.container);
  await container.createIfNotExists();
  await container.setAccessPolicy('blob');
}
