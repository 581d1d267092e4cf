/**
 * The little Markdown the documentation tests need: fenced code blocks (with
 * their info strings), headings and their GitHub anchors, and links outside code.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');

export interface CodeBlock {
  /** Path relative to the repository root. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The first word of the info string (sh, yaml, json, ...). */
  lang: string;
  /** The words of the info string after the language (```sh runnable -> ['runnable']). */
  attributes: string[];
  text: string;
}

/** README.md, CHANGELOG.md and docs/*.md, as paths relative to the repository root, README first. */
export function documentationFiles(root = ROOT): string[] {
  const docs = readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', 'CHANGELOG.md', ...docs];
}

export function readDoc(file: string, root = ROOT): string {
  return readFileSync(join(root, file), 'utf8');
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`]*)$/;

export function codeBlocks(markdown: string, file: string): CodeBlock[] {
  const lines = markdown.split('\n');
  const blocks: CodeBlock[] = [];
  let open: { fence: string; line: number; lang: string; attributes: string[]; body: string[] } | undefined;
  lines.forEach((l, i) => {
    const m = FENCE.exec(l);
    if (!open) {
      if (!m) return;
      const [lang = '', ...attributes] = (m[2] ?? '').trim().split(/\s+/).filter(Boolean);
      open = { fence: m[1] ?? '```', line: i + 1, lang, attributes, body: [] };
      return;
    }
    const fence = open.fence;
    if (m && (m[1] ?? '').startsWith(fence[0] ?? '`') && (m[1] ?? '').length >= fence.length && !m[2]) {
      blocks.push({
        file,
        line: open.line,
        lang: open.lang,
        attributes: open.attributes,
        text: `${open.body.join('\n')}\n`,
      });
      open = undefined;
      return;
    }
    open.body.push(l);
  });
  if (open) throw new Error(`${file}:${open.line}: a code block is never closed`);
  return blocks;
}

/** The ```sh runnable blocks, in document order. */
export function runnableBlocks(markdown: string, file: string): CodeBlock[] {
  return codeBlocks(markdown, file).filter((b) => b.lang === 'sh' && b.attributes.includes('runnable'));
}

/** The text outside fenced code blocks and inline code spans, line for line (code lines become empty). */
export function prose(markdown: string): string {
  const out: string[] = [];
  let fence: string | undefined;
  for (const l of markdown.split('\n')) {
    const m = FENCE.exec(l);
    if (fence === undefined && m) {
      fence = m[1];
      out.push('');
      continue;
    }
    if (fence !== undefined) {
      if (m && !m[2] && (m[1] ?? '').startsWith(fence)) fence = undefined;
      out.push('');
      continue;
    }
    out.push(l.replace(/`[^`]*`/g, ''));
  }
  return out.join('\n');
}

/** The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\- _]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a document's headings, with GitHub's -1, -2 suffixes for repeats. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const l of prose(markdown).split('\n')) {
    const m = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(l);
    if (!m) continue;
    const base = slug((m[1] ?? '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1'));
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

export interface Link {
  text: string;
  target: string;
  line: number;
}

/** Inline links [text](target) outside code. */
export function links(markdown: string): Link[] {
  const out: Link[] = [];
  prose(markdown)
    .split('\n')
    .forEach((l, i) => {
      for (const m of l.matchAll(/\[([^\]]*)\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        out.push({ text: m[1] ?? '', target: m[2] ?? '', line: i + 1 });
      }
    });
  return out;
}

/** The rows of the first Markdown table after the heading `heading`, as trimmed cells (header and separator dropped). */
export function tableAfter(markdown: string, heading: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^#{1,6}\s/.test(l) && l.replace(/^#+\s*/, '').trim() === heading);
  if (start < 0) throw new Error(`no heading ${JSON.stringify(heading)}`);
  const rows: string[][] = [];
  let inTable = false;
  for (const l of lines.slice(start + 1)) {
    if (l.startsWith('|')) {
      inTable = true;
      rows.push(
        l
          .replace(/^\|/, '')
          .replace(/\|\s*$/, '')
          .split('|')
          .map((c) => c.trim()),
      );
    } else if (inTable || /^#{1,6}\s/.test(l)) {
      break;
    }
  }
  return rows.slice(2);
}

/** The `code spans` of a table cell. */
export function codeSpans(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');
}
