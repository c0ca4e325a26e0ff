// The kubeconfig the proxies under test read: the control plane's admin one, pointed at the host
// end of the bench node's veth (the apiserver listens on all addresses there).

import { readFileSync, writeFileSync } from 'node:fs';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { ControlPlane } from '../../test/harness/control-plane.js';
import { HOST_IP } from './node-netns.js';

/** The admin kubeconfig, pointed at the host end of the node's veth (the apiserver listens on all addresses). */
export function proxyKubeconfig(controlPlane: ControlPlane, path: string): void {
  const config = parseYaml(readFileSync(controlPlane.kubeconfigPath, 'utf8')) as {
    clusters: { cluster: Record<string, string> }[];
  };
  const port = new URL(controlPlane.server).port;
  for (const entry of config.clusters) {
    entry.cluster['server'] = `https://${HOST_IP}:${port}`;
    // The serving certificate names localhost, not the veth address.
    entry.cluster['tls-server-name'] = 'localhost';
  }
  writeFileSync(path, toYaml(config));
}
