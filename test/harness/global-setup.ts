// vitest globalSetup of the 'integration' project: one control plane (etcd + kube-apiserver) for
// every integration and e2e file. Tests read its admin kubeconfig with `inject('kubeconfigPath')`
// (or process.env.KUBE_PROXY_TS_KUBECONFIG); a test that restarts the apiserver starts its own
// with startControlPlane() instead of disturbing this one.
// The empty import makes 'vitest' resolvable for the ProvidedContext augmentation below.
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { startControlPlane } from './control-plane.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin kubeconfig of the shared test control plane. */
    kubeconfigPath: string;
    /** `https://127.0.0.1:<port>` of its apiserver. */
    apiserverURL: string;
    /** Its `--service-cluster-ip-range`. */
    serviceClusterIPRange: string;
    /** Its data directory (pki/ holds the CA, for tests that issue client certificates). */
    controlPlaneDir: string;
  }
}

export const kubeconfigEnvVar = 'KUBE_PROXY_TS_KUBECONFIG';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const controlPlane = await startControlPlane();
  const { certsMs, etcdMs, apiserverMs, totalMs } = controlPlane.startup;
  process.stderr.write(
    `control plane: ${controlPlane.server} ready in ${totalMs} ms ` +
      `(certs ${certsMs}, etcd ${etcdMs}, apiserver ${apiserverMs}); logs in ${controlPlane.dataDir}\n`,
  );
  project.provide('kubeconfigPath', controlPlane.kubeconfigPath);
  project.provide('apiserverURL', controlPlane.server);
  project.provide('serviceClusterIPRange', controlPlane.serviceClusterIPRange);
  project.provide('controlPlaneDir', controlPlane.dataDir);
  process.env[kubeconfigEnvVar] = controlPlane.kubeconfigPath;
  return async () => {
    delete process.env[kubeconfigEnvVar];
    await controlPlane.stop();
  };
}
