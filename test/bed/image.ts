/** How the container image runs Node, read from the Dockerfile: its NODE_OPTIONS and the flags of its ENTRYPOINT. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ImageNode {
  /** The value of `ENV NODE_OPTIONS`, split. */
  nodeOptions: string[];
  /** The flags between "node" and the script in the exec-form ENTRYPOINT. */
  entrypointFlags: string[];
}

export function imageNode(root: string): ImageNode {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const options = /^ENV\s+NODE_OPTIONS=(?:"([^"]*)"|(\S+))\s*$/m.exec(dockerfile);
  const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1];
  const argv = entrypoint ? (JSON.parse(entrypoint) as string[]) : [];
  return {
    nodeOptions: (options?.[1] ?? options?.[2] ?? '').split(' ').filter(Boolean),
    entrypointFlags: argv.slice(1).filter((a) => a.startsWith('--')),
  };
}
