/**
 * A real node for the test bed: Debian's containerd, and kubelet, kube-controller-manager,
 * kube-scheduler and kube-proxy of the bed's Kubernetes version, so the operator runs as Pods of
 * its image the way users run it.
 *
 * Network: one bridge, oidcbed0, with the bed's address 198.18.0.1/24 (198.18.0.0/15 is the
 * benchmarking range, neither private nor public). Pods get addresses in 198.18.0.0/24 and one
 * route, to 198.18.0.0/15: the bed's servers, which listen on 198.18.0.1, and the Services
 * (198.19.0.0/24). No default route, no NAT, IP forwarding left as it was and forwarding out of
 * the bridge dropped, so a Pod reaches nothing beyond this machine. Only one bed with a node runs
 * at a time.
 *
 * Everything lives in the bed's folder; `stop` (also after a failed start) stops the processes and
 * removes the Pods' sandboxes, mounts, network namespaces, iptables chains, the bridge and the
 * cgroups.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { removeCgroups } from './container-image.ts';
import { type Ca, issueCert } from './pki.ts';
import { ManagedProcess, type ProcessSpec } from './process.ts';
import type { ToolPaths } from './tools.ts';

const execFileAsync = promisify(execFile);

export const NODE_NETWORK = {
  bridge: 'oidcbed0',
  /** The bed's own address on the bridge: its servers listen here, Pods reach them here. */
  hostAddress: '198.18.0.1',
  podCIDR: '198.18.0.0/24',
  serviceCIDR: '198.19.0.0/24',
  /** The `kubernetes` Service's ClusterIP (first of serviceCIDR). */
  kubernetesServiceIP: '198.19.0.1',
  /** The only route Pods get. */
  reachable: '198.18.0.0/15',
} as const;

export const NODE_NAME = 'bed-node';
export const PAUSE_IMAGE = 'oidc-publisher.local/pause:3.10.1';
/** The cgroup under which the kubelet puts every Pod, in each cgroup hierarchy. */
const CGROUP_ROOT = 'oidc-bed';
const FORWARD_CHAIN = 'OIDC-BED-FORWARD';

interface ProcState {
  spec: ProcessSpec;
  pid: number;
}

/** What `stop` needs, saved in bed.json. */
export interface NodeState {
  dir: string;
  containerdSocket: string;
  /** Network namespaces that existed before the node started (left alone). */
  netnsBefore: string[];
  /** Whether /run/netns was a mount point before the node started. */
  runNetnsMounted: boolean;
  kubeProxy: string;
  procs: ProcState[];
}

function run(
  command: string,
  args: readonly string[],
  opts: { input?: string; allowFail?: boolean } = {},
): string {
  const res = spawnSync(command, [...args], { input: opts.input, encoding: 'utf8' });
  if (res.status !== 0 && !opts.allowFail)
    throw new Error(`${command} ${args.join(' ')} exited ${res.status ?? res.signal}: ${res.stderr}`);
  return res.stdout ?? '';
}

function listNetns(): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns').sort() : [];
}

function isMountPoint(path: string): boolean {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === path);
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Creates the bridge with the bed's address and the rule that keeps Pod traffic on it. Throws if a node already runs. */
export function createNodeNetwork(): void {
  if (existsSync(`/sys/class/net/${NODE_NETWORK.bridge}`))
    throw new Error(
      `the bridge ${NODE_NETWORK.bridge} exists: another bed with a node runs (npm run testbed -- down), or one was killed (npm run testbed -- clean-node removes what it left)`,
    );
  try {
    run('ip', ['link', 'add', NODE_NETWORK.bridge, 'type', 'bridge']);
    run('ip', ['addr', 'add', `${NODE_NETWORK.hostAddress}/24`, 'dev', NODE_NETWORK.bridge]);
    run('ip', ['link', 'set', NODE_NETWORK.bridge, 'up']);
    // Services are reached on the bridge too, never through this machine's default route.
    run('ip', [
      'route',
      'add',
      NODE_NETWORK.serviceCIDR,
      'dev',
      NODE_NETWORK.bridge,
      'src',
      NODE_NETWORK.hostAddress,
    ]);
    run('iptables', ['-w', '-N', FORWARD_CHAIN]);
    run('iptables', [
      '-w',
      '-A',
      FORWARD_CHAIN,
      '-i',
      NODE_NETWORK.bridge,
      '!',
      '-o',
      NODE_NETWORK.bridge,
      '-j',
      'DROP',
    ]);
    run('iptables', [
      '-w',
      '-A',
      FORWARD_CHAIN,
      '-o',
      NODE_NETWORK.bridge,
      '!',
      '-i',
      NODE_NETWORK.bridge,
      '-j',
      'DROP',
    ]);
    run('iptables', ['-w', '-I', 'FORWARD', '1', '-j', FORWARD_CHAIN]);
  } catch (err) {
    removeNodeNetwork();
    throw err;
  }
}

/** Removes the bridge, the forward rule and every KUBE-* chain kube-proxy or the kubelet left. */
export function removeNodeNetwork(): void {
  for (const cmd of ['iptables', 'ip6tables']) {
    for (const table of ['filter', 'nat', 'mangle']) {
      const rules = run(cmd, ['-w', '-t', table, '-S'], { allowFail: true }).split('\n');
      const chains = rules
        .filter((r) => r.startsWith('-N '))
        .map((r) => r.slice(3).trim())
        .filter((c) => c.startsWith('KUBE-') || c === FORWARD_CHAIN);
      // First the rules of built-in chains that jump to ours, then our chains.
      for (const r of rules) {
        const m = /^-A (\S+) (.*)$/.exec(r);
        if (!m || chains.includes(m[1] ?? '')) continue;
        if (chains.some((c) => (m[2] ?? '').includes(`-j ${c}`)))
          run(cmd, ['-w', '-t', table, '-D', m[1] ?? '', ...splitRule(m[2] ?? '')], { allowFail: true });
      }
      for (const c of chains) run(cmd, ['-w', '-t', table, '-F', c], { allowFail: true });
      for (const c of chains) run(cmd, ['-w', '-t', table, '-X', c], { allowFail: true });
    }
  }
  if (existsSync(`/sys/class/net/${NODE_NETWORK.bridge}`))
    run('ip', ['link', 'del', NODE_NETWORK.bridge], { allowFail: true });
}

/** Splits an iptables -S rule into arguments (quoted comments kept whole). */
function splitRule(rule: string): string[] {
  return [...rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '');
}

function kubeconfig(server: string, caFile: string, cert: string, key: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: bed
  cluster:
    server: ${server}
    certificate-authority: ${caFile}
users:
- name: u
  user:
    client-certificate: ${cert}
    client-key: ${key}
contexts:
- name: bed
  context: {cluster: bed, user: u}
current-context: bed
`;
}

/** A docker-save tarball of a one-layer image holding /pause, built without dockerd. */
function pauseImageTarball(pauseBinary: string, dir: string): string {
  const work = join(dir, 'pause-image');
  mkdirSync(join(work, 'rootfs'), { recursive: true });
  copyFileSync(pauseBinary, join(work, 'rootfs', 'pause'));
  run('chmod', ['0755', join(work, 'rootfs', 'pause')]);
  run('tar', [
    '--numeric-owner',
    '--owner=0',
    '--group=0',
    '--mtime=@0',
    '-C',
    join(work, 'rootfs'),
    '-cf',
    join(work, 'layer.tar'),
    'pause',
  ]);
  const diffId = `sha256:${createHash('sha256')
    .update(readFileSync(join(work, 'layer.tar')))
    .digest('hex')}`;
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    created: '1970-01-01T00:00:00Z',
    config: { User: '65535:65535', Entrypoint: ['/pause'] },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: 'COPY pause /pause' }],
  });
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  writeFileSync(join(work, configName), config);
  writeFileSync(
    join(work, 'manifest.json'),
    JSON.stringify([{ Config: configName, RepoTags: [PAUSE_IMAGE], Layers: ['layer.tar'] }]),
  );
  const tarball = join(dir, 'pause-image.tar');
  run('tar', ['-C', work, '-cf', tarball, 'manifest.json', configName, 'layer.tar']);
  rmSync(work, { recursive: true, force: true });
  return tarball;
}

export class BedNode {
  readonly state: NodeState;
  readonly #procs = new Map<string, ManagedProcess>();
  readonly #persistent: boolean;

  private constructor(state: NodeState, persistent: boolean) {
    this.state = state;
    this.#persistent = persistent;
  }

  static attach(state: NodeState): BedNode {
    const node = new BedNode(state, true);
    for (const p of state.procs) node.#procs.set(p.spec.name, ManagedProcess.attach(p.spec, p.pid));
    return node;
  }

  /**
   * Starts containerd, the kubelet, the controller manager, the scheduler and kube-proxy against
   * the bed's API server (which must listen on NODE_NETWORK.hostAddress), and waits until the node
   * is Ready. The network must exist (createNodeNetwork).
   */
  static async start(o: {
    dir: string;
    tools: ToolPaths;
    ca: Ca;
    apiserverURL: string;
    serviceAccountKey: string;
    kubectl: (args: readonly string[]) => Promise<string>;
    persistent: boolean;
    /** Called with the state as soon as there is something to stop. */
    onState: (state: NodeState) => void;
  }): Promise<BedNode> {
    const dir = join(o.dir, 'node');
    mkdirSync(dir, { recursive: true });
    const state: NodeState = {
      dir,
      containerdSocket: join(dir, 'containerd', 'containerd.sock'),
      netnsBefore: listNetns(),
      runNetnsMounted: isMountPoint('/run/netns'),
      kubeProxy: o.tools.kubeProxy,
      procs: [],
    };
    const node = new BedNode(state, o.persistent);
    o.onState(state);
    const t0 = Date.now();
    const pki = join(dir, 'pki');
    mkdirSync(pki, { recursive: true });
    const client = (name: string, cn: string, org?: string) => {
      const c = issueCert({ ...o.ca, dir: pki }, name, {
        commonName: cn,
        ...(org ? { organizations: [org] } : {}),
      });
      const file = join(dir, `${name}.kubeconfig`);
      writeFileSync(file, kubeconfig(o.apiserverURL, o.ca.cert, c.cert, c.key), { mode: 0o600 });
      return file;
    };
    const kubeletKubeconfig = client('kubelet', `system:node:${NODE_NAME}`, 'system:nodes');
    const kcmKubeconfig = client('kube-controller-manager', 'system:kube-controller-manager');
    const schedulerKubeconfig = client('kube-scheduler', 'system:kube-scheduler');
    const proxyKubeconfig = client('kube-proxy', 'system:kube-proxy');
    const kubeletServing = issueCert({ ...o.ca, dir: pki }, 'kubelet-serving', {
      commonName: NODE_NAME,
      serverNames: [NODE_NETWORK.hostAddress, NODE_NAME],
    });
    try {
      await node.#startContainerd();
      const ctr = (args: string[]) =>
        execFileAsync('ctr', ['-a', state.containerdSocket, '-n', 'k8s.io', ...args], {
          maxBuffer: 64 << 20,
        });
      await ctr(['images', 'import', pauseImageTarball(o.tools.pause, dir)]);
      createCgroups(CGROUP_ROOT);
      const [kubeletPort, kubeletHealthz, kcmPort, schedPort, proxyMetrics, proxyHealthz] =
        await freePorts(6);
      writeFileSync(join(dir, 'resolv.conf'), '');
      writeFileSync(
        join(dir, 'kubelet.yaml'),
        JSON.stringify({
          apiVersion: 'kubelet.config.k8s.io/v1beta1',
          kind: 'KubeletConfiguration',
          address: NODE_NETWORK.hostAddress,
          port: kubeletPort,
          readOnlyPort: 0,
          healthzBindAddress: '127.0.0.1',
          healthzPort: kubeletHealthz,
          tlsCertFile: kubeletServing.cert,
          tlsPrivateKeyFile: kubeletServing.key,
          authentication: {
            anonymous: { enabled: false },
            webhook: { enabled: true },
            x509: { clientCAFile: o.ca.cert },
          },
          authorization: { mode: 'Webhook' },
          containerRuntimeEndpoint: `unix://${state.containerdSocket}`,
          cgroupDriver: 'cgroupfs',
          cgroupRoot: `/${CGROUP_ROOT}`,
          failCgroupV1: false,
          failSwapOn: false,
          // Pods get no name server of this machine: they reach only the bed, by address.
          resolvConf: join(dir, 'resolv.conf'),
          podCIDR: NODE_NETWORK.podCIDR,
          staticPodPath: '',
          evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
          imageGCHighThresholdPercent: 100,
          imageGCLowThresholdPercent: 99,
          serializeImagePulls: false,
          shutdownGracePeriod: '0s',
          protectKernelDefaults: false,
          localStorageCapacityIsolation: true,
        }),
      );
      node.#launch('kubelet', o.tools.kubelet, [
        `--config=${join(dir, 'kubelet.yaml')}`,
        `--kubeconfig=${kubeletKubeconfig}`,
        `--root-dir=${join(dir, 'kubelet')}`,
        `--hostname-override=${NODE_NAME}`,
        `--node-ip=${NODE_NETWORK.hostAddress}`,
        '--v=1',
      ]);
      node.#launch('kube-controller-manager', o.tools.kubeControllerManager, [
        `--kubeconfig=${kcmKubeconfig}`,
        `--authentication-kubeconfig=${kcmKubeconfig}`,
        `--authorization-kubeconfig=${kcmKubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(dir, 'kcm-certs')}`,
        '--leader-elect=false',
        '--use-service-account-credentials=true',
        `--service-account-private-key-file=${o.serviceAccountKey}`,
        `--root-ca-file=${o.ca.cert}`,
        '--allocate-node-cidrs=false',
        '--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller',
        '--v=0',
      ]);
      node.#launch('kube-scheduler', o.tools.kubeScheduler, [
        `--kubeconfig=${schedulerKubeconfig}`,
        `--authentication-kubeconfig=${schedulerKubeconfig}`,
        `--authorization-kubeconfig=${schedulerKubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${schedPort}`,
        `--cert-dir=${join(dir, 'scheduler-certs')}`,
        '--leader-elect=false',
        '--v=0',
      ]);
      writeFileSync(
        join(dir, 'kube-proxy.yaml'),
        JSON.stringify({
          apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
          kind: 'KubeProxyConfiguration',
          mode: 'iptables',
          clientConnection: { kubeconfig: proxyKubeconfig },
          hostnameOverride: NODE_NAME,
          bindAddress: NODE_NETWORK.hostAddress,
          clusterCIDR: NODE_NETWORK.podCIDR,
          metricsBindAddress: `127.0.0.1:${proxyMetrics}`,
          healthzBindAddress: `127.0.0.1:${proxyHealthz}`,
          nodePortAddresses: [`${NODE_NETWORK.hostAddress}/32`],
          // No conntrack or route_localnet sysctls touched on this machine.
          conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
          iptables: { localhostNodePorts: false, masqueradeAll: false },
        }),
      );
      node.#launch('kube-proxy', o.tools.kubeProxy, [`--config=${join(dir, 'kube-proxy.yaml')}`, '--v=0']);
      const kubelet = node.#procs.get('kubelet');
      await kubelet?.waitUntil(
        'Ready',
        async () =>
          (
            await o.kubectl([
              'get',
              'node',
              NODE_NAME,
              '-o',
              'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            ])
          ).trim() === 'True',
        120_000,
      );
      for (const name of ['kube-controller-manager', 'kube-scheduler', 'kube-proxy'])
        if (!node.#procs.get(name)?.running)
          throw node.#procs.get(name)?.failure('exited') ?? new Error(name);
      process.stderr.write(`bed node: ${NODE_NAME} Ready in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
    } catch (err) {
      await node.stop();
      throw err;
    } finally {
      o.onState(state);
    }
    return node;
  }

  #launch(name: string, command: string, args: string[]): ManagedProcess {
    const spec: ProcessSpec = {
      name,
      command,
      args,
      logFile: join(this.state.dir, `${name}.log`),
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
    };
    const proc = ManagedProcess.start(spec, this.#persistent);
    this.#procs.set(name, proc);
    this.state.procs = [...this.state.procs.filter((p) => p.spec.name !== name), { spec, pid: proc.pid }];
    return proc;
  }

  async #startContainerd(): Promise<void> {
    const dir = join(this.state.dir, 'containerd');
    const cni = join(this.state.dir, 'cni');
    mkdirSync(join(cni, 'net.d'), { recursive: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(cni, 'net.d', '10-bed.conflist'),
      JSON.stringify({
        cniVersion: '0.4.0',
        name: 'bed',
        plugins: [
          {
            type: 'bridge',
            bridge: NODE_NETWORK.bridge,
            // The bridge already carries the bed's address; the plugin must not make it a
            // gateway (that would turn IP forwarding on) nor masquerade.
            isGateway: false,
            ipMasq: false,
            hairpinMode: false,
            ipam: {
              type: 'host-local',
              dataDir: join(cni, 'ipam'),
              ranges: [
                [
                  {
                    subnet: NODE_NETWORK.podCIDR,
                    rangeStart: '198.18.0.10',
                    rangeEnd: '198.18.0.250',
                    gateway: NODE_NETWORK.hostAddress,
                  },
                ],
              ],
              routes: [{ dst: NODE_NETWORK.reachable, gw: NODE_NETWORK.hostAddress }],
            },
          },
          { type: 'loopback' },
        ],
      }),
    );
    const config = `version = 2
root = "${join(dir, 'root')}"
state = "${join(dir, 'state')}"
[grpc]
  address = "${this.state.containerdSocket}"
[ttrpc]
  address = "${join(dir, 'ttrpc.sock')}"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${join(cni, 'net.d')}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.internal.v1.opt"]
  path = "${join(dir, 'opt')}"
`;
    writeFileSync(join(dir, 'config.toml'), config);
    const proc = this.#launch('containerd', 'containerd', [`--config=${join(dir, 'config.toml')}`]);
    await proc.waitUntil('serving', async () => {
      await execFileAsync('ctr', ['-a', this.state.containerdSocket, 'version']);
      return true;
    });
  }

  /** Imports a `docker save` tarball into the node's containerd. */
  async importImage(tarball: string): Promise<void> {
    await execFileAsync(
      'ctr',
      ['-a', this.state.containerdSocket, '-n', 'k8s.io', 'images', 'import', tarball],
      {
        maxBuffer: 64 << 20,
      },
    );
  }

  /**
   * Stops everything the node started and removes what it left on this machine. Safe to call
   * more than once and after a failed start.
   */
  async stop(): Promise<void> {
    const s = this.state;
    for (const name of ['kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubelet'])
      await this.#procs.get(name)?.stop('SIGTERM', 10_000);
    // The Pods' sandboxes and containers, then containerd and its shims.
    if (this.#procs.get('containerd')?.running) {
      const crictl = async (args: string[]) =>
        execFileAsync('ctr', ['-a', s.containerdSocket, '-n', 'k8s.io', ...args]).then(
          (r) => r.stdout,
          () => '',
        );
      const tasks = (await crictl(['tasks', 'ls', '-q'])).split('\n').filter(Boolean);
      for (const t of tasks) await crictl(['tasks', 'kill', '-s', 'SIGKILL', t]);
      await sleep(tasks.length ? 500 : 0);
      for (const t of tasks) await crictl(['tasks', 'delete', '-f', t]);
      await this.#procs.get('containerd')?.stop('SIGTERM', 10_000);
    }
    killShims(s.dir);
    for (const m of mountsUnder(s.dir)) run('umount', ['-l', m], { allowFail: true });
    for (const ns of listNetns().filter((n) => !s.netnsBefore.includes(n) && n.startsWith('cni-'))) {
      run('umount', ['-l', join('/run/netns', ns)], { allowFail: true });
      rmSync(join('/run/netns', ns), { force: true });
    }
    if (!s.runNetnsMounted && isMountPoint('/run/netns'))
      run('umount', ['-l', '/run/netns'], { allowFail: true });
    run(s.kubeProxy, ['--cleanup'], { allowFail: true });
    removeNodeNetwork();
    // Cgroups may stay busy for a moment after their last process exits.
    for (let i = 0; i < 20; i++) {
      killCgroupProcesses(CGROUP_ROOT);
      removeCgroups(CGROUP_ROOT);
      if (!cgroupsLeft(CGROUP_ROOT)) break;
      await sleep(250);
    }
  }
}

/** Creates the cgroup `name` in every cgroup v1 hierarchy (cpuset with its parent's CPUs and memory nodes). */
function createCgroups(name: string): void {
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const parent = join('/sys/fs/cgroup', h);
    if (h === 'unified' || !existsSync(join(parent, 'cgroup.procs'))) continue;
    const dir = join(parent, name);
    mkdirSync(dir, { recursive: true });
    if (h === 'cpuset')
      for (const f of ['cpuset.cpus', 'cpuset.mems'])
        writeFileSync(join(dir, f), readFileSync(join(parent, f), 'utf8').trim() || '0');
  }
}

/**
 * Removes what a killed bed's node left behind on this machine when its bed.json is gone: its
 * processes (everything in the node's cgroups), the bridge, the iptables chains, the cgroups and
 * the Pods' network namespaces. Mounts under the killed bed's folder are removed with `rootDir`.
 */
export async function cleanNode(rootDir?: string): Promise<void> {
  killCgroupProcesses(CGROUP_ROOT);
  if (rootDir) {
    killShims(rootDir);
    for (const m of mountsUnder(rootDir)) run('umount', ['-l', m], { allowFail: true });
  }
  for (const ns of listNetns().filter((n) => n.startsWith('cni-'))) {
    run('umount', ['-l', join('/run/netns', ns)], { allowFail: true });
    rmSync(join('/run/netns', ns), { force: true });
  }
  removeNodeNetwork();
  for (let i = 0; i < 20 && cgroupsLeft(CGROUP_ROOT); i++) {
    killCgroupProcesses(CGROUP_ROOT);
    removeCgroups(CGROUP_ROOT);
    await sleep(250);
  }
}

function cgroupsLeft(name: string): boolean {
  return readdirSync('/sys/fs/cgroup').some((h) => existsSync(join('/sys/fs/cgroup', h, name)));
}

/** Kills every process left in the cgroup `name` (and below) of the pids hierarchy. */
function killCgroupProcesses(name: string): void {
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name === 'cgroup.procs')
        for (const pid of readFileSync(join(dir, e.name), 'utf8').split('\n').filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {}
        }
    }
  };
  for (const h of ['pids', 'memory', 'cpu', 'freezer']) walk(join('/sys/fs/cgroup', h, name));
}

/** Kills the containerd shims (and so the containers) whose command line names the node's folder. */
function killShims(dir: string): void {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmdline = '';
    try {
      cmdline = readFileSync(join('/proc', pid, 'cmdline'), 'utf8');
    } catch {
      continue;
    }
    if (cmdline.startsWith('/usr/bin/containerd-shim') && cmdline.includes(dir)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {}
    }
  }
}

async function freePorts(n: number): Promise<number[]> {
  const { freePort } = await import('./bed.ts');
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
