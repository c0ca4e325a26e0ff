// Fault: another process holds the xtables lock for 30 s (iptables-legacy takes it for every
// change; iptables-nft does not use it, so the agent runs the legacy backend here). The lock is a
// file, /run/xtables.lock, not a per-network-namespace object: holding the host's would stall every
// other user of iptables-legacy on this machine. So the agent runs in a mount namespace of its own
// where /run/xtables.lock is a bind mount of a file this test owns, and the test holds that file's
// lock with `flock`. The test first proves the setup honest: an iptables-legacy-restore set up like
// the agent's reports the lock as held. Prints how many restores the agent attempted during the 30 s
// and how long after the release a Service created during the hold was programmed.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentProcess, metricSum, waitFor } from '../../harness/agent-process.js';
import { exec } from '../../harness/exec.js';
import { createNetns, kernelSkipReason, type Netns } from '../../harness/netns.js';
import { serviceChainNames } from '../../harness/agent-in-process.js';
import { createEndpointSlice, createNamespace, createNode, createService, deleteNamespace, deleteNode, kubeClients, uniqueName, type KubeClients } from '../../harness/kube.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/faults/xtables-lock.test.ts: ${skipReason}`);

const HOLD_MS = 30_000;
const SYNC_PERIOD_S = 10;

describe.skipIf(skipReason !== undefined)('fault: the xtables lock held by another process for 30 s', () => {
  let clients: KubeClients;
  let netns: Netns;
  let agent: AgentProcess | undefined;
  let holder: ChildProcess | undefined;
  let namespace: string | undefined;
  const nodeName = uniqueName('lock-node');
  const dir = mkdtempSync(join(tmpdir(), 'kpt-xtables-'));
  const lock = join(dir, 'xtables.lock');
  // The agent's mount namespace: /run/xtables.lock is this test's file; `ip netns exec` follows.
  const wrap = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `mount --bind ${lock} /run/xtables.lock && exec "$@"`, 'sh'];

  beforeAll(async () => {
    writeFileSync(lock, '');
    clients = kubeClients(inject('kubeconfigPath'));
    netns = await createNetns('lock');
    await exec('ip', ['-n', netns.name, 'link', 'set', 'lo', 'up']);
    await createNode(clients.core, { name: nodeName, internalIP: '192.0.2.10' });
    agent = await AgentProcess.start({
      netns: netns.name, nodeName, kubeconfigPath: inject('kubeconfigPath'), wrap,
      extraArgs: ['--iptables-backend', 'legacy', '--sync-period', `${SYNC_PERIOD_S}s`],
    }, inject('apiserverURL'));
  });

  afterAll(async () => {
    holder?.kill('SIGKILL');
    await agent?.stop();
    await netns?.delete();
    if (namespace !== undefined) await deleteNamespace(clients, namespace);
    await deleteNode(clients.core, nodeName);
    rmSync(dir, { recursive: true, force: true });
  });

  const natChains = async (): Promise<string> => (await netns.exec('iptables-legacy-save', ['-t', 'nat'])).stdout;

  it('keeps the rules, waits without spinning, and programs what changed meanwhile once the lock is free', async () => {
    const ns = await createNamespace(clients.core);
    namespace = ns;
    const http = [{ name: 'http', port: 80, targetPort: 8080 }];
    await createService(clients.core, { namespace: ns, name: 'before', ports: http });
    await createEndpointSlice(clients.discovery, { namespace: ns, serviceName: 'before', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.1.1' }] });
    const before = serviceChainNames(ns, 'before', 'http').cluster;
    await waitFor(async () => (await natChains()).includes(`:${before} `), 30_000, 'the first Service is programmed');

    const failuresBefore = metricSum(await agent!.metrics(), 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total');
    holder = spawn('flock', [lock, 'sleep', String(HOLD_MS / 1000)], { stdio: 'ignore' });
    const heldAt = Date.now();
    const released = new Promise<number>((resolve) => holder?.once('exit', () => resolve(Date.now())));
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Honest: a restore in a mount namespace set up as the agent's sees the lock as held...
    const probe = await exec(wrap[0] ?? 'unshare', [...wrap.slice(1), 'ip', 'netns', 'exec', netns.name, 'iptables-legacy-restore', '--noflush', '--wait=1'], { input: '*nat\nCOMMIT\n' });
    expect(probe.code, probe.stderr).toBe(4);
    expect(probe.stderr).toContain('Another app is currently holding the xtables lock');
    // ...while the host's lock is free (other users of this machine are not stalled).
    expect((await exec('flock', ['-n', '/run/xtables.lock', 'true'])).code).toBe(0);

    await createService(clients.core, { namespace: ns, name: 'during', ports: http });
    await createEndpointSlice(clients.discovery, { namespace: ns, serviceName: 'during', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.1.2' }] });
    const during = serviceChainNames(ns, 'during', 'http').cluster;
    await new Promise((resolve) => setTimeout(resolve, HOLD_MS - 2000 - (Date.now() - heldAt)));
    const whileHeld = await natChains();
    expect(whileHeld.includes(`:${during} `), 'programmed although the lock was held').toBe(false);
    expect(whileHeld.includes(`:${before} `), 'the rules stay while the lock is held').toBe(true);

    const releasedAt = await released;
    const attempts = metricSum(await agent!.metrics(), 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total') - failuresBefore;
    await waitFor(async () => (await natChains()).includes(`:${during} `), 3 * SYNC_PERIOD_S * 1000, 'the Service created during the hold is programmed');
    const convergedMs = Date.now() - releasedAt;
    console.log(
      `xtables lock held ${HOLD_MS / 1000} s by flock (legacy backend, --wait=5, syncPeriod ${SYNC_PERIOD_S} s):\n` +
        `  restores that failed on the lock meanwhile: ${attempts}\n` +
        `  the Service created during the hold was programmed ${convergedMs} ms after the release`,
    );
    expect(attempts).toBeGreaterThan(0);
    // Each attempt waits 5 s for the lock, then the retry delay grows (1, 2, 4 s...): never a restore right after another.
    expect(attempts).toBeLessThanOrEqual(5);
  });
});
