/**
 * Which packages the operator loads at start: the bare specifiers reachable
 * from its entry point through static imports only (a dynamic import(), as
 * StoreFactory uses for each cloud SDK, is followed only when a publisher
 * needs it). Read from the built JavaScript, so it is what the image loads.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** A static import or re-export (not a type-only one, which TypeScript erases). */
const STATIC = /^\s*(?:import|export)(?!\s+type\s)\s+(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;

/** Bare specifiers (packages, node: builtins excluded) statically reachable from `entry`. */
export function staticPackages(entry: string): string[] {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file) || !existsSync(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(STATIC)) {
      const spec = m[1] ?? '';
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else if (!spec.startsWith('node:')) packages.add(spec);
    }
  };
  visit(entry);
  return [...packages].sort();
}

/** The cloud SDKs among them; none is expected. */
export function eagerCloudSdks(entry: string): string[] {
  return staticPackages(entry).filter((p) => /^@(aws-sdk|google-cloud|azure)\//.test(p));
}
