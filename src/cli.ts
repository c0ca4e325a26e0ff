#!/usr/bin/env node
// Entry point: dispatches to the `render`, `run`, `trace` and `cleanup` commands.

const usage = `kube-proxy-ts: a Kubernetes node agent that replaces kube-proxy (iptables mode)

Usage:
  kube-proxy-ts run [--config FILE] [--kubeconfig FILE] [--hostname-override NAME] [flags]
      Watch Services, EndpointSlices and this Node; program this node's netfilter rules.
  kube-proxy-ts render --objects FILE [--objects FILE...] --node-name NAME --node-ip IP [--cluster-cidr CIDR]
      Print the complete iptables-restore payload for a fresh node.
  kube-proxy-ts trace --source IP --destination IP:PORT [--protocol tcp|udp|sctp] [--from pod|node|outside]
                      [--objects FILE... --node-name NAME --node-ip IP] [-o text|json]
      Explain where a new connection goes on this node (rules, Service, endpoints, masquerade, verdict).
  kube-proxy-ts cleanup [--iptables-backend auto|nft|legacy]
      Remove every chain and jump kube-proxy-ts (or kube-proxy) owns, then exit.
  kube-proxy-ts version

Run a command with --help for its flags.
`;

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'render': {
      // Each command loads only what it needs: `run` starts faster without render's YAML input path.
      const { renderCommand } = await import('./cli/render-command.js');
      return renderCommand(rest);
    }
    case 'run': {
      const { runCommand } = await import('./cli/run-command.js');
      return runCommand(rest);
    }
    case 'trace': {
      const { traceCommand } = await import('./cli/trace-command.js');
      return traceCommand(rest);
    }
    case 'cleanup': {
      const { cleanupCommand } = await import('./cli/cleanup-command.js');
      return cleanupCommand(rest);
    }
    case 'version':
    case '--version': {
      const { version } = await import('./version.js');
      process.stdout.write(`kube-proxy-ts ${version}\n`);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`kube-proxy-ts: unknown command "${command}"\n\n${usage}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`kube-proxy-ts: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
