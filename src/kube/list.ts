/**
 * A list in pages (`limit` and `continue`), as client-go's pager: the API
 * server answers each page from the same snapshot, and no answer holds more
 * than a page of objects. A continue token the server no longer honours (410
 * Gone: its snapshot was compacted away, about five minutes on) restarts the
 * list from the beginning once; a second 410 is the caller's to handle.
 */
import { KubeHttpError } from './http.ts';

/** What the operator lists at a time, as client-go's pager (500). */
export const DEFAULT_PAGE_SIZE = 500;

export interface ListPage<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

/** The one call a paginated list makes: a GET of `path` with its query. */
export type GetPage = (pathWithQuery: string) => Promise<unknown>;

/**
 * Every item of the collection at `path` (which may carry a query, e.g. a labelSelector), and
 * the resourceVersion of the snapshot they come from. `pageSize` 0 lists in one answer.
 */
export async function listAll<T>(
  get: GetPage,
  path: string,
  pageSize = DEFAULT_PAGE_SIZE,
): Promise<{ metadata: { resourceVersion?: string }; items: T[] }> {
  let restarted = false;
  for (;;) {
    const items: T[] = [];
    let token = '';
    let resourceVersion: string | undefined;
    try {
      do {
        const query = new URLSearchParams();
        if (pageSize > 0) query.set('limit', String(pageSize));
        if (token) query.set('continue', token);
        const q = query.toString();
        const page = ((await get(q ? `${path}${path.includes('?') ? '&' : '?'}${q}` : path)) ??
          {}) as ListPage<T>;
        items.push(...(page.items ?? []));
        resourceVersion = page.metadata?.resourceVersion;
        token = page.metadata?.continue ?? '';
      } while (token);
    } catch (err) {
      if (token && !restarted && err instanceof KubeHttpError && err.status === 410) {
        restarted = true;
        continue;
      }
      throw err;
    }
    return { metadata: resourceVersion ? { resourceVersion } : {}, items };
  }
}
