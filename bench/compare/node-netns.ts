// A fresh "node" for one proxy under test: its own network namespace joined to the host by a veth
// pair (node IP 10.251.0.2, host side 10.251.0.1, where the apiserver also listens), and a PATH
// directory of iptables wrappers. The wrappers pin the iptables backend for both proxies and record
// every iptables-restore call and every `nft -f` transaction: start and end time (bash $EPOCHREALTIME), exit code, and its input
// (tee'd to a file), then run the real binary.

import { chmodSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNetns, type Netns } from '../../test/harness/netns.js';
import { run } from '../../test/harness/exec.js';

export type Backend = 'nft' | 'legacy';
/** Which of kube-proxy's modes both proxies run in (`--proxy-mode`). */
export type ProxyMode = 'iptables' | 'nftables';

export const NODE_IP = '10.251.0.2';
export const HOST_IP = '10.251.0.1';
const PREFIX_LENGTH = 30;

export interface BenchNode {
  readonly netns: Netns;
  readonly nodeIP: string;
  readonly hostIP: string;
  /** Put first in the proxy's PATH. */
  readonly wrapperDir: string;
  /** Where the wrappers write `calls.log` and one `<id>.in` file per call. */
  readonly captureDir: string;
  delete(): Promise<void>;
}

/** The restore binaries a proxy may call, mapped to the real one for `backend`. */
function restoreTargets(backend: Backend): ReadonlyMap<string, string> {
  return new Map([
    ['iptables-restore', `/usr/sbin/iptables-${backend}-restore`],
    ['ip6tables-restore', `/usr/sbin/ip6tables-${backend}-restore`],
    ['iptables-nft-restore', '/usr/sbin/iptables-nft-restore'],
    ['ip6tables-nft-restore', '/usr/sbin/ip6tables-nft-restore'],
    ['iptables-legacy-restore', '/usr/sbin/iptables-legacy-restore'],
    ['ip6tables-legacy-restore', '/usr/sbin/ip6tables-legacy-restore'],
  ]);
}

/** A wrapper that records the call (times, exit code, input) after `gate`, shell lines that may `exec` the real binary unrecorded. */
function wrapperScript(name: string, real: string, captureDir: string, gate = ''): string {
  return `#!/bin/bash
# kube-proxy-ts bench: records this ${name} call, then runs ${real}.
${gate}start=$EPOCHREALTIME
id="\${start/./}-$$"
tee ${captureDir}/"$id.in" | ${real} "$@"
rc=\${PIPESTATUS[1]}
end=$EPOCHREALTIME
echo "$id $start $end $rc ${name}" >> ${captureDir}/calls.log
exit $rc
`;
}

/**
 * The nftables mode's door: `nft -f` transactions are recorded like restores (the same calls.log
 * line, binary `nft`); listings, `--check` runs and the version probe go straight to the binary.
 */
function nftWrapperScript(real: string, captureDir: string): string {
  const gate = `record=0
for arg in "$@"; do
  case "$arg" in -f|--file) record=1 ;; -c|--check) exec ${real} "$@" ;; esac
done
[ "$record" = 1 ] || exec ${real} "$@"
`;
  return wrapperScript('nft', real, captureDir, gate);
}

export async function createBenchNode(label: string, backend: Backend, workDir: string): Promise<BenchNode> {
  const netns = await createNetns(label);
  const wrapperDir = join(workDir, `${label}-bin`);
  const captureDir = join(workDir, `${label}-capture`);
  try {
    // Fresh for every run: a later scale reuses the label.
    rmSync(wrapperDir, { recursive: true, force: true });
    rmSync(captureDir, { recursive: true, force: true });
    mkdirSync(wrapperDir, { recursive: true });
    mkdirSync(captureDir, { recursive: true });
    writeFileSync(join(captureDir, 'calls.log'), '');
    for (const [name, real] of restoreTargets(backend)) {
      const path = join(wrapperDir, name);
      writeFileSync(path, wrapperScript(name, real, captureDir));
      chmodSync(path, 0o755);
    }
    writeFileSync(join(wrapperDir, 'nft'), nftWrapperScript('/usr/sbin/nft', captureDir));
    chmodSync(join(wrapperDir, 'nft'), 0o755);
    // The unsuffixed names that kube-proxy runs pick the backend (as iptables-wrappers does in its image).
    for (const family of ['iptables', 'ip6tables']) {
      symlinkSync(`/usr/sbin/${family}-${backend}`, join(wrapperDir, family));
      symlinkSync(`/usr/sbin/${family}-${backend}-save`, join(wrapperDir, `${family}-save`));
    }

    const hostVeth = `kptb${process.pid % 100000}`;
    await run('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns.name]);
    await run('ip', ['addr', 'add', `${HOST_IP}/${PREFIX_LENGTH}`, 'dev', hostVeth]);
    await run('ip', ['link', 'set', hostVeth, 'up']);
    await run('ip', ['-n', netns.name, 'addr', 'add', `${NODE_IP}/${PREFIX_LENGTH}`, 'dev', 'eth0']);
    await run('ip', ['-n', netns.name, 'link', 'set', 'eth0', 'up']);
    await run('ip', ['-n', netns.name, 'link', 'set', 'lo', 'up']);
  } catch (error: unknown) {
    await netns.delete();
    throw error;
  }
  return {
    netns,
    nodeIP: NODE_IP,
    hostIP: HOST_IP,
    wrapperDir,
    captureDir,
    // The host end of the veth goes with its peer.
    delete: () => netns.delete(),
  };
}
