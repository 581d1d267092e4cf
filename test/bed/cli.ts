/**
 * npm run testbed -- up [--dir DIR] [--issuer s3|gcs|azure] [--azure] [--node]
 *                                                       start a bed that outlives this command
 *                                                       (--azure, or --issuer azure, adds Azurite;
 *                                                       --node adds a real node, with the project's
 *                                                       image built from the Dockerfile in its containerd)
 * npm run testbed -- down [--dir DIR]                   stop it and remove its files
 * npm run testbed -- build [--node]                     build the pinned servers into the cache
 *                                                       (--node: the node's servers, the AWS pod identity
 *                                                       webhook and the image too)
 *
 * npm run testbed -- clean-node [--dir DIR]             remove what a killed bed's node left (processes,
 *                                                       bridge, iptables chains, cgroups, mounts under DIR)
 *
 * `up` writes DIR/bed.env (KUBECONFIG, endpoints, credentials) and DIR/bed.json.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Bed } from './bed.ts';
import { buildProjectImage, ensureNodePackages } from './container-image.ts';
import { cleanNode } from './node.ts';
import { ensureTools } from './tools.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    dir: { type: 'string', default: join(import.meta.dirname, '..', '..', '.bed', 'default') },
    issuer: { type: 'string', default: 's3' },
    azure: { type: 'boolean', default: false },
    node: { type: 'boolean', default: false },
  },
});
const dir = resolve(values.dir);
const command = positionals[0];

async function main(): Promise<number> {
  switch (command) {
    case 'build': {
      ensureTools([
        'kube',
        'etcd',
        'minio',
        'fake-gcs-server',
        'helm',
        ...(values.node ? (['node', 'pod-identity-webhook'] as const) : []),
      ]);
      if (values.node) {
        ensureNodePackages();
        const image = await buildProjectImage(join(dir, '..', 'image-build'));
        console.log(`image ${image.ref}${image.cached ? ' (cached)' : ''}: ${image.tarball}`);
      }
      return 0;
    }
    case 'up': {
      if (existsSync(join(dir, 'bed.json'))) {
        console.error(`a bed already runs in ${dir}; run 'npm run testbed -- down' first`);
        return 1;
      }
      if (values.issuer !== 's3' && values.issuer !== 'gcs' && values.issuer !== 'azure') {
        console.error('--issuer must be s3, gcs or azure');
        return 2;
      }
      const started = Date.now();
      const bed = await Bed.start({
        dir,
        persistent: true,
        issuer: values.issuer,
        azure: values.azure || values.issuer === 'azure',
        node: values.node,
      });
      if (bed.node) {
        try {
          const image = await buildProjectImage(join(dir, 'image-build'));
          await bed.node.importImage(image.tarball);
          console.log(`  image:      ${image.ref} (in the node's containerd; imagePullPolicy: Never)`);
        } catch (err) {
          await bed.stop();
          throw err;
        }
      }
      console.log(`bed up in ${((Date.now() - started) / 1000).toFixed(1)}s`);
      console.log(`  env file:   ${join(dir, 'bed.env')}   (set -a; . ${join(dir, 'bed.env')}; set +a)`);
      console.log(`  apiserver:  ${bed.apiserverURL}`);
      console.log(`  issuer:     ${bed.issuer}`);
      console.log(`  kubectl:    KUBECONFIG=${bed.adminKubeconfig} ${bed.state.kubectl}`);
      return 0;
    }
    case 'down': {
      if (!existsSync(join(dir, 'bed.json'))) {
        console.error(`no bed in ${dir}`);
        return 1;
      }
      await Bed.attach(join(dir, 'bed.json')).stop();
      console.log(`bed in ${dir} stopped and removed`);
      return 0;
    }
    case 'clean-node':
      await cleanNode(dir);
      console.log('node leftovers removed');
      return 0;
    default:
      console.error(
        'usage: npm run testbed -- up|down|build|clean-node [--dir DIR] [--issuer s3|gcs|azure] [--azure] [--node]',
      );
      return 2;
  }
}

process.exitCode = await main();
