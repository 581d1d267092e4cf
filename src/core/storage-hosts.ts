/**
 * Storage host names as the operator compares them, S3's own names on AWS,
 * and the bucket an S3 request reaches. Pure.
 *
 * On S3 a bucket may be named in the host (virtual-hosted style,
 * <bucket>.s3.<region>.amazonaws.com) or in the path (path style,
 * s3.<region>.amazonaws.com/<bucket>). An endpoint that names a bucket in its
 * host sends every request to that bucket, whatever the spec's bucket says: in
 * path style the spec's bucket becomes the first segment of the key, in
 * virtual-hosted style a label before it. So the bucket a spec reaches is
 * computed from both, never read from the bucket field alone.
 */

/**
 * A region of the partitions S3 runs in publicly: aws (us-east-1, ap-southeast-4 ...), aws-cn
 * (cn-north-1) and aws-us-gov (us-gov-west-1).
 */
export const AWS_REGION = '(?:[a-z]{2}|us-gov)-[a-z]+-\\d{1,2}';

/**
 * S3's own service host names, without a bucket: s3.amazonaws.com, s3.<region>.amazonaws.com,
 * s3-<region>.amazonaws.com, s3.dualstack.<region>.amazonaws.com, s3-fips.<region>.amazonaws.com,
 * s3-external-1.amazonaws.com, and the same under amazonaws.com.cn. Not s3-website, access point,
 * Object Lambda, S3 Express or control hosts: they reach buckets (or other services) a bucket name
 * does not say.
 */
const S3_SERVICE = `s3(?:-fips|-external-1|-${AWS_REGION})?(?:\\.dualstack)?(?:\\.${AWS_REGION})?\\.amazonaws\\.com(?:\\.cn)?`;
const S3_SERVICE_HOST = new RegExp(`^${S3_SERVICE}$`);
const S3_BUCKET_HOST = new RegExp(`^([a-z0-9][a-z0-9.-]*)\\.${S3_SERVICE}$`);

/** A URL's host name as compared: lower case, no brackets around IPv6, no trailing dots. */
export function normalizeHost(hostname: string): string {
  let h = hostname.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h.replace(/\.+$/, '');
}

/** Whether a normalized host is a name under AWS's own zones (amazonaws.com, amazonaws.com.cn). */
export function isAwsName(host: string): boolean {
  return /(?:^|\.)amazonaws\.com(?:\.cn)?$/.test(host);
}

/**
 * A normalized host on S3's own service: `{}` for the service host, `{ bucket }` when a bucket
 * stands before it (virtual-hosted style); undefined for any other host.
 */
export function parseS3Host(host: string): { bucket?: string } | undefined {
  if (S3_SERVICE_HOST.test(host)) return {};
  const m = S3_BUCKET_HOST.exec(host);
  return m?.[1] ? { bucket: m[1] } : undefined;
}

/** The parts of an S3 storage spec that decide where its requests go. */
export interface S3Location {
  bucket: string;
  prefix?: string | undefined;
  endpoint?: string | undefined;
  forcePathStyle?: boolean | undefined;
}

/**
 * The bucket an S3 spec's requests reach and the key prefix in it. An endpoint on S3's own names
 * that carries a bucket reaches that bucket: in path style with the spec's bucket as the first
 * segment of every key, in virtual-hosted style as the bucket `<bucket>.<that bucket>`. (Such
 * endpoints are refused; the conflict check and the docs count them where they land.)
 */
export function s3Reached(s3: S3Location): { bucket: string; prefix: string } {
  const bucket = s3.bucket.toLowerCase();
  const prefix = s3.prefix ?? '';
  if (!s3.endpoint) return { bucket, prefix };
  let host: string;
  try {
    host = normalizeHost(new URL(s3.endpoint).hostname);
  } catch {
    return { bucket, prefix };
  }
  const inHost = parseS3Host(host)?.bucket;
  if (inHost === undefined) return { bucket, prefix };
  if (s3.forcePathStyle) return { bucket: inHost, prefix: prefix === '' ? bucket : `${bucket}/${prefix}` };
  return { bucket: `${bucket}.${inHost}`, prefix };
}
