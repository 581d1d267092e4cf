import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { describe, it } from 'node:test';
import { type Config, parseConfig } from '../../src/config.ts';
import { OidcPublisherError } from '../../src/errors.ts';

type ReadFile = NonNullable<Parameters<typeof parseConfig>[2]>;

/** Not running in a cluster: the namespace file does not exist. */
const noFile: ReadFile = () => {
  throw Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT' });
};

/** Running in a cluster whose namespace file holds `text`; records the paths read. */
function inClusterFile(text: string, reads: string[] = []): ReadFile {
  const read = (path: unknown): string => {
    reads.push(String(path));
    return text;
  };
  // readFileSync is overloaded and no single function matches every overload; parseConfig only
  // calls the (path, 'utf8') => string form, which this implements.
  return read as unknown as ReadFile;
}

const NS = { POD_NAMESPACE: 'oidc-system' };

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof OidcPublisherError, `expected an OidcPublisherError, got ${String(err)}`);
    assert.equal(err.code, 'CONFIG_INVALID', `expected CONFIG_INVALID, got ${err.code}`);
    return err.message
      .split('\n')
      .slice(1)
      .map((l) => l.trim());
  }
  return assert.fail('expected parseConfig to throw CONFIG_INVALID');
}

describe('parseConfig', () => {
  it('applies every default', () => {
    const config = parseConfig([], NS, noFile);
    const { identity, ...leaderElection } = config.leaderElection;
    const expected: Omit<Config, 'leaderElection'> & {
      leaderElection: Omit<Config['leaderElection'], 'identity'>;
    } = {
      namespace: 'oidc-system',
      concurrency: 4,
      sourceTimeoutMs: 10_000,
      storageTimeoutMs: 15_000,
      storageAllowedHosts: [],
      gcsTokenFileDirs: ['/var/run/secrets/oidc-publisher/gcp'],
      backoffBaseMs: 1000,
      backoffMaxMs: 60_000,
      shutdownGraceMs: 20_000,
      logLevel: 'info',
      healthAddr: ':8081',
      allowForeignJwksURI: false,
      kubeApiQps: 50,
      kubeApiBurst: 100,
      leaderElection: {
        enabled: true,
        leaseName: 'oidc-publisher',
        leaseDurationMs: 15_000,
        renewDeadlineMs: 10_000,
        retryPeriodMs: 2000,
      },
    };
    assert.deepEqual({ ...config, leaderElection }, expected);
    assert.match(
      identity,
      new RegExp(`^${hostname()}-[0-9a-f]{8}$`),
      `expected host name and suffix, got ${identity}`,
    );
    assert.equal('kubeconfig' in config, false, 'expected no kubeconfig by default');
    assert.equal('watchName' in config, false, 'expected no watch name by default');
  });

  it('takes --storage-allowed-hosts as a list (commas or spaces) of <backend>=<host> entries and reports every bad entry at once', () => {
    assert.deepEqual(
      parseConfig(
        [
          '--storage-allowed-hosts',
          's3=127.0.0.1, s3=*.r2.cloudflarestorage.com,gcs=http://minio.storage.svc azureBlob=[::1]',
        ],
        NS,
        noFile,
      ).storageAllowedHosts,
      ['s3=127.0.0.1', 's3=*.r2.cloudflarestorage.com', 'gcs=http://minio.storage.svc', 'azureBlob=[::1]'],
    );
    assert.deepEqual(
      parseConfig([], { ...NS, OIDC_PUBLISHER_STORAGE_ALLOWED_HOSTS: 's3=localhost' }, noFile)
        .storageAllowedHosts,
      ['s3=localhost'],
    );
    const problems = problemsOf(() =>
      parseConfig(['--storage-allowed-hosts', 's3=*,s3=minio:9000,gcs=https://x.example'], NS, noFile),
    ).join('\n');
    assert.match(problems, /"s3=\*": name a host or a \*\.suffix/);
    assert.match(problems, /"s3=minio:9000": not a host name or IP address/);
    assert.match(problems, /"gcs=https:\/\/x\.example": only http:\/\/ may prefix a host/);
  });

  it('refuses a --storage-allowed-hosts entry without a backend, which once allowed a host to every backend', () => {
    const problems = problemsOf(() =>
      parseConfig(['--storage-allowed-hosts', 'minio.storage.svc,http://127.0.0.1,s4=x.example'], NS, noFile),
    ).join('\n');
    assert.match(
      problems,
      /"minio\.storage\.svc": name the backend the host is for \(s3=minio\.storage\.svc, gcs=minio\.storage\.svc or azureBlob=minio\.storage\.svc\)/,
    );
    assert.match(problems, /"http:\/\/127\.0\.0\.1": name the backend/);
    assert.match(problems, /"s4=x\.example": the backend must be one of s3, gcs, azureBlob/);
  });

  it('takes --gcs-token-file-dirs as absolute directories, none for none, never the ServiceAccount token directory', () => {
    assert.deepEqual(
      parseConfig(['--gcs-token-file-dirs', '/var/run/gcp, /etc/wif/'], NS, noFile).gcsTokenFileDirs,
      ['/var/run/gcp', '/etc/wif/'],
    );
    assert.deepEqual(
      parseConfig([], { ...NS, OIDC_PUBLISHER_GCS_TOKEN_FILE_DIRS: 'none' }, noFile).gcsTokenFileDirs,
      [],
    );
    const problems = problemsOf(() =>
      parseConfig(
        [
          '--gcs-token-file-dirs',
          'relative/dir,/,/var/run/secrets,/var/run/secrets/kubernetes.io/serviceaccount,/run/secrets/kubernetes.io/serviceaccount/x,/a/../var/run/secrets/kubernetes.io',
        ],
        NS,
        noFile,
      ),
    ).join('\n');
    assert.match(problems, /"relative\/dir" is not a plain absolute directory/);
    assert.match(problems, /"\/" is not a plain absolute directory/);
    assert.match(
      problems,
      /"\/var\/run\/secrets" holds or lies in the operator's own ServiceAccount token directory/,
    );
    assert.match(problems, /"\/var\/run\/secrets\/kubernetes\.io\/serviceaccount" holds or lies in/);
    assert.match(problems, /"\/run\/secrets\/kubernetes\.io\/serviceaccount\/x" holds or lies in/);
    assert.match(
      problems,
      /"\/a\/\.\.\/var\/run\/secrets\/kubernetes\.io" is not a plain absolute directory/,
    );
  });

  it('accepts a foreign jwksURI only when --allow-foreign-jwks-uri (or its variable) is true', () => {
    assert.equal(parseConfig(['--allow-foreign-jwks-uri', 'true'], NS, noFile).allowForeignJwksURI, true);
    assert.equal(
      parseConfig([], { ...NS, OIDC_PUBLISHER_ALLOW_FOREIGN_JWKS_URI: 'true' }, noFile).allowForeignJwksURI,
      true,
    );
    assert.deepEqual(
      problemsOf(() => parseConfig(['--allow-foreign-jwks-uri', 'yes'], NS, noFile)),
      ['--allow-foreign-jwks-uri: "yes" is not true or false'],
    );
  });

  it('takes the client-side rate limit of API requests from --kube-api-qps and --kube-api-burst (or their variables)', () => {
    const flags = parseConfig(['--kube-api-qps', '2.5', '--kube-api-burst', '4'], NS, noFile);
    assert.deepEqual([flags.kubeApiQps, flags.kubeApiBurst], [2.5, 4]);
    const vars = parseConfig(
      [],
      { ...NS, OIDC_PUBLISHER_KUBE_API_QPS: '0', OIDC_PUBLISHER_KUBE_API_BURST: '1' },
      noFile,
    );
    assert.deepEqual([vars.kubeApiQps, vars.kubeApiBurst], [0, 1], '0 turns the limit off');
    assert.deepEqual(
      problemsOf(() => parseConfig(['--kube-api-qps=-1', '--kube-api-burst', '0'], NS, noFile)),
      [
        '--kube-api-qps: "-1" is not a number from 0 (no limit) to 10000',
        '--kube-api-burst: "0" is not a whole number from 1 to 10000',
      ],
    );
    assert.deepEqual(
      problemsOf(() => parseConfig(['--kube-api-qps', '1e3', '--kube-api-burst', '2.5'], NS, noFile)),
      [
        '--kube-api-qps: "1e3" is not a number from 0 (no limit) to 10000',
        '--kube-api-burst: "2.5" is not a whole number from 1 to 10000',
      ],
    );
  });

  it('reads the namespace from the in-cluster file when neither flag nor env sets it', () => {
    const reads: string[] = [];
    const config = parseConfig([], {}, inClusterFile('kube-system\n', reads));
    assert.equal(
      config.namespace,
      'kube-system',
      `expected the trimmed file content, got ${config.namespace}`,
    );
    assert.deepEqual(reads, ['/var/run/secrets/kubernetes.io/serviceaccount/namespace']);
  });

  it('does not read the in-cluster file when the namespace is set', () => {
    const reads: string[] = [];
    parseConfig(['--namespace', 'a'], {}, inClusterFile('b', reads));
    assert.deepEqual(reads, []);
  });

  const sources: { name: string; argv: string[]; env: NodeJS.ProcessEnv; expected: Partial<Config> }[] = [
    {
      name: 'takes values from the environment when no flag is given',
      argv: [],
      env: {
        ...NS,
        OIDC_PUBLISHER_CONCURRENCY: '8',
        OIDC_PUBLISHER_SOURCE_TIMEOUT: '3s',
        OIDC_PUBLISHER_LOG_LEVEL: 'debug',
        KUBECONFIG: '/home/me/.kube/config',
        OIDC_PUBLISHER_WATCH_NAME: 'cluster-issuer',
      },
      expected: {
        concurrency: 8,
        sourceTimeoutMs: 3000,
        logLevel: 'debug',
        kubeconfig: '/home/me/.kube/config',
        watchName: 'cluster-issuer',
      },
    },
    {
      name: 'prefers a flag over the environment',
      argv: ['--concurrency', '2', '--namespace=flag-ns', '--log-level', 'warn'],
      env: { ...NS, OIDC_PUBLISHER_CONCURRENCY: '8', OIDC_PUBLISHER_LOG_LEVEL: 'debug' },
      expected: { concurrency: 2, namespace: 'flag-ns', logLevel: 'warn' },
    },
    {
      name: 'treats an empty environment variable as unset',
      argv: [],
      env: { ...NS, OIDC_PUBLISHER_CONCURRENCY: '', OIDC_PUBLISHER_BACKOFF_MAX: '' },
      expected: { concurrency: 4, backoffMaxMs: 60_000 },
    },
    {
      name: 'disables the health server with an empty --health-addr',
      argv: ['--health-addr='],
      env: NS,
      expected: { healthAddr: '' },
    },
    {
      name: 'disables the health server with an empty OIDC_PUBLISHER_HEALTH_ADDR',
      argv: [],
      env: { ...NS, OIDC_PUBLISHER_HEALTH_ADDR: '' },
      expected: { healthAddr: '' },
    },
    {
      name: 'accepts a host:port health address',
      argv: ['--health-addr', '127.0.0.1:9000'],
      env: NS,
      expected: { healthAddr: '127.0.0.1:9000' },
    },
    {
      name: 'accepts the largest concurrency',
      argv: ['--concurrency', '256'],
      env: NS,
      expected: { concurrency: 256 },
    },
    {
      name: 'parses compound durations',
      argv: ['--shutdown-grace', '1m30s', '--backoff-base', '250ms'],
      env: NS,
      expected: { shutdownGraceMs: 90_000, backoffBaseMs: 250 },
    },
  ];
  for (const { name, argv, env, expected } of sources) {
    it(name, () => {
      const config = parseConfig(argv, env, noFile);
      const got = Object.fromEntries(Object.keys(expected).map((k) => [k, config[k as keyof Config]]));
      assert.deepEqual(got, expected, `expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
    });
  }

  it('sets up leader election from flags and env', () => {
    const config = parseConfig(
      [
        '--leader-elect',
        'false',
        '--lease-duration',
        '30s',
        '--renew-deadline',
        '20s',
        '--retry-period',
        '5s',
      ],
      { ...NS, OIDC_PUBLISHER_LEADER_ELECTION_ID: 'my-lease', POD_NAME: 'op-0' },
      noFile,
    );
    assert.deepEqual(config.leaderElection, {
      enabled: false,
      leaseName: 'my-lease',
      identity: 'op-0',
      leaseDurationMs: 30_000,
      renewDeadlineMs: 20_000,
      retryPeriodMs: 5000,
    });
  });

  it('reports every problem at once', () => {
    const problems = problemsOf(() =>
      parseConfig(
        [
          '--concurrency',
          '0',
          '--log-level',
          'verbose',
          '--health-addr',
          'localhost',
          '--leader-elect',
          'yes',
          '--source-timeout',
          'ten seconds',
          '--backoff-max',
          '0s',
        ],
        {},
        noFile,
      ),
    );
    const expected = [
      /^--concurrency: "0" is not a whole number from 1 to 256$/,
      /^--log-level: "verbose" is not one of trace, debug, info, warn, error, fatal$/,
      /^--namespace: not set, and not running in a cluster/,
      /^--health-addr: "localhost" is not host:port$/,
      /^--leader-elect: "yes" is not true or false$/,
      /^--source-timeout: "ten seconds" is not a duration/,
      /^--backoff-max: "0s" is not a duration/,
    ];
    assert.equal(
      problems.length,
      expected.length,
      `expected ${expected.length} problems, got:\n${problems.join('\n')}`,
    );
    for (const re of expected) {
      assert.ok(
        problems.some((p) => re.test(p)),
        `expected a problem matching ${re}, got:\n${problems.join('\n')}`,
      );
    }
  });

  const single: { name: string; argv: string[]; expected: RegExp }[] = [
    {
      name: 'refuses a concurrency above 256',
      argv: ['--concurrency', '257'],
      expected: /--concurrency: "257"/,
    },
    {
      name: 'refuses a fractional concurrency',
      argv: ['--concurrency', '1.5'],
      expected: /--concurrency: "1.5"/,
    },
    {
      name: 'refuses a lease shorter than 1s',
      argv: ['--lease-duration', '500ms'],
      expected: /--lease-duration: "500ms"/,
    },
    {
      name: 'refuses a retry period shorter than 100ms',
      argv: ['--retry-period', '50ms'],
      expected: /--retry-period: "50ms"/,
    },
    {
      name: 'refuses a renew deadline not shorter than the lease',
      argv: ['--lease-duration', '10s', '--renew-deadline', '10s'],
      expected: /--renew-deadline must be shorter than --lease-duration/,
    },
    {
      name: 'refuses a retry period not shorter than the renew deadline',
      argv: ['--renew-deadline', '5s', '--retry-period', '5s'],
      expected: /--retry-period must be shorter than --renew-deadline/,
    },
    {
      name: 'refuses a health address with a non-numeric port',
      argv: ['--health-addr', ':http'],
      expected: /--health-addr: ":http" is not host:port/,
    },
  ];
  for (const { name, argv, expected } of single) {
    it(name, () => {
      const problems = problemsOf(() => parseConfig(argv, NS, noFile));
      assert.equal(problems.length, 1, `expected one problem, got:\n${problems.join('\n')}`);
      assert.match(problems[0]!, expected);
    });
  }

  it('refuses an unknown flag', () => {
    assert.throws(() => parseConfig(['--bucket', 'x'], NS, noFile), /--bucket/);
  });

  it('returns a frozen configuration, leader election included', () => {
    const config = parseConfig([], NS, noFile);
    assert.ok(Object.isFrozen(config), 'expected the configuration to be frozen');
    assert.ok(Object.isFrozen(config.leaderElection), 'expected leaderElection to be frozen');
    assert.throws(() => {
      (config as Config).concurrency = 99;
    }, TypeError);
  });
});
