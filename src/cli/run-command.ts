// `kube-proxy-ts run`: parse config, connect to the apiserver, pick the iptables backend, run the
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
  const backend = await resolveIptablesVariant(config.iptablesBackend);
  logger.info(
    { version, nodeName: config.nodeName, server: kube.connection.server, kubeconfigSource: kube.source, context: kube.context, auth: kube.auth, backend: backend.backend, backendReason: backend.reason },
    'starting kube-proxy-ts',
  );
  // As kube-proxy: without a working iptables there is nothing to do; say why and exit.
  const preflight = await checkIptables(backend.binaries, runProcess);
  if (!preflight.ok) {
    logger.fatal({ backend: backend.backend, reason: preflight.message }, 'iptables does not work on this node; not starting');
    process.stderr.write(`kube-proxy-ts run: iptables (${backend.backend} backend) does not work on this node: ${preflight.message}\n`);
    return 1;
  }
  // As kube-proxy: dual-stack wherever both families can be programmed (ip6tables answers).
  const ipv6Netfilter = new ExecNetfilter({ binaries: ipv6Binaries(backend.binaries) });
  const ipv6 = await ipv6Netfilter.save('nat');
  const families: IPFamily[] = ipv6.ok ? ['IPv4', 'IPv6'] : ['IPv4'];
  if (!ipv6.ok) logger.warn({ reason: ipv6.message }, 'ip6tables does not work here: IPv6 Services are not proxied (single-stack IPv4)');
  const agent = new Agent({
    config,
    connection: kube.connection,
    families: primaryFirst(families, config.nodeIPs),
    backend: iptablesBackend({
      netfilter: new ExecNetfilter({ binaries: backend.binaries }),
      ipv6Netfilter,
      // iptables-nft-restore slows down with the square of one call's size; legacy reads and rewrites
      // the whole table on every call, so there one call is cheapest (bench/compare: at 10k Services
      // x 10 endpoints 7 calls took 15.4 s, kube-proxy's one call 12.9 s).
      ...(backend.backend === 'nft' ? { fullSyncChainsPerPart: DEFAULT_CHAINS_PER_PART } : {}),
    }),
    conntrack: new Conntrack(),
    nfacct: new NfAcct(),
    sysctl: new Sysctl(),
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
