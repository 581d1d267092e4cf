/** An S3 client for the bed's MinIO: path-style, checksums only when required, the bed's CA trusted. */
import { Agent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import type { S3Info } from './bed.ts';

export function createS3Client(
  s3: Pick<S3Info, 'endpoint' | 'region' | 'accessKeyId' | 'secretAccessKey'>,
  ca: Buffer,
): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestHandler: { httpsAgent: new Agent({ ca, keepAlive: true }) },
  });
}
