// `kube-proxy-ts run`: parse config, connect to the apiserver, pick the mode's backend, run the
// agent until SIGTERM/SIGINT. Rules stay in place on exit, so traffic flows across restarts.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Agent } from '../agent/agent.js';
import { parseRunArgs } from '../config/index.js';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { createLogger } from '../log.js';
import { Conntrack } from '../conntrack/tool.js';
import { NfAcct } from '../netfilter/nfacct.js';
import { ExecNetfilter, ipv6Binaries } from '../netfilter/exec.js';
import { familyOf, type IPFamily } from '../ip.js';
import { runProcess } from '../process.js';
import { checkIptables } from '../netfilter/preflight.js';
import { Sysctl, type SysctlAccess } from '../netfilter/sysctl.js';
import { prepareLocalhostNodePorts } from '../agent/localhost-node-ports.js';
import type { AgentConfig } from '../config/index.js';
import type { Logger } from 'pino';
import { DEFAULT_CHAINS_PER_PART } from '../sync/full-parts.js';
import { version } from '../version.js';
import { resolveIptablesVariant } from './iptables-variant-setup.js';
import { iptablesBackend } from '../sync/iptables-proxier.js';
import { messageOf } from '../values.js';
import type { ProxierFactory } from '../agent/proxier.js';
import { Nft } from '../nftables/nft.js';
import { nftablesBackend } from '../nftables/nftables-proxier.js';
import { nftFamily } from '../nftables/vocabulary.js';
import { removeIptablesRulesOfFamilies, removeNftablesTables } from './mode-cleanup.js';

export async function runCommand(argv: readonly string[]): Promise<number> {
  const parsed = parseRunArgs(argv, process.env, (path) => readFileSync(path, 'utf8'), hostname());
  if (parsed.kind === 'help') {
    process.stdout.write(parsed.text);
    return 0;
  }
  if (parsed.kind === 'invalid') {
    for (const error of parsed.errors) process.stderr.write(`kube-proxy-ts run: ${error.message}\n`);
    return 1;
  }
  const { config } = parsed;
  const logger = createLogger({ level: config.logLevel });
  for (const warning of parsed.warnings) logger.warn({ component: 'config' }, warning);
  if (parsed.initOnly) return initOnly(config, new Sysctl(), logger);

  const kube = loadKubeConfig(config.kubeconfig !== undefined ? { kubeconfigPath: config.kubeconfig } : {});
  if (!kube.ok) {
    logger.fatal({ reason: kube.reason, detail: kube.detail }, 'no usable kubeconfig');
    process.stderr.write(`kube-proxy-ts run: no usable kubeconfig: ${kube.detail}\n`);
    return 1;
  }
  const backend = await chooseBackend(config, logger);
  if (backend === undefined) return 1;
  logger.info(
    { version, nodeName: config.nodeName, server: kube.connection.server, kubeconfigSource: kube.source, context: kube.context, auth: kube.auth, mode: config.mode, ...backend.fields },
    'starting kube-proxy-ts',
  );
  const agent = new Agent({
    config,
    connection: kube.connection,
    families: primaryFirst(backend.families, config.nodeIPs),
    backend: backend.factory,
    conntrack: new Conntrack(),
    // Localhost NodePorts (route_localnet) and nfacct counters belong to the iptables rules only:
    // upstream's nftables mode has neither.
    ...(config.mode === 'iptables' ? { nfacct: new NfAcct(), sysctl: new Sysctl() } : {}),
    logger,
  });

  let stopping = false;
  const stopped = new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping; rules stay in place');
      agent.stop().then(
        () => resolve(0),
        (error: unknown) => {
          logger.error({ error: String(error) }, 'error while stopping');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  try {
    await agent.start();
  } catch (error: unknown) {
    if (!stopping) {
      logger.fatal({ error: messageOf(error) }, 'agent failed to start');
      await agent.stop().catch(() => undefined);
      return 1;
    }
  }
  agent.ready.then(
    () => logger.info({ metricsPort: agent.metricsPort, healthPort: agent.healthPort }, 'ready: first sync applied'),
    () => undefined,
  );
  return stopped;
}

/** kube-proxy's primary family is its node IP's: a configured IPv6 node IP puts IPv6 first. */
export function primaryFirst(families: readonly IPFamily[], nodeIPs: readonly string[]): IPFamily[] {
  const first = nodeIPs[0] === undefined ? undefined : familyOf(nodeIPs[0]);
  return [...families].sort((a, b) => Number(b === first) - Number(a === first));
}

/**
 * `run --init-only`, kube-proxy's flag: what needs privilege, then exit (no apiserver). Here that is
 * net.ipv4.conf.all.route_localnet=1 when localhost NodePorts are wanted; the DaemonSet runs it in a
 * privileged init container so the agent itself can stay unprivileged. Exit 1 when the setting is
 * wanted and cannot be made, as kube-proxy's.
 */
export async function initOnly(config: AgentConfig, sysctl: SysctlAccess, logger: Logger): Promise<number> {
  const localhost = await prepareLocalhostNodePorts(config, sysctl);
  if (localhost.off === 'route_localnet') {
    logger.error(
      { component: 'init-only', ...localhost.fields },
      'cannot set net.ipv4.conf.all.route_localnet=1 for localhost NodePorts: /proc/sys is writable only in a privileged ' +
        'container (securityContext.privileged: true) or as root on the node; or turn them off with iptables.localhostNodePorts: false',
    );
    return 1;
  }
  logger[localhost.level]({ component: 'init-only', ...localhost.fields }, localhost.message);
  logger.info({ component: 'init-only' }, 'initialisation done; exiting (--init-only)');
  return 0;
}

interface ChosenBackend {
  readonly factory: ProxierFactory;
  /** The families this node can program (as kube-proxy: dual-stack wherever both work). */
  readonly families: readonly IPFamily[];
  readonly fields: Readonly<Record<string, string>>;
}

/**
 * The configured mode's backend, after removing the other mode's rules (both families) as
 * kube-proxy does at start (a failure there is logged, not fatal). nftables mode refuses to start
 * when the nft binary is missing, too old or rejects the rules it needs, iptables mode when
 * iptables does not work (undefined; the reason is logged). Either runs the IPv6 lane too when
 * that family can be programmed here (nft's ip6 family, or ip6tables).
 */
async function chooseBackend(config: AgentConfig, logger: Logger): Promise<ChosenBackend | undefined> {
  const variant = await resolveIptablesVariant(config.iptablesBackend);
  const netfilter = new ExecNetfilter({ binaries: variant.binaries });
  const ipv6Netfilter = new ExecNetfilter({ binaries: ipv6Binaries(variant.binaries) });
  const nft = new Nft();
  if (config.mode === 'nftables') {
    const support = await nft.support(nftFamily('IPv4'));
    if (!support.ok) {
      logger.fatal({ nftVersion: support.version, reason: support.reason }, 'nftables mode cannot run on this host');
      process.stderr.write(`kube-proxy-ts run: nftables mode cannot run on this host: ${support.reason}\n`);
      return undefined;
    }
    const ipv6 = await nft.support(nftFamily('IPv6'));
    if (!ipv6.ok) logger.warn({ reason: ipv6.reason }, 'nft cannot program the ip6 family here: IPv6 Services are not proxied (single-stack IPv4)');
    for (const { family, outcome } of await removeIptablesRulesOfFamilies({ IPv4: netfilter, IPv6: ipv6Netfilter })) {
      if (!outcome.ok) logger.warn({ family, reason: outcome.message, iptablesBackend: variant.backend }, "could not remove the iptables mode's rules");
      else if (outcome.removed > 0) logger.info({ family, chains: outcome.removed, iptablesBackend: variant.backend }, "removed the iptables mode's rules");
    }
    return { factory: nftablesBackend({ nft }), families: ipv6.ok ? ['IPv4', 'IPv6'] : ['IPv4'], fields: { nftVersion: support.version } };
  }
  // As kube-proxy: without a working iptables there is nothing to do; say why and exit.
  const preflight = await checkIptables(variant.binaries, runProcess);
  if (!preflight.ok) {
    logger.fatal({ backend: variant.backend, reason: preflight.message }, 'iptables does not work on this node; not starting');
    process.stderr.write(`kube-proxy-ts run: iptables (${variant.backend} backend) does not work on this node: ${preflight.message}\n`);
    return undefined;
  }
  // As kube-proxy: dual-stack wherever both families can be programmed (ip6tables answers).
  const ipv6 = await ipv6Netfilter.save('nat');
  if (!ipv6.ok) logger.warn({ reason: ipv6.message }, 'ip6tables does not work here: IPv6 Services are not proxied (single-stack IPv4)');
  // Only when nft works here: a host without it has no nftables-mode table to remove.
  if ((await nft.support(nftFamily('IPv4'))).ok) {
    const removed = await removeNftablesTables(nft);
    if (!removed.ok) logger.warn({ reason: removed.message }, "could not remove the nftables mode's tables");
    else if (removed.removed > 0) logger.info({ tables: removed.removed }, "removed the nftables mode's tables");
  }
  return {
    factory: iptablesBackend({
      netfilter,
      ipv6Netfilter,
      // iptables-nft-restore slows down with the square of one call's size; legacy reads and rewrites
      // the whole table on every call, so there one call is cheapest (bench/compare: at 10k Services
      // x 10 endpoints 7 calls took 15.4 s, kube-proxy's one call 12.9 s).
      ...(variant.backend === 'nft' ? { fullSyncChainsPerPart: DEFAULT_CHAINS_PER_PART } : {}),
    }),
    families: ipv6.ok ? ['IPv4', 'IPv6'] : ['IPv4'],
    fields: { backend: variant.backend, backendReason: variant.reason },
  };
}
