/**
 * The documentation's kubeadm configurations are ones the real kubeadm of the
 * bed's Kubernetes version accepts, as they are written in the Markdown:
 *
 * - every `kubeadm.k8s.io` document of a yaml block in README.md and docs/*.md;
 * - every kubeadm patch of a kind `Cluster` configuration, in each kubeadm API
 *   version kind may apply it to (a patch without an apiVersion goes to
 *   v1beta3 as it is, and to v1beta4 with its extraArgs map turned into
 *   name/value entries, as kind's pkg/internal/patch/kubeadm_merge.go does);
 * - the ClusterConfiguration and InitConfiguration inside a Cluster API
 *   `KubeadmControlPlane` (the JoinConfiguration is left out: Cluster API fills
 *   in its discovery, without which kubeadm refuses it).
 *
 * Each goes through `kubeadm config validate`. One that sets the API server's
 * service-account issuer also goes through kubeadm's dry run of the
 * kube-apiserver manifest, with the patch files the KubeadmControlPlane writes,
 * and the command kubeadm writes must carry the issuers in the order the
 * snippet gives them (kubeadm's default replaced, not kept), signing with the
 * guides' issuer or, in a first migration pass, with kubeadm's default, and a
 * JWKS URI under the signing issuer.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { ensureTools, VERSIONS } from '../bed/tools.ts';
import { codeBlocks, documentationFiles, readDoc } from '../unit/markdown.ts';

/** The issuer of the guides' examples, and kubeadm's default (the DNS domain cluster.local). */
const GUIDE_ISSUER = 'https://my-oidc-bucket.s3.eu-west-1.amazonaws.com/clusters/prod';
const KUBEADM_DEFAULT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const KUBEADM_KINDS = new Set(['ClusterConfiguration', 'InitConfiguration', 'JoinConfiguration']);
/** Building kubeadm the first time takes minutes; the test waits for it. */
const BUILD_TIMEOUT_MS = 30 * 60_000;

type Obj = Record<string, unknown>;

interface Snippet {
  /** Where it comes from and what was taken: `docs/distributions.md:97 (kind patch 1, as v1beta4)`. */
  name: string;
  /** The kubeadm configuration documents, in order. */
  documents: Obj[];
  /** Patch files for the InitConfiguration's patches directory: file name -> content. */
  patches: Record<string, string>;
  /** The issuers the snippet's patch files add to the kube-apiserver command, in order. */
  patchIssuers: string[];
  /** Set when the block could not be read as YAML. */
  error?: string;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown): Obj {
  return isObj(v) ? v : {};
}

/** kind's conversion of a v1beta3 extraArgs map to v1beta4's name/value list, at any depth. */
function extraArgsAsList(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(extraArgsAsList);
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, child] of Object.entries(v)) {
    out[k] =
      (k === 'extraArgs' || k === 'kubeletExtraArgs') && isObj(child)
        ? Object.entries(child).map(([name, value]) => ({ name, value: String(value) }))
        : extraArgsAsList(child);
  }
  return out;
}

/** kind and Cluster API set kubernetesVersion themselves; without one, kubeadm would ask the internet. */
function withVersion(doc: Obj, version: string): Obj {
  return doc.kind === 'ClusterConfiguration' && doc.kubernetesVersion === undefined
    ? { ...doc, kubernetesVersion: version }
    : doc;
}

/** The --service-account-issuer values a kubeadm JSON patch of the kube-apiserver Pod appends. */
function issuersOfPatch(content: string): string[] {
  const out: string[] = [];
  for (const doc of parseAllDocuments(content)) {
    const ops = doc.toJS() as unknown;
    if (!Array.isArray(ops)) continue;
    for (const op of ops) {
      const value = obj(op).value;
      if (typeof value === 'string' && value.startsWith('--service-account-issuer=')) {
        out.push(value.slice('--service-account-issuer='.length));
      }
    }
  }
  return out;
}

/** The kubeadm configurations of one Markdown file's yaml blocks. */
function snippetsOf(file: string): Snippet[] {
  const out: Snippet[] = [];
  for (const block of codeBlocks(readDoc(file), file)) {
    if (block.lang !== 'yaml') continue;
    const where = `${file}:${block.line}`;
    const parsed = parseAllDocuments(block.text);
    const docs = parsed.map((d) => d.toJS() as unknown).filter(isObj);
    const relevant = /kubeadm\.k8s\.io|kubeadmConfigPatches|KubeadmControlPlane/.test(block.text);
    const broken = parsed.flatMap((d) => d.errors.map((e) => e.message));
    if (broken.length > 0) {
      if (relevant)
        out.push({ name: where, documents: [], patches: {}, patchIssuers: [], error: broken.join('; ') });
      continue;
    }

    const kubeadmDocs = docs.filter((d) => String(d.apiVersion ?? '').startsWith('kubeadm.k8s.io/'));
    if (kubeadmDocs.length > 0) {
      out.push({ name: where, documents: kubeadmDocs, patches: {}, patchIssuers: [] });
    }

    for (const d of docs) {
      if (d.kind === 'Cluster' && String(d.apiVersion ?? '').startsWith('kind.x-k8s.io/')) {
        const nodes = Array.isArray(d.nodes) ? d.nodes : [];
        const patches = [d, ...nodes].flatMap((n) => {
          const p = obj(n).kubeadmConfigPatches;
          return Array.isArray(p) ? p.filter((x): x is string => typeof x === 'string') : [];
        });
        patches.forEach((patch, i) => {
          for (const pd of parseAllDocuments(patch)) {
            const p = pd.toJS() as unknown;
            if (!isObj(p) || !KUBEADM_KINDS.has(String(p.kind))) continue;
            if (p.apiVersion !== undefined) {
              out.push({
                name: `${where} (kind patch ${i + 1})`,
                documents: [withVersion(p, VERSIONS.kube)],
                patches: {},
                patchIssuers: [],
              });
              continue;
            }
            out.push({
              name: `${where} (kind patch ${i + 1}, as v1beta3)`,
              documents: [withVersion({ apiVersion: 'kubeadm.k8s.io/v1beta3', ...p }, VERSIONS.kube)],
              patches: {},
              patchIssuers: [],
            });
            out.push({
              name: `${where} (kind patch ${i + 1}, as v1beta4)`,
              documents: [
                withVersion(
                  obj(extraArgsAsList({ apiVersion: 'kubeadm.k8s.io/v1beta4', ...p })),
                  VERSIONS.kube,
                ),
              ],
              patches: {},
              patchIssuers: [],
            });
          }
        });
      }

      if (
        d.kind === 'KubeadmControlPlane' &&
        String(d.apiVersion ?? '').startsWith('controlplane.cluster.x-k8s.io/')
      ) {
        const spec = obj(d.spec);
        const config = obj(spec.kubeadmConfigSpec);
        const version = typeof spec.version === 'string' ? spec.version : VERSIONS.kube;
        const documents: Obj[] = [];
        const init = obj(config.initConfiguration);
        if (Object.keys(init).length > 0) {
          documents.push({ apiVersion: 'kubeadm.k8s.io/v1beta4', kind: 'InitConfiguration', ...init });
        }
        documents.push(
          withVersion(
            {
              apiVersion: 'kubeadm.k8s.io/v1beta4',
              kind: 'ClusterConfiguration',
              ...obj(config.clusterConfiguration),
            },
            version,
          ),
        );
        const dir = String(obj(init.patches).directory ?? '');
        const patches: Record<string, string> = {};
        const files = Array.isArray(config.files) ? config.files : [];
        for (const f of files) {
          const path = String(obj(f).path ?? '');
          if (dir && path.startsWith(`${dir}/`))
            patches[path.slice(dir.length + 1)] = String(obj(f).content ?? '');
        }
        out.push({
          name: `${where} (KubeadmControlPlane)`,
          documents,
          patches,
          patchIssuers: Object.values(patches).flatMap(issuersOfPatch),
        });
      }
    }
  }
  return out;
}

/** A ClusterConfiguration's apiServer.extraArgs values of one flag, in order (v1beta4 list or v1beta3 map). */
function extraArgValues(cluster: Obj, name: string): string[] {
  const args = obj(cluster.apiServer).extraArgs;
  if (Array.isArray(args)) {
    return args.filter((a) => obj(a).name === name).map((a) => String(obj(a).value));
  }
  const v = obj(args)[name];
  return v === undefined ? [] : [String(v)];
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { code: number; output: string } {
  const res = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { code: res.status ?? 1, output: `${res.stdout ?? ''}${res.stderr ?? ''}` };
}

const files = documentationFiles();
const snippets = files.flatMap(snippetsOf);

describe(`the documentation's kubeadm configurations, checked by kubeadm ${VERSIONS.kube}`, () => {
  let kubeadm: string;
  let work: string;

  before(
    () => {
      kubeadm = ensureTools(['kubeadm']).kubeadm;
      work = mkdtempSync(join(tmpdir(), 'oidc-kubeadm-'));
    },
    { timeout: BUILD_TIMEOUT_MS },
  );

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Writes a snippet's configuration (and its patch files) into a directory of its own. */
  function write(s: Snippet, index: number, documents = s.documents): { dir: string; config: string } {
    const dir = join(work, String(index));
    mkdirSync(join(dir, 'patches'), { recursive: true });
    for (const [name, content] of Object.entries(s.patches))
      writeFileSync(join(dir, 'patches', name), content);
    const config = join(dir, 'kubeadm.yaml');
    writeFileSync(config, documents.map((d) => stringify(d)).join('---\n'));
    return { dir, config };
  }

  it('finds the kubeadm, kind and Cluster API configurations of docs/distributions.md', () => {
    const own = snippets.filter((s) => s.name.startsWith('docs/distributions.md:'));
    const plain = own.filter((s) => !s.name.includes('('));
    const kind = own.filter((s) => s.name.includes('(kind patch'));
    const capi = own.filter((s) => s.name.includes('(KubeadmControlPlane)'));
    assert.ok(plain.length >= 3, `kubeadm ClusterConfigurations: ${plain.map((s) => s.name).join(', ')}`);
    assert.ok(
      kind.length >= 2,
      `kind patches, as v1beta3 and v1beta4: ${kind.map((s) => s.name).join(', ')}`,
    );
    assert.ok(capi.length >= 2, `KubeadmControlPlanes: ${capi.map((s) => s.name).join(', ')}`);
    const migration = plain.filter((s) =>
      s.documents.some((d) => extraArgValues(d, 'service-account-issuer').length === 2),
    );
    assert.ok(migration.length >= 2, 'the two migration passes repeat --service-account-issuer');
  });

  it('kubeadm refuses a v1beta4 extraArgs map, the form that cannot repeat a flag', () => {
    const s: Snippet = {
      name: 'a map in v1beta4',
      documents: [
        {
          apiVersion: 'kubeadm.k8s.io/v1beta4',
          kind: 'ClusterConfiguration',
          kubernetesVersion: VERSIONS.kube,
          apiServer: { extraArgs: { 'service-account-issuer': GUIDE_ISSUER } },
        },
      ],
      patches: {},
      patchIssuers: [],
    };
    const { config } = write(s, -1);
    const res = run(kubeadm, ['config', 'validate', '--config', config]);
    assert.notEqual(res.code, 0, `kubeadm config validate accepted it:\n${res.output}`);
  });

  snippets.forEach((s, index) => {
    it(`${s.name}: kubeadm config validate accepts it`, () => {
      assert.equal(s.error, undefined, `the block is not valid YAML: ${s.error}`);
      const { config } = write(s, index);
      const res = run(kubeadm, ['config', 'validate', '--config', config]);
      assert.equal(
        res.code,
        0,
        `kubeadm config validate refused ${s.name}:\n${res.output}\n--- the configuration:\n${s.documents.map((d) => stringify(d)).join('---\n')}`,
      );
    });

    const cluster = s.documents.find((d) => d.kind === 'ClusterConfiguration');
    const issuers = cluster ? extraArgValues(cluster, 'service-account-issuer') : [];
    if (!cluster || issuers.length + s.patchIssuers.length === 0) return;

    it(`${s.name}: kubeadm writes a kube-apiserver that signs with the documented issuer`, () => {
      // The node's address and the patch directory are the only things added: without an
      // address kubeadm would look for the default route's interface.
      const init = obj(s.documents.find((d) => d.kind === 'InitConfiguration'));
      const dir = join(work, String(index));
      const documents = [
        {
          apiVersion: cluster.apiVersion,
          kind: 'InitConfiguration',
          ...init,
          localAPIEndpoint: { advertiseAddress: '192.0.2.10' },
          ...(Object.keys(s.patches).length > 0 ? { patches: { directory: join(dir, 'patches') } } : {}),
        },
        cluster,
      ];
      const { config } = write(s, index, documents);
      // The dry run writes the manifest it would install into this directory instead.
      const out = join(dir, 'dry-run');
      const res = run(
        kubeadm,
        ['init', 'phase', 'control-plane', 'apiserver', '--dry-run', '--config', config],
        {
          KUBEADM_INIT_DRYRUN_DIR: out,
        },
      );
      assert.equal(res.code, 0, `kubeadm's dry run failed:\n${res.output}`);
      const manifest = parse(readFileSync(join(out, 'kube-apiserver.yaml'), 'utf8')) as {
        spec: { containers: { command: string[] }[] };
      };
      const command = manifest.spec.containers[0]?.command ?? [];
      const flags = (name: string) =>
        command.filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
      const written = flags('service-account-issuer');
      const expected = [...(issuers.length > 0 ? issuers : [KUBEADM_DEFAULT_ISSUER]), ...s.patchIssuers];
      assert.deepEqual(
        written,
        expected,
        `the kube-apiserver's --service-account-issuer flags, in order:\n${command.join('\n')}`,
      );
      for (const issuer of written) {
        assert.ok(
          issuer === GUIDE_ISSUER || issuer === KUBEADM_DEFAULT_ISSUER,
          `every issuer is the guides' or the current one (kubeadm's default), byte for byte; got ${issuer}`,
        );
      }
      assert.equal(new Set(written).size, written.length, `no issuer is given twice: ${written.join(', ')}`);
      assert.ok(
        written[0] === GUIDE_ISSUER || written[0] === KUBEADM_DEFAULT_ISSUER,
        `the first --service-account-issuer signs: the guides' issuer or, in a first pass, kubeadm's default; got ${written[0]}`,
      );
      for (const jwks of flags('service-account-jwks-uri')) {
        assert.equal(jwks, `${written[0]}/openid/v1/jwks`, "the JWKS URI is the signing issuer's");
      }
    });
  });
});
