/**
 * The documentation stays true to the code: every CRD field is described,
 * every condition reason is in the troubleshooting table with the condition
 * and status the code gives it, every flag, metric and error code is
 * documented, links resolve, and the manifests mean the same to YAML 1.1
 * readers (kubectl, kube-apiserver) as to YAML 1.2 ones.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { ConditionType, Reason } from '../../src/api/conditions.ts';
import { FLAGS } from '../../src/config.ts';
import { renderAuthnConfig } from '../../src/core/authentication-config.ts';
import { ErrorCodes } from '../../src/errors.ts';
import {
  anchors,
  codeBlocks,
  codeSpans,
  documentationFiles,
  links,
  ROOT,
  readDoc,
  runnableBlocks,
  tableAfter,
} from './markdown.ts';

const CRD_FILES = [
  'crds/oidcpublisher.io_oidcpublishers.yaml',
  'charts/oidc-publisher/crds/oidcpublisher.io_oidcpublishers.yaml',
];

interface Schema {
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
}

interface Crd {
  spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
}

/** Every property path under `schema` with its schema: properties, array items, map values. */
function walk(schema: Schema, path: string, out: [string, Schema][] = []): [string, Schema][] {
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    out.push([`${path}.${name}`, child]);
    walk(child, `${path}.${name}`, out);
  }
  if (schema.items) {
    out.push([`${path}[]`, schema.items]);
    walk(schema.items, `${path}[]`, out);
  }
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
    out.push([`${path}{}`, schema.additionalProperties]);
    walk(schema.additionalProperties, `${path}{}`, out);
  }
  return out;
}

describe('the CRD is its own reference manual', () => {
  for (const file of CRD_FILES) {
    it(`${file}: every property of spec and status, nested objects and array items included, has a description`, () => {
      const crd = parse(readFileSync(join(ROOT, file), 'utf8')) as Crd;
      for (const version of crd.spec.versions) {
        const paths = walk(version.schema.openAPIV3Schema, version.name);
        assert.ok(
          paths.some(([p]) => p === `${version.name}.spec.issuerURL`),
          'the walk reaches spec',
        );
        assert.ok(
          paths.some(([p]) => p === `${version.name}.status.keys[].jwk.n`),
          'the walk reaches nested status items',
        );
        // The API server refuses anything but type on the root metadata of a CRD schema.
        const missing = paths
          .filter(([p]) => p !== `${version.name}.metadata`)
          .filter(([, s]) => typeof s.description !== 'string' || s.description.trim() === '')
          .map(([p]) => p);
        assert.deepEqual(missing, [], `properties without a description in ${file}: ${missing.join(', ')}`);
      }
    });
  }

  it('the chart ships the same CRD as crds/', () => {
    const [a, b] = CRD_FILES.map((f) => readFileSync(join(ROOT, f), 'utf8'));
    assert.equal(b, a, 'charts/oidc-publisher/crds/ differs from crds/: copy crds/ into the chart');
  });
});

/** Plain YAML manifests that kubectl reads: the CRDs and everything under config/. */
function manifests(): string[] {
  const out = [...CRD_FILES];
  const visit = (dir: string) => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) visit(p);
      else if (/\.ya?ml$/.test(e.name)) out.push(p);
    }
  };
  visit('config');
  return out;
}

describe('manifests mean the same under YAML 1.1 (kubectl, kube-apiserver) and YAML 1.2', () => {
  it('a plain n, y, on or off is a boolean in YAML 1.1, so the comparison can tell', () => {
    const text = 'properties:\n  n: {type: string}\n  "y": {type: string}\n';
    assert.notDeepEqual(parse(text, { version: '1.1' }), parse(text));
  });

  for (const file of manifests()) {
    it(`${file} parses identically with version 1.1 and the default 1.2`, () => {
      const text = readFileSync(join(ROOT, file), 'utf8');
      const as11 = parseAllDocuments(text, { version: '1.1' }).map((d) => d.toJS());
      const as12 = parseAllDocuments(text).map((d) => d.toJS());
      assert.deepEqual(
        as11,
        as12,
        `${file} reads differently to a YAML 1.1 parser: quote keys and values such as n, y, yes, no, on, off`,
      );
    });
  }
});

/** For each Reason constant, the condition section and the status its doc comment names in src/api/conditions.ts. */
function reasonsInSource(): Map<string, { condition?: string; status?: string }> {
  const text = readFileSync(join(ROOT, 'src', 'api', 'conditions.ts'), 'utf8');
  const body = text.slice(text.indexOf('export const Reason = {'));
  const types = new Set<string>(Object.values(ConditionType));
  const out = new Map<string, { condition?: string; status?: string }>();
  let section: string | undefined;
  let status: string | undefined;
  for (const line of body.split('\n')) {
    const heading = /^\s*\/\/\s*(\w+)\s*$/.exec(line);
    if (heading && types.has(heading[1] ?? '')) section = heading[1];
    const doc = /^\s*\/\*\*\s*(True|False|Unknown):/.exec(line);
    if (doc) status = doc[1];
    const entry = /^\s*(\w+): '(\w+)',/.exec(line);
    if (entry) {
      out.set(entry[2] ?? '', { ...(section ? { condition: section } : {}), ...(status ? { status } : {}) });
      status = undefined;
    }
  }
  return out;
}

describe('docs/troubleshooting.md has every condition reason', () => {
  const rows = tableAfter(readDoc('docs/troubleshooting.md'), 'Every condition reason');
  const byReason = new Map<string, string[][]>();
  for (const row of rows) {
    for (const r of codeSpans(row[0] ?? '')) byReason.set(r, [...(byReason.get(r) ?? []), row]);
  }

  it('has a table row per reason, each with a cause and a condition', () => {
    assert.ok(rows.length > 0, 'the table under "Every condition reason" has rows');
    for (const row of rows) {
      assert.equal(row.length, 5, `a row has Reason, Condition, Status, Cause, Fix: ${row.join(' | ')}`);
      assert.ok(row[3], `the row of ${row[0]} names a cause`);
    }
  });

  for (const reason of Object.values(Reason)) {
    it(`documents ${reason} with the condition and status src/api/conditions.ts gives it`, () => {
      const found = byReason.get(reason);
      assert.ok(found, `docs/troubleshooting.md has no row for the reason ${reason}`);
      assert.equal(found.length, 1, `one row for ${reason}, found ${found.length}`);
      const [row] = found;
      const source = reasonsInSource().get(reason);
      assert.ok(source, `${reason} is declared in src/api/conditions.ts`);
      const conditions = codeSpans(row?.[1] ?? '');
      if (source.condition) {
        assert.ok(
          conditions.includes(source.condition),
          `${reason} is a ${source.condition} reason; the row names ${conditions.join(', ')}`,
        );
      }
      if (source.status) {
        assert.match(row?.[2] ?? '', new RegExp(`\\b${source.status}\\b`), `${reason} is ${source.status}`);
      }
    });
  }

  it('names no reason the code does not have', () => {
    const known = new Set<string>(Object.values(Reason));
    const unknown = [...byReason.keys()].filter((r) => !known.has(r));
    assert.deepEqual(unknown, [], `rows for reasons that are not in src/api/conditions.ts: ${unknown}`);
  });

  it('names every condition type, and no other', () => {
    const named = new Set(rows.flatMap((row) => codeSpans(row[1] ?? '')));
    for (const type of Object.values(ConditionType)) {
      assert.ok(named.has(type), `the Condition column never names ${type}`);
    }
    const types = new Set<string>(Object.values(ConditionType));
    assert.deepEqual(
      [...named].filter((t) => !types.has(t)),
      [],
      'the Condition column names only condition types',
    );
  });
});

describe('links', () => {
  const files = documentationFiles();

  it('README links to every guide in docs/', () => {
    const readme = links(readDoc('README.md')).map((l) => l.target.split('#')[0]);
    for (const f of files.filter((f) => f.startsWith('docs/'))) {
      assert.ok(readme.includes(f), `README.md has no link to ${f}`);
    }
  });

  for (const file of files) {
    it(`every relative link in ${file} resolves, anchors included`, () => {
      const problems: string[] = [];
      for (const l of links(readDoc(file))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(l.target)) continue;
        const [path = '', fragment] = l.target.split('#');
        const target = path === '' ? file : relative(ROOT, join(ROOT, dirname(file), path));
        if (!existsSync(join(ROOT, target))) {
          problems.push(`line ${l.line}: ${l.target} (no such file: ${target})`);
          continue;
        }
        if (fragment !== undefined && target.endsWith('.md') && !anchors(readDoc(target)).has(fragment)) {
          problems.push(`line ${l.line}: ${l.target} (${target} has no heading #${fragment})`);
        }
      }
      assert.deepEqual(problems, [], `broken links in ${file}:\n${problems.join('\n')}`);
    });
  }
});

describe('README', () => {
  const readme = readDoc('README.md');

  it('keeps the two commands, exactly', () => {
    const block =
      '```sh\nnpm ci && npm run demo    # the main job: a real cluster publishing its issuer to a bucket\n' +
      'npm ci && npm test        # the whole test suite\n```\n';
    assert.ok(readme.includes(block), 'README.md no longer has the two-command block as it was');
    assert.match(readme, /On a fresh machine with Node\.js .* and Go >= 1\.25/s);
  });

  it('names the Node that package.json engines, the locked runtime and the Dockerfile agree on', () => {
    const pkg = JSON.parse(readDoc('package.json')) as { engines?: { node?: string } };
    const floor = /^>=(\d+)\.(\d+)\.(\d+)$/.exec(pkg.engines?.node ?? '');
    assert.ok(
      floor,
      `package.json engines.node is a >=X.Y.Z floor, got ${JSON.stringify(pkg.engines?.node)}`,
    );
    const major = Number(floor[1]);
    const runtime = (JSON.parse(readDoc('tools/node-runtime/package.json')) as { version: string }).version;
    const [rMajor = 0, rMinor = 0, rPatch = 0] = runtime.split('.').map(Number);
    assert.equal(rMajor, major, `the locked runtime ${runtime} is Node ${major}, as engines.node says`);
    const atLeast = rMinor > Number(floor[2]) || (rMinor === Number(floor[2]) && rPatch >= Number(floor[3]));
    assert.ok(atLeast, `the locked runtime ${runtime} satisfies engines.node ${pkg.engines?.node}`);
    const nodeImage = /^ARG NODE_IMAGE=node:(\d+)\./m.exec(readDoc('Dockerfile'))?.[1];
    assert.equal(Number(nodeImage), major, `the Dockerfile's NODE_IMAGE is Node ${major}`);
    for (const file of ['README.md', 'docs/architecture.md']) {
      const named = [...readDoc(file).matchAll(/\bNode(?:\.js)? (\d+)\b/g)].map((m) => Number(m[1]));
      assert.ok(named.length > 0, `${file} names the Node it runs on`);
      assert.deepEqual(
        named.filter((n) => n !== major),
        [],
        `${file} names Node ${major} only`,
      );
    }
  });

  it('documents every flag of the operator and the variable that sets it', () => {
    for (const [name, flag] of Object.entries(FLAGS)) {
      assert.ok(readme.includes(`\`--${name}\``), `README.md does not document --${name}`);
      assert.ok(readme.includes(`\`${flag.env}\``), `README.md does not document ${flag.env} (--${name})`);
    }
  });
});

describe('runnable shell blocks', () => {
  for (const file of documentationFiles()) {
    for (const block of runnableBlocks(readDoc(file), file)) {
      it(`${file}:${block.line} names the variables it expects in its first comment`, () => {
        const lines = block.text.split('\n');
        const header: string[] = [];
        for (const l of lines) {
          if (!l.startsWith('#')) break;
          header.push(l);
        }
        assert.match(header[0] ?? '', /^# Expects: /, `${file}:${block.line} starts with "# Expects: ..."`);
        const comment = header.join('\n');
        const code = lines.slice(header.length).filter((l) => !/^\s*#/.test(l));
        const assigned = new Set(
          code
            .flatMap((l) => [...l.matchAll(/(?:^|\s|;)(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=/g)])
            .map((m) => m[1]),
        );
        const used = new Set(
          code.flatMap((l) => [...l.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)]).map((m) => m[1] ?? ''),
        );
        const undocumented = [...used].filter(
          (v) => !assigned.has(v) && !new RegExp(`\\b${v}\\b`).test(comment),
        );
        assert.deepEqual(undocumented, [], `${file}:${block.line} uses variables its comment does not name`);
      });
    }
  }

  it('exist in README.md (the e2e test runs them against the bed)', () => {
    assert.ok(runnableBlocks(readDoc('README.md'), 'README.md').length >= 3);
  });
});

describe('docs/troubleshooting.md and docs/architecture.md follow the code', () => {
  it('every Prometheus metric registered in src/server/*metrics.ts is documented', () => {
    const dir = join(ROOT, 'src', 'server');
    const source = readdirSync(dir)
      .filter((f) => /metrics\.ts$/.test(f))
      .map((f) => readFileSync(join(dir, f), 'utf8'))
      .join('\n');
    const names = [...source.matchAll(/name: '((?:oidc_publisher|workqueue|rest_client)_\w+)'/g)].map(
      (m) => m[1] ?? '',
    );
    assert.ok(names.length > 5, 'metrics found in src/server/metrics.ts');
    const doc = readDoc('docs/troubleshooting.md');
    for (const name of names) assert.ok(doc.includes(`\`${name}`), `docs/troubleshooting.md lacks ${name}`);
  });

  it('every error code is in the retry-class table with its class', () => {
    const rows = tableAfter(readDoc('docs/architecture.md'), 'One sync');
    const classOf = new Map<string, string>();
    for (const row of rows) for (const code of codeSpans(row[1] ?? '')) classOf.set(code, row[0] ?? '');
    for (const [code, { retry }] of Object.entries(ErrorCodes)) {
      assert.equal(classOf.get(code), retry, `docs/architecture.md: ${code} is ${retry}`);
    }
    assert.deepEqual(
      [...classOf.keys()].filter((c) => !(c in ErrorCodes)),
      [],
      'the table names only error codes that exist',
    );
  });
});

describe('docs/cross-cluster.md', () => {
  it('shows exactly what oidc-publisher authn-config prints for its example', () => {
    const block = codeBlocks(readDoc('docs/cross-cluster.md'), 'docs/cross-cluster.md').find(
      (b) => b.lang === 'yaml' && b.text.includes('kind: AuthenticationConfiguration'),
    );
    assert.ok(block, 'docs/cross-cluster.md shows an AuthenticationConfiguration');
    const shown = parse(block.text) as { jwt: { issuer: { url: string; audiences: string[] } }[] };
    const issuer = shown.jwt[0]?.issuer;
    assert.ok(issuer, 'the example has a JWT issuer');
    const rendered = renderAuthnConfig({ issuer: issuer.url, audiences: issuer.audiences });
    assert.equal(
      block.text,
      rendered,
      'the example differs from `oidc-publisher authn-config --issuer <url> --audience <aud>`: paste its output',
    );
  });
});
