// A node namespace programmed by the real `render` command: the Topology's node1 with two pods
// (pod-a, pod-b), the objects written to a file, `kube-proxy-ts render` run on it, and its payload
// restored into the node's netfilter (nft). For kernel tests that send real packets through
// exactly what `render` prints.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ExecNetfilter, nftBinaries } from '../../src/netfilter/exec.js';
import { exec } from './exec.js';
import { CLUSTER_CIDR, Topology, type NodeHandle, type PodHandle } from './topology.js';

export interface RenderedNode {
  readonly topology: Topology;
  readonly node: NodeHandle;
  readonly pods: readonly PodHandle[];
  /** The objects file `render` read (it stays until `destroy`). */
  readonly objectsFile: string;
  readonly payload: string;
  destroy(): Promise<void>;
}

/** Builds the node; throws (after cleaning up) when `render` or the restore fails. */
export async function renderedNode(objects: (node: NodeHandle, pods: readonly PodHandle[]) => readonly unknown[]): Promise<RenderedNode> {
  const topology = await Topology.create(['node1']);
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
    const rendered = await exec(
      'npx',
      ['tsx', 'src/cli.ts', 'render', '--objects', objectsFile, '--node-name', node.name, '--node-ip', node.ip, '--cluster-cidr', CLUSTER_CIDR],
      { timeoutMs: 60_000 },
    );
    if (rendered.code !== 0 || !rendered.stdout.startsWith('*filter\n')) throw new Error(`render failed (${rendered.code}): ${rendered.stderr}`);
    const netfilter = new ExecNetfilter({ binaries: nftBinaries, prefix: ['ip', 'netns', 'exec', node.netns] });
    const restored = await netfilter.restore(rendered.stdout, { noFlush: true });
    if (!restored.ok) throw new Error(`restore failed: ${restored.message}\n${rendered.stdout}`);
    return { topology, node, pods, objectsFile, payload: rendered.stdout, destroy };
  } catch (error: unknown) {
    await destroy();
    throw error;
  }
}
