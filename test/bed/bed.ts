/**
 * The test bed: real kube-apiserver + etcd, MinIO (S3) and fake-gcs-server on
 * 127.0.0.1 (and, when asked, Azurite for Azure Blob), with their own CA, free
 * ports and a temporary directory.
 *
 * The API server runs hardened (no anonymous access, RBAC, client-certificate
 * admin) and its service-account issuer is the public URL of a bucket, the way
 * users deploy oidc-publisher.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  AZURITE_ACCOUNT_KEY,
  type AzureInfo,
  azureInfo,
  azuriteArgs,
  prepareAzureContainer,
} from './azurite.ts';
import { ensureNodePackages } from './container-image.ts';
import { request } from './http.ts';
import { BedNode, createNodeNetwork, NODE_NETWORK, type NodeState, removeNodeNetwork } from './node.ts';
import { type Ca, type CertFiles, createCa, createSigningKey, issueCert, type SigningKey } from './pki.ts';
import { ManagedProcess, type ProcessSpec } from './process.ts';
import { ensureTools, type ToolPaths } from './tools.ts';

const execFileAsync = promisify(execFile);

/**
 * The namespace whose requests the bed's API server writes to its audit log (Metadata level:
 * user, verb, URI, user agent, status), and no other: a test proves there what reached the API
 * server (the User-Agent) at no cost to the rest of the run.
 */
export const AUDITED_NAMESPACE = 'bed-audited';
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  namespaces: [${AUDITED_NAMESPACE}]
- level: None
`;

export interface BedOptions {
  /** Directory for the bed's files; a new temporary one by default. */
  dir?: string;
  /** Start fake-gcs-server too (default true). */
  gcs?: boolean;
  /** Which bucket's public URL is the API server's issuer (default 's3'). */
  issuer?: 's3' | 'gcs' | 'azure';
  /** Start Azurite (Azure Blob) too (default false; implied by issuer 'azure'). */
  azure?: boolean;
  /** Leave the servers running after this process exits (`testbed up`). */
  persistent?: boolean;
  /**
   * A CA directory shared by several beds (created on first use), so one
   * NODE_EXTRA_CA_CERTS trusts them all. Default: OIDC_BED_CA_DIR, else the bed's own.
   */
  caDir?: string;
  /**
   * Run a real node too (containerd, kubelet, kube-controller-manager, kube-scheduler,
   * kube-proxy): the API server and the object stores then listen on the node bridge's
   * address (198.18.0.1), which both this machine and the Pods reach. Needs root.
   */
  node?: boolean;
}

/** The bed CA in `dir`, created if it does not exist yet. */
export function bedCa(dir: string): Ca {
  mkdirSync(dir, { recursive: true });
  if (existsSync(join(dir, 'ca.crt')) && existsSync(join(dir, 'ca.key'))) {
    return { dir, cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  }
  return createCa(dir, 'oidc-publisher test bed CA');
}

export interface S3Info {
  endpoint: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Keys under this prefix are anonymously readable through the bucket policy. */
  publicPrefix: string;
}

export interface GcsInfo {
  endpoint: string;
  bucket: string;
  publicPrefix: string;
}

interface ProcState {
  spec: ProcessSpec;
  pid: number;
}

/** Everything another process needs to use a running bed; saved as bed.json. */
export interface BedState {
  dir: string;
  caFile: string;
  kubectl: string;
  admin: CertFiles & { kubeconfig: string };
  apiserver: {
    binary: string;
    url: string;
    port: number;
    issuer: string;
    /** Keys whose public halves the API server trusts (and serves). */
    keys: SigningKey[];
    /** The kid of --service-account-signing-key-file; absent: the last of keys. */
    signingKid?: string;
    proc: ProcState;
  };
  etcd: { url: string; proc: ProcState };
  s3: S3Info & { proc: ProcState };
  gcs?: GcsInfo & { proc: ProcState };
  azure?: AzureInfo & { proc: ProcState };
  /** The address the API server and object stores listen on (127.0.0.1 unless there is a node). */
  host?: string;
  /** The real node, when the bed runs one. */
  node?: NodeState;
}

/** A second API server that trusts the bed's issuer through structured authentication. */
export interface ConsumerApiserver {
  name: string;
  url: string;
  /** Its service-account issuer: its own, or the bed's when started with `sameIssuer`. */
  issuer: string;
  /** Its service-account key (it serves and signs with only this one). */
  signingKey: SigningKey;
  /** Kubeconfig of the bed admin (client certificate) against this server. */
  kubeconfig: string;
  /** The AuthenticationConfiguration file it was started with, if any. */
  authenticationConfigFile?: string;
  logFile: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

function kubeconfigYaml(
  server: string,
  caFile: string,
  user: { cert?: string; key?: string; token?: string },
): string {
  const auth = user.token
    ? `    token: ${user.token}\n`
    : `    client-certificate: ${user.cert}\n    client-key: ${user.key}\n`;
  return `apiVersion: v1
kind: Config
clusters:
- name: bed
  cluster:
    server: ${server}
    certificate-authority: ${caFile}
users:
- name: bed-user
  user:
${auth}contexts:
- name: bed
  context:
    cluster: bed
    user: bed-user
current-context: bed
`;
}

export class Bed {
  readonly state: BedState;
  readonly #persistent: boolean;
  readonly #owned: boolean;
  #procs: Map<string, ManagedProcess>;
  /** Process names of the consumer API servers started by startConsumerApiserver. */
  readonly #consumers = new Set<string>();
  #node: BedNode | undefined;

  private constructor(
    state: BedState,
    procs: Map<string, ManagedProcess>,
    persistent: boolean,
    owned: boolean,
  ) {
    this.state = state;
    this.#procs = procs;
    this.#persistent = persistent;
    this.#owned = owned;
  }

  /** Uses a bed that another process started (`testbed up`, or the test runner's shared bed). */
  static attach(stateFile: string): Bed {
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as BedState;
    const procs = new Map<string, ManagedProcess>();
    const add = (name: string, p: ProcState | undefined) => {
      if (p) procs.set(name, ManagedProcess.attach(p.spec, p.pid));
    };
    add('etcd', state.etcd.proc);
    add('kube-apiserver', state.apiserver.proc);
    add('minio', state.s3.proc);
    add('fake-gcs-server', state.gcs?.proc);
    add('azurite', state.azure?.proc);
    const bed = new Bed(state, procs, true, false);
    if (state.node) bed.#node = BedNode.attach(state.node);
    return bed;
  }

  static async start(opts: BedOptions = {}): Promise<Bed> {
    const tools = ensureTools([
      'kube',
      'etcd',
      'minio',
      ...(opts.gcs === false ? [] : (['fake-gcs-server'] as const)),
      ...(opts.node ? (['node'] as const) : []),
    ]);
    if (opts.node) {
      ensureNodePackages();
      createNodeNetwork();
    }
    const host = opts.node ? NODE_NETWORK.hostAddress : '127.0.0.1';
    const dir = opts.dir ? resolve(opts.dir) : mkdtempSync(join(tmpdir(), 'oidc-bed-'));
    mkdirSync(dir, { recursive: true });
    const pkiDir = join(dir, 'pki');
    mkdirSync(pkiDir, { recursive: true });
    const sharedCa = bedCa(opts.caDir ?? process.env.OIDC_BED_CA_DIR ?? pkiDir);
    const ca: Ca = { ...sharedCa, dir: pkiDir };
    const serving = issueCert(ca, 'serving', {
      commonName: host,
      serverNames: [
        '127.0.0.1',
        'localhost',
        ...(opts.node
          ? [
              host,
              NODE_NETWORK.kubernetesServiceIP,
              'kubernetes',
              'kubernetes.default',
              'kubernetes.default.svc',
              'kubernetes.default.svc.cluster.local',
            ]
          : []),
      ],
    });
    if (opts.node)
      issueCert(ca, 'apiserver-kubelet-client', {
        commonName: 'kube-apiserver-kubelet-client',
        organizations: ['system:masters'],
      });
    const admin = issueCert(ca, 'admin', { commonName: 'bed-admin', organizations: ['system:masters'] });
    const [etcdPort, etcdPeerPort, apiPort, s3Port, gcsPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const s3: S3Info = {
      endpoint: `https://${host}:${s3Port}`,
      region: 'us-east-1',
      bucket: 'oidc-bed',
      accessKeyId: 'bedadmin',
      secretAccessKey: `bed-${Math.random().toString(36).slice(2)}-secret`,
      publicPrefix: 'public/',
    };
    const gcs: GcsInfo | undefined =
      opts.gcs === false
        ? undefined
        : { endpoint: `https://${host}:${gcsPort}`, bucket: 'oidc-bed', publicPrefix: '' };
    const issuerBase =
      opts.issuer === 'gcs' && gcs ? `${gcs.endpoint}/${gcs.bucket}` : `${s3.endpoint}/${s3.bucket}`;
    const azure = opts.azure || opts.issuer === 'azure' ? azureInfo(await freePort()) : undefined;
    const issuer =
      opts.issuer === 'azure' && azure
        ? `${azure.accountURL}/${azure.container}/cluster-a`
        : `${issuerBase}/${opts.issuer === 'gcs' ? '' : s3.publicPrefix}cluster-a`;
    const adminKubeconfig = join(dir, 'admin.kubeconfig');
    const state: BedState = {
      dir,
      caFile: ca.cert,
      kubectl: tools.kubectl,
      admin: { ...admin, kubeconfig: adminKubeconfig },
      apiserver: {
        binary: tools.kubeApiserver,
        url: `https://${host}:${apiPort}`,
        port: apiPort,
        issuer,
        keys: [createSigningKey(pkiDir, 'sa-1')],
        proc: { spec: { name: 'kube-apiserver', command: '', args: [], logFile: '' }, pid: 0 },
      },
      etcd: {
        url: `http://127.0.0.1:${etcdPort}`,
        proc: { spec: { name: 'etcd', command: '', args: [], logFile: '' }, pid: 0 },
      },
      s3: { ...s3, proc: { spec: { name: 'minio', command: '', args: [], logFile: '' }, pid: 0 } },
      azure: azure && {
        ...azure,
        proc: { spec: { name: 'azurite', command: '', args: [], logFile: '' }, pid: 0 },
      },
      gcs: gcs && {
        ...gcs,
        proc: { spec: { name: 'fake-gcs-server', command: '', args: [], logFile: '' }, pid: 0 },
      },
      host,
    };
    writeFileSync(adminKubeconfig, kubeconfigYaml(state.apiserver.url, ca.cert, admin), { mode: 0o600 });
    const bed = new Bed(state, new Map(), opts.persistent ?? false, true);
    try {
      await Promise.all([
        bed.#startEtcd(tools, etcdPeerPort).then(() => bed.startApiserver()),
        bed.#startMinio(tools, ca, serving),
        gcs ? bed.#startGcs(tools, serving) : Promise.resolve(),
        azure ? bed.#startAzurite(serving) : Promise.resolve(),
      ]);
      bed.#save();
      if (opts.node) {
        bed.#node = await BedNode.start({
          dir,
          tools,
          ca,
          apiserverURL: state.apiserver.url,
          serviceAccountKey: bed.signingKey.privateKeyFile,
          kubectl: (args) => bed.kubectl(args),
          persistent: opts.persistent ?? false,
          onState: (node) => {
            state.node = node;
            bed.#save();
          },
        });
      }
    } catch (err) {
      await bed.stop({ keepDir: true });
      throw err;
    } finally {
      if (opts.node && !bed.#node) removeNodeNetwork();
    }
    return bed;
  }

  get dir(): string {
    return this.state.dir;
  }
  get ca(): Buffer {
    return readFileSync(this.state.caFile);
  }
  get issuer(): string {
    return this.state.apiserver.issuer;
  }
  get apiserverURL(): string {
    return this.state.apiserver.url;
  }
  get adminKubeconfig(): string {
    return this.state.admin.kubeconfig;
  }
  /** The API server's audit log (JSON lines): requests in AUDITED_NAMESPACE only. */
  get auditLog(): string {
    return join(this.dir, 'kube-apiserver-audit.log');
  }
  get signingKey(): SigningKey {
    const keys = this.state.apiserver.keys;
    const key = keys.find((k) => k.kid === this.state.apiserver.signingKid) ?? keys.at(-1);
    if (!key) throw new Error('bed has no signing key');
    return key;
  }

  #launch(name: string, spec: Omit<ProcessSpec, 'name' | 'logFile'>): ManagedProcess {
    const full: ProcessSpec = { ...spec, name, logFile: join(this.dir, `${name}.log`) };
    const proc = ManagedProcess.start(full, this.#persistent);
    this.#procs.set(name, proc);
    const ps = { spec: full, pid: proc.pid };
    if (name === 'etcd') this.state.etcd.proc = ps;
    else if (name === 'kube-apiserver') this.state.apiserver.proc = ps;
    else if (name === 'minio') this.state.s3.proc = ps;
    else if (name === 'fake-gcs-server' && this.state.gcs) this.state.gcs.proc = ps;
    else if (name === 'azurite' && this.state.azure) this.state.azure.proc = ps;
    return proc;
  }

  async #startEtcd(tools: ToolPaths, peerPort: number): Promise<void> {
    const url = this.state.etcd.url;
    const proc = this.#launch('etcd', {
      command: tools.etcd,
      args: [
        '--name=bed',
        `--data-dir=${join(this.dir, 'etcd')}`,
        `--listen-client-urls=${url}`,
        `--advertise-client-urls=${url}`,
        `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-cluster=bed=http://127.0.0.1:${peerPort}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
    });
    await proc.waitUntil('healthy', async () => {
      const res = await fetch(`${url}/health`);
      return res.ok;
    });
  }

  /** Starts (or starts again) kube-apiserver with the bed's current keys and issuer. */
  async startApiserver(): Promise<void> {
    this.#assertOwned();
    const s = this.state;
    const pki = join(this.dir, 'pki');
    const host = s.host ?? '127.0.0.1';
    const nodeMode = host !== '127.0.0.1';
    const auditPolicy = join(this.dir, 'audit-policy.yaml');
    writeFileSync(auditPolicy, AUDIT_POLICY);
    const proc = this.#launch('kube-apiserver', {
      command: s.apiserver.binary,
      args: [
        `--etcd-servers=${s.etcd.url}`,
        `--bind-address=${host}`,
        `--advertise-address=${host}`,
        `--secure-port=${s.apiserver.port}`,
        `--cert-dir=${join(this.dir, 'apiserver-certs')}`,
        `--tls-cert-file=${join(pki, 'serving.crt')}`,
        `--tls-private-key-file=${join(pki, 'serving.key')}`,
        `--client-ca-file=${s.caFile}`,
        '--anonymous-auth=false',
        `--service-account-issuer=${s.apiserver.issuer}`,
        ...s.apiserver.keys.map((k) => `--service-account-key-file=${k.publicKeyFile}`),
        `--service-account-signing-key-file=${this.signingKey.privateKeyFile}`,
        ...(nodeMode
          ? [
              // The node's kubelet (Node authorizer), the `kubernetes` Service's endpoint (the
              // lease reconciler), and logs/exec through the kubelet at its bridge address.
              `--service-cluster-ip-range=${NODE_NETWORK.serviceCIDR}`,
              '--authorization-mode=Node,RBAC',
              '--enable-admission-plugins=NodeRestriction',
              '--endpoint-reconciler-type=lease',
              '--kubelet-preferred-address-types=InternalIP',
              `--kubelet-certificate-authority=${s.caFile}`,
              `--kubelet-client-certificate=${join(pki, 'apiserver-kubelet-client.crt')}`,
              `--kubelet-client-key=${join(pki, 'apiserver-kubelet-client.key')}`,
            ]
          : [
              '--authorization-mode=RBAC',
              '--service-cluster-ip-range=10.96.0.0/24',
              '--endpoint-reconciler-type=none',
            ]),
        '--allow-privileged=false',
        '--profiling=false',
        '--enable-priority-and-fairness=false',
        `--audit-policy-file=${auditPolicy}`,
        `--audit-log-path=${this.auditLog}`,
        '--v=0',
      ],
    });
    const ca = this.ca;
    const cert = readFileSync(s.admin.cert);
    const key = readFileSync(s.admin.key);
    await proc.waitUntil(
      'ready',
      async () =>
        (await request(`${s.apiserver.url}/readyz`, { ca, cert, key, timeoutMs: 2000 })).status === 200,
      120_000,
    );
    this.#save();
  }

  async stopApiserver(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.#assertOwned();
    await this.#procs.get('kube-apiserver')?.stop(signal);
  }

  /**
   * Restarts the API server, as an operator rotating its service-account key
   * would: with `rotate`, a new key signs; the old public keys stay trusted
   * unless `dropOldKeys`. etcd and its state are kept.
   */
  async restartApiserver(opts: { rotate?: boolean; dropOldKeys?: boolean } = {}): Promise<void> {
    await this.stopApiserver();
    delete this.state.apiserver.signingKid;
    if (opts.rotate) {
      const next = createSigningKey(join(this.dir, 'pki'), `sa-${this.state.apiserver.keys.length + 1}`);
      this.state.apiserver.keys = opts.dropOldKeys ? [next] : [...this.state.apiserver.keys, next];
    } else if (opts.dropOldKeys) {
      this.state.apiserver.keys = [this.signingKey];
    }
    await this.startApiserver();
  }

  /** A new service-account key pair in the bed's pki directory; the API server uses it once restarted with it. */
  createServiceAccountKey(): SigningKey {
    const n = this.state.apiserver.keys.length + 1 + Math.floor(Math.random() * 1e6);
    return createSigningKey(join(this.dir, 'pki'), `sa-${n}`);
  }

  /**
   * Restarts the API server as a rotation step would: `keys` are its --service-account-key-file
   * (the public keys it serves and trusts), `signing` its --service-account-signing-key-file.
   */
  async restartApiserverWithKeys(keys: readonly SigningKey[], signing: SigningKey): Promise<void> {
    if (!keys.some((k) => k.kid === signing.kid)) throw new Error('the signing key must be one of the keys');
    await this.stopApiserver();
    this.state.apiserver.keys = [...keys];
    this.state.apiserver.signingKid = signing.kid;
    await this.startApiserver();
  }

  /**
   * Starts another kube-apiserver, "cluster B", that accepts the bed's
   * service-account tokens as an external issuer: started with
   * `--authentication-config` (and no --oidc-* flag, which that excludes). It
   * keeps its own data under a distinct --etcd-prefix of the bed's etcd, its
   * own service-account issuer and keys, and the bed's CA, serving certificate
   * and admin client certificate. The bed stops it with its other servers.
   */
  async startConsumerApiserver(opts: {
    /** Started with --authentication-config of this content; without it, only its own tokens and the bed's client certificates authenticate. */
    authenticationConfig?: string;
    name?: string;
    /** Sign with the bed's issuer (--service-account-issuer), as a cluster that replaces or joins the bed's would. */
    sameIssuer?: boolean;
  }): Promise<ConsumerApiserver> {
    this.#assertOwned();
    const s = this.state;
    const name = opts.name ?? 'cluster-b';
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name))
      throw new Error(`consumer name ${JSON.stringify(name)} is not a DNS label`);
    const procName = `kube-apiserver-${name}`;
    if (this.#procs.get(procName)?.running) throw new Error(`${procName} is already running`);
    const dir = join(this.dir, name);
    mkdirSync(dir, { recursive: true });
    const configFile = opts.authenticationConfig ? join(dir, 'authentication-config.yaml') : undefined;
    if (configFile) writeFileSync(configFile, opts.authenticationConfig ?? '');
    const pki = join(this.dir, 'pki');
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const issuer = opts.sameIssuer ? s.apiserver.issuer : `${url}/${name}`;
    const key = createSigningKey(dir, 'sa');
    const proc = this.#launch(procName, {
      command: s.apiserver.binary,
      args: [
        `--etcd-servers=${s.etcd.url}`,
        `--etcd-prefix=/${name}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${port}`,
        `--cert-dir=${join(dir, 'apiserver-certs')}`,
        `--tls-cert-file=${join(pki, 'serving.crt')}`,
        `--tls-private-key-file=${join(pki, 'serving.key')}`,
        `--client-ca-file=${s.caFile}`,
        ...(configFile ? [`--authentication-config=${configFile}`] : []),
        '--anonymous-auth=false',
        '--authorization-mode=RBAC',
        `--service-account-issuer=${issuer}`,
        `--service-account-key-file=${key.publicKeyFile}`,
        `--service-account-signing-key-file=${key.privateKeyFile}`,
        '--service-cluster-ip-range=10.96.0.0/24',
        '--allow-privileged=false',
        '--profiling=false',
        '--enable-priority-and-fairness=false',
        '--endpoint-reconciler-type=none',
        '--v=0',
      ],
    });
    this.#consumers.add(procName);
    const kubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(kubeconfig, kubeconfigYaml(url, s.caFile, s.admin), { mode: 0o600 });
    const ca = this.ca;
    const cert = readFileSync(s.admin.cert);
    const clientKey = readFileSync(s.admin.key);
    await proc.waitUntil(
      'ready',
      async () =>
        (await request(`${url}/readyz`, { ca, cert, key: clientKey, timeoutMs: 2000 })).status === 200,
      120_000,
    );
    return {
      name,
      url,
      issuer,
      signingKey: key,
      kubeconfig,
      ...(configFile ? { authenticationConfigFile: configFile } : {}),
      logFile: proc.spec.logFile,
      stop: async () => {
        await proc.stop();
        this.#consumers.delete(procName);
      },
    };
  }

  async #startMinio(tools: ToolPaths, ca: Ca, serving: CertFiles): Promise<void> {
    const certs = join(this.dir, 'minio-certs');
    mkdirSync(join(certs, 'CAs'), { recursive: true });
    writeFileSync(join(certs, 'public.crt'), readFileSync(serving.cert));
    writeFileSync(join(certs, 'private.key'), readFileSync(serving.key), { mode: 0o600 });
    writeFileSync(join(certs, 'CAs', 'ca.crt'), readFileSync(ca.cert));
    const s3 = this.state.s3;
    const port = new URL(s3.endpoint).port;
    const proc = this.#launch('minio', {
      command: tools.minio,
      args: [
        'server',
        '--quiet',
        '--address',
        `${new URL(s3.endpoint).hostname}:${port}`,
        '--certs-dir',
        certs,
        join(this.dir, 'minio-data'),
      ],
      env: {
        MINIO_ROOT_USER: s3.accessKeyId,
        MINIO_ROOT_PASSWORD: s3.secretAccessKey,
        MINIO_BROWSER: 'off',
        MINIO_UPDATE: 'off',
        MINIO_REGION: s3.region,
        // Tests count requests (PUTs, HEADs) at the server from its metrics.
        MINIO_PROMETHEUS_AUTH_TYPE: 'public',
      },
    });
    const caPem = readFileSync(ca.cert);
    await proc.waitUntil(
      'serving',
      async () =>
        (await request(`${s3.endpoint}/minio/health/live`, { ca: caPem, timeoutMs: 2000 })).status === 200,
    );
    await this.#prepareS3Bucket();
  }

  async #prepareS3Bucket(): Promise<void> {
    const { createS3Client } = await import('./s3.ts');
    const { CreateBucketCommand, PutBucketPolicyCommand } = await import('@aws-sdk/client-s3');
    const s3 = this.state.s3;
    const client = createS3Client(s3, this.ca);
    try {
      await client.send(new CreateBucketCommand({ Bucket: s3.bucket }));
      const policy = {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'PublicIssuerRead',
            Effect: 'Allow',
            Principal: { AWS: ['*'] },
            Action: ['s3:GetObject'],
            Resource: [`arn:aws:s3:::${s3.bucket}/${s3.publicPrefix}*`],
          },
        ],
      };
      await client.send(new PutBucketPolicyCommand({ Bucket: s3.bucket, Policy: JSON.stringify(policy) }));
    } finally {
      client.destroy();
    }
  }

  /** Azurite's blob service over HTTPS, with its container for anonymous blob reads. */
  async #startAzurite(serving: CertFiles): Promise<void> {
    const azure = this.state.azure;
    if (!azure) return;
    const location = join(this.dir, 'azurite-data');
    mkdirSync(location, { recursive: true });
    const proc = this.#launch('azurite', {
      command: process.execPath,
      args: azuriteArgs(azure, location, serving),
    });
    const ca = this.ca;
    // Any HTTP answer (an anonymous request is refused) means it serves.
    await proc.waitUntil(
      'serving',
      async () => (await request(`${azure.accountURL}?comp=list`, { ca, timeoutMs: 2000 })).status > 0,
    );
    await prepareAzureContainer(azure, ca);
  }

  async #startGcs(tools: ToolPaths, serving: CertFiles): Promise<void> {
    const gcs = this.state.gcs;
    if (!gcs) return;
    const data = join(this.dir, 'gcs-data');
    mkdirSync(join(data, gcs.bucket), { recursive: true });
    const url = new URL(gcs.endpoint);
    const proc = this.#launch('fake-gcs-server', {
      command: tools.fakeGcsServer,
      args: [
        '-scheme',
        'https',
        '-host',
        url.hostname,
        '-port',
        url.port,
        '-cert-location',
        serving.cert,
        '-private-key-location',
        serving.key,
        '-backend',
        'memory',
        '-data',
        data,
        '-public-host',
        url.host,
        '-external-url',
        gcs.endpoint,
        '-log-level',
        'warn',
      ],
    });
    const ca = this.ca;
    await proc.waitUntil(
      'serving',
      async () =>
        (await request(`${gcs.endpoint}/storage/v1/b/${gcs.bucket}`, { ca, timeoutMs: 2000 })).status === 200,
    );
  }

  /** Runs the bed's pinned kubectl as the bed admin (or with another kubeconfig). */
  async kubectl(
    args: readonly string[],
    opts: { input?: string; kubeconfig?: string } = {},
  ): Promise<string> {
    const child = execFileAsync(this.state.kubectl, [...args], {
      env: { ...process.env, KUBECONFIG: opts.kubeconfig ?? this.adminKubeconfig },
      maxBuffer: 64 * 1024 * 1024,
    });
    if (opts.input !== undefined) {
      child.child.stdin?.end(opts.input);
    }
    const { stdout } = await child;
    return stdout;
  }

  /** Mints a service-account token with the TokenRequest API. */
  async mintToken(o: {
    namespace: string;
    serviceAccount: string;
    audience?: string;
    durationSeconds?: number;
  }): Promise<string> {
    const args = ['create', 'token', o.serviceAccount, '-n', o.namespace];
    if (o.audience) args.push('--audience', o.audience);
    args.push('--duration', `${o.durationSeconds ?? 3600}s`);
    return (await this.kubectl(args)).trim();
  }

  /** Creates the ServiceAccount if needed and writes a kubeconfig that uses a fresh token of it. */
  async serviceAccountKubeconfig(
    namespace: string,
    serviceAccount: string,
    durationSeconds = 3600,
  ): Promise<string> {
    await this.kubectl(['create', 'namespace', namespace, '--dry-run=client', '-o', 'yaml']).then((y) =>
      this.kubectl(['apply', '-f', '-'], { input: y }),
    );
    await this.kubectl([
      'create',
      'serviceaccount',
      serviceAccount,
      '-n',
      namespace,
      '--dry-run=client',
      '-o',
      'yaml',
    ]).then((y) => this.kubectl(['apply', '-f', '-'], { input: y }));
    const token = await this.mintToken({ namespace, serviceAccount, durationSeconds });
    const file = join(this.dir, `sa-${namespace}-${serviceAccount}.kubeconfig`);
    writeFileSync(file, kubeconfigYaml(this.apiserverURL, this.state.caFile, { token }), { mode: 0o600 });
    return file;
  }

  /**
   * A self-contained kubeconfig (CA and token inline, no file references), as a
   * user would store in a Secret for the operator.
   */
  inlineKubeconfig(token: string, server = this.apiserverURL): string {
    const ca = this.ca.toString('base64');
    return `apiVersion: v1
kind: Config
clusters:
- name: bed
  cluster:
    server: ${server}
    certificate-authority-data: ${ca}
users:
- name: reader
  user:
    token: ${token}
contexts:
- name: bed
  context:
    cluster: bed
    user: reader
current-context: bed
`;
  }

  /** MinIO's own count of S3 API requests by name (PutObject, HeadObject, ...), from its metrics. */
  async s3RequestCounts(): Promise<Map<string, number>> {
    const res = await request(`${this.state.s3.endpoint}/minio/metrics/v3/api/requests`, { ca: this.ca });
    if (res.status !== 200) throw new Error(`MinIO metrics: HTTP ${res.status}`);
    const counts = new Map<string, number>();
    for (const m of res
      .text()
      .matchAll(/^minio_api_requests_total\{name="([^"]+)"[^}]*\} (\d+(?:\.\d+)?)/gm)) {
      counts.set(m[1] ?? '', (counts.get(m[1] ?? '') ?? 0) + Number(m[2]));
    }
    return counts;
  }

  /**
   * Stops etcd or MinIO, keeping its data and port, so a test can see the
   * operator run without it; startServer starts it again.
   */
  async stopServer(name: 'etcd' | 'minio', signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.#assertOwned();
    await this.#procs.get(name)?.stop(signal);
  }

  /** Starts etcd or MinIO again (after stopServer) with the same command, data and port, and waits until it serves. */
  async startServer(name: 'etcd' | 'minio'): Promise<void> {
    this.#assertOwned();
    if (this.#procs.get(name)?.running) throw new Error(`${name} is already running`);
    const { command, args, env } = name === 'etcd' ? this.state.etcd.proc.spec : this.state.s3.proc.spec;
    const proc = this.#launch(name, { command, args, ...(env ? { env } : {}) });
    const ca = this.ca;
    await proc.waitUntil('serving again', async () =>
      name === 'etcd'
        ? (await fetch(`${this.state.etcd.url}/health`)).ok
        : (await request(`${this.state.s3.endpoint}/minio/health/live`, { ca, timeoutMs: 2000 })).status ===
          200,
    );
    this.#save();
  }

  /**
   * Compacts etcd's history up to its current revision (through etcd's JSON
   * gateway), so a watch from an older resourceVersion can only get 410 Gone.
   * Returns the revision.
   */
  async compactEtcd(): Promise<number> {
    const post = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
      const res = await fetch(`${this.state.etcd.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status} ${await res.text()}`);
      return (await res.json()) as Record<string, unknown>;
    };
    const range = await post('/v3/kv/range', { key: Buffer.from('/').toString('base64'), limit: 1 });
    const revision = Number((range.header as { revision?: string } | undefined)?.revision);
    if (!Number.isInteger(revision) || revision < 1)
      throw new Error(`etcd revision: ${JSON.stringify(range)}`);
    await post('/v3/kv/compaction', { revision: String(revision), physical: true });
    return revision;
  }

  /**
   * A second kube-apiserver of the same cluster (same etcd, keys, issuer and
   * flags as the bed's, another port), as in an HA control plane: a test can
   * stop it while the operator's own API server stays up. The bed stops it too.
   */
  async startApiserverReplica(): Promise<{ url: string; start(): Promise<void>; stop(): Promise<void> }> {
    this.#assertOwned();
    const name = 'kube-apiserver-replica';
    const s = this.state;
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const args = s.apiserver.proc.spec.args.map((a) =>
      a.startsWith('--secure-port=')
        ? `--secure-port=${port}`
        : a.startsWith('--cert-dir=')
          ? `--cert-dir=${join(this.dir, 'replica-certs')}`
          : a,
    );
    const ca = this.ca;
    const cert = readFileSync(s.admin.cert);
    const key = readFileSync(s.admin.key);
    const start = async () => {
      const proc = this.#launch(name, { command: s.apiserver.binary, args });
      this.#consumers.add(name);
      await proc.waitUntil(
        'ready',
        async () => (await request(`${url}/readyz`, { ca, cert, key, timeoutMs: 2000 })).status === 200,
        120_000,
      );
    };
    await start();
    return {
      url,
      start,
      stop: async () => {
        await this.#procs.get(name)?.stop();
      },
    };
  }

  /** Environment variables describing this bed, for other tools and processes. */
  env(): Record<string, string> {
    const s = this.state;
    const env: Record<string, string> = {
      OIDC_BED_DIR: s.dir,
      OIDC_BED_STATE: join(s.dir, 'bed.json'),
      KUBECONFIG: s.admin.kubeconfig,
      OIDC_BED_KUBECTL: s.kubectl,
      OIDC_BED_CA_FILE: s.caFile,
      NODE_EXTRA_CA_CERTS: s.caFile,
      AWS_CA_BUNDLE: s.caFile,
      OIDC_BED_APISERVER: s.apiserver.url,
      OIDC_BED_ISSUER: s.apiserver.issuer,
      OIDC_BED_S3_ENDPOINT: s.s3.endpoint,
      OIDC_BED_S3_REGION: s.s3.region,
      OIDC_BED_S3_BUCKET: s.s3.bucket,
      OIDC_BED_S3_PUBLIC_PREFIX: s.s3.publicPrefix,
      AWS_ACCESS_KEY_ID: s.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s.s3.secretAccessKey,
    };
    if (s.azure) {
      env.OIDC_BED_AZURE_ACCOUNT_URL = s.azure.accountURL;
      env.OIDC_BED_AZURE_CONTAINER = s.azure.container;
      // Account and key rather than a connection string, whose ';' would not survive `. bed.env`.
      env.AZURE_STORAGE_ACCOUNT = s.azure.account;
      env.AZURE_STORAGE_KEY = AZURITE_ACCOUNT_KEY;
    }
    if (s.gcs) {
      env.OIDC_BED_GCS_ENDPOINT = s.gcs.endpoint;
      env.OIDC_BED_GCS_BUCKET = s.gcs.bucket;
    }
    return env;
  }

  #save(): void {
    writeFileSync(join(this.dir, 'bed.json'), `${JSON.stringify(this.state, null, 2)}\n`, { mode: 0o600 });
    const lines = Object.entries(this.env()).map(([k, v]) => `${k}=${v}`);
    writeFileSync(join(this.dir, 'bed.env'), `${lines.join('\n')}\n`, { mode: 0o600 });
  }

  #assertOwned(): void {
    if (!this.#owned) throw new Error('this bed is shared: start a bed of your own to restart its servers');
  }

  /** The bed's real node, when it runs one (BedOptions.node). */
  get node(): BedNode | undefined {
    return this.#node;
  }

  /** Stops every server (reverse start order), the node if any, and removes the bed's directory. */
  async stop(opts: { keepDir?: boolean } = {}): Promise<void> {
    // The node first: its Pods and kubelet still talk to the API server while they stop.
    await this.#node?.stop();
    for (const name of [
      ...this.#consumers,
      'azurite',
      'fake-gcs-server',
      'minio',
      'kube-apiserver',
      'etcd',
    ]) {
      await this.#procs.get(name)?.stop();
    }
    if (!opts.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }
}
