// A node namespace programmed by the real `render` command: the Topology's node1 with two pods
// (pod-a, pod-b), the objects written to a file, `kube-proxy-ts render` run on it, and its payload
// restored into the node's netfilter (nft). For kernel tests that send real packets through
// exactly what `render` prints. Dual-stack: every namespace gets IPv6 too, and each family's
// payload (`render --ip-family`) goes into its own tables (iptables, ip6tables).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ExecNetfilter, ipv6Binaries, nftBinaries } from '../../src/netfilter/exec.js';
import type { IPFamily } from '../../src/ip.js';
import { exec } from './exec.js';
import { CLUSTER_CIDR, CLUSTER_CIDR6, Topology, type NodeHandle, type PodHandle } from './topology.js';

export interface RenderedNode {
  readonly topology: Topology;
  readonly node: NodeHandle;
  readonly pods: readonly PodHandle[];
  /** The objects file `render` read (it stays until `destroy`). */
  readonly objectsFile: string;
  /** The IPv4 payload. */
  readonly payload: string;
  /** Each family's payload (IPv6 only on a dual-stack node). */
  readonly payloads: Readonly<Partial<Record<IPFamily, string>>>;
  destroy(): Promise<void>;
}

/** Builds the node; throws (after cleaning up) when `render` or the restore fails. */
export async function renderedNode(
  objects: (node: NodeHandle, pods: readonly PodHandle[]) => readonly unknown[],
  options: { readonly dualStack?: boolean } = {},
): Promise<RenderedNode> {
  const dualStack = options.dualStack ?? false;
  const topology = await Topology.create(['node1'], { dualStack });
  let directory: string | undefined;
  const destroy = async (): Promise<void> => {
    await topology.destroy();
    if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  };
  try {
    const node = topology.node('node1');
    const pods = [await topology.addPod(node, 'pod-a'), await topology.addPod(node, 'pod-b')];
    directory = await mkdtemp(join(tmpdir(), 'kpt-render-'));
    const objectsFile = join(directory, 'objects.yaml');
    await writeFile(objectsFile, objects(node, pods).map((object) => stringify(object)).join('---\n'));
    const families: readonly IPFamily[] = dualStack ? ['IPv4', 'IPv6'] : ['IPv4'];
    const nodeFlags = dualStack
      ? ['--node-ip', `${node.ip},${node.ip6 ?? ''}`, '--cluster-cidr', `${CLUSTER_CIDR},${CLUSTER_CIDR6}`]
      : ['--node-ip', node.ip, '--cluster-cidr', CLUSTER_CIDR];
    const payloads: Partial<Record<IPFamily, string>> = {};
    for (const family of families) {
      const rendered = await exec(
        'npx',
        ['tsx', 'src/cli.ts', 'render', '--objects', objectsFile, '--node-name', node.name, ...nodeFlags, ...(dualStack ? ['--ip-family', family] : [])],
        { timeoutMs: 60_000 },
      );
      if (rendered.code !== 0 || !rendered.stdout.startsWith('*filter\n')) throw new Error(`render ${family} failed (${rendered.code}): ${rendered.stderr}`);
      const binaries = family === 'IPv4' ? nftBinaries : ipv6Binaries(nftBinaries);
      const netfilter = new ExecNetfilter({ binaries, prefix: ['ip', 'netns', 'exec', node.netns] });
      const restored = await netfilter.restore(rendered.stdout, { noFlush: true });
      if (!restored.ok) throw new Error(`${family} restore failed: ${restored.message}\n${rendered.stdout}`);
      payloads[family] = rendered.stdout;
    }
    return { topology, node, pods, objectsFile, payload: payloads.IPv4 ?? '', payloads, destroy };
  } catch (error: unknown) {
    await destroy();
    throw error;
  }
}
