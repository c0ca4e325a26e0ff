import { describe, expect, it } from 'vitest';
import { renderCommand, type CommandIO } from '../../../src/cli/render-command.js';
import { COMMANDS, FIELDS, parseRunArgs, readCommandLine, type ConfigResult } from '../../../src/config/index.js';

// One flag grammar for every command (config/commands.ts): the same names (upstream kube-proxy's,
// with the aliases `render` used), and the same checks as the config file.

const objects = [
  'apiVersion: v1',
  'kind: Service',
  'metadata: { namespace: default, name: web }',
  'spec:',
  '  type: NodePort',
  '  clusterIP: 10.96.0.10',
  '  clusterIPs: [10.96.0.10]',
  '  ports: [{ name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080 }]',
  '---',
  'apiVersion: discovery.k8s.io/v1',
  'kind: EndpointSlice',
  'metadata: { namespace: default, name: web-1, labels: { kubernetes.io/service-name: web } }',
  'addressType: IPv4',
  'endpoints: [{ addresses: [10.244.1.5], conditions: { ready: true } }]',
  'ports: [{ name: http, protocol: TCP, port: 8080 }]',
  '',
].join('\n');

async function render(argv: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIO = {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    readTextFile: (path) => (path === 'objects.yaml' ? Promise.resolve(objects) : Promise.reject(new Error(`ENOENT ${path}`))),
  };
  const code = await renderCommand(['--objects', 'objects.yaml', ...argv], io);
  return { code, stdout, stderr };
}

function fromFile(yaml: string): ConfigResult {
  return parseRunArgs(['--config', '/c.yaml'], {}, (path) => (path === '/c.yaml' ? yaml : ''), 'node-1');
}

const node = ['--node-ip', '192.168.0.2'];

describe('render takes upstream flag names and its old spellings alike', () => {
  it.each([
    ['--node-port-addresses', '--nodeport-addresses', '192.168.0.0/24'],
    ['--mode', '--proxy-mode', 'iptables'],
    ['--node-name', '--hostname-override', 'node1'],
  ])('%s is %s', async (alias, upstream, value) => {
    const base = alias === '--node-name' ? node : ['--node-name', 'node1', ...node];
    const viaAlias = await render([...base, alias, value]);
    const viaUpstream = await render([...base, upstream, value]);
    expect(viaAlias.code, viaAlias.stderr).toBe(0);
    expect(viaUpstream).toEqual(viaAlias);
  });

  it('the alias limits NodePorts as the upstream name does (not a silently ignored flag)', async () => {
    const limited = await render(['--node-name', 'node1', ...node, '--node-port-addresses', '192.168.0.0/24']);
    expect(limited.stdout).toContain('-d 192.168.0.2 -j KUBE-NODEPORTS');
    expect(limited.stdout).not.toContain('--dst-type LOCAL -j KUBE-NODEPORTS');
  });

  it('takes primary, as run does: NodePorts on the node IP only', async () => {
    const primary = await render(['--node-name', 'node1', ...node, '--nodeport-addresses', 'primary']);
    expect(primary.code, primary.stderr).toBe(0);
    expect(primary.stdout).toContain('-d 192.168.0.2 -j KUBE-NODEPORTS');
    expect(primary.stdout).not.toContain('--dst-type LOCAL');
  });

  it('run takes the same aliases for the same fields', () => {
    const viaAlias = parseRunArgs(['--node-port-addresses', '10.0.0.0/8', '--mode', 'iptables', '--node-name', 'n1'], {}, () => '', 'h');
    const viaUpstream = parseRunArgs(['--nodeport-addresses', '10.0.0.0/8', '--proxy-mode', 'iptables', '--hostname-override', 'n1'], {}, () => '', 'h');
    expect(viaAlias.kind).toBe('ok');
    expect(viaAlias).toEqual(viaUpstream);
  });

  it('every command reads its fields by every flag the field table gives them', () => {
    for (const command of Object.values(COMMANDS)) {
      for (const field of command.fields) {
        for (const flag of FIELDS[field].flags) {
          const line = readCommandLine(command, [`--${flag}=`], {}, () => '');
          expect(line.kind, `--${flag}`).toBe('parsed');
        }
      }
    }
  });
});

describe('a value the config file rejects, every command rejects as a flag (and the other way round)', () => {
  // [field in the file, flag, value]
  const rejected: readonly (readonly [string, string, string])[] = [
    ['nodePortAddresses: ["192.168.0.2"]', '--nodeport-addresses', '192.168.0.2'],
    ['nodePortAddresses: ["192.168.0.0/24", "nonsense"]', '--nodeport-addresses', '192.168.0.0/24,nonsense'],
    ['clusterCIDR: "10.244.0.1"', '--cluster-cidr', '10.244.0.1'],
    ['clusterCIDR: "10.244.0.0/33"', '--cluster-cidr', '10.244.0.0/33'],
    ['detectLocal: { bridgeInterface: "br\\"0" }', '--pod-bridge-interface', 'br"0'],
    ['detectLocal: { interfaceNamePrefix: "ve\\\\th" }', '--pod-interface-name-prefix', 've\\th'],
    ['mode: ipvs', '--proxy-mode', 'ipvs'],
    ['iptables: { masqueradeBit: 32 }', '--iptables-masquerade-bit', '32'],
    ['nodeIP: "fd00::2"', '--node-ip', 'fd00::2'],
  ];
  it.each(rejected)('%s / %s %s', async (yaml, flag, value) => {
    expect(fromFile(yaml).kind).toBe('invalid');
    expect(parseRunArgs([`${flag}=${value}`], {}, () => '', 'node-1').kind).toBe('invalid');
    const base = flag === '--node-ip' ? ['--node-name', 'node1'] : ['--node-name', 'node1', ...node];
    const rendered = await render([...base, flag, value]);
    expect(rendered.code).toBe(2);
    expect(rendered.stdout).toBe('');
    expect(rendered.stderr).toContain(`${flag} ${JSON.stringify(value)}`);
  });

  // [field in the file, flag, value]
  const accepted: readonly (readonly [string, string, string])[] = [
    ['nodePortAddresses: ["192.168.0.2/32"]', '--nodeport-addresses', '192.168.0.2/32'],
    ['nodePortAddresses: [primary]', '--nodeport-addresses', 'primary'],
    ['clusterCIDR: "10.244.0.0/16,fd00:10:244::/56"', '--cluster-cidr', '10.244.0.0/16,fd00:10:244::/56'],
    ['detectLocal: { bridgeInterface: cni0 }', '--pod-bridge-interface', 'cni0'],
    ['iptables: { masqueradeBit: 5 }', '--iptables-masquerade-bit', '5'],
  ];
  it.each(accepted)('accepted alike: %s / %s %s', async (yaml, flag, value) => {
    expect(fromFile(yaml).kind).toBe('ok');
    expect(parseRunArgs([`${flag}=${value}`], {}, () => '', 'node-1').kind).toBe('ok');
    const rendered = await render(['--node-name', 'node1', ...node, flag, value]);
    expect(rendered.code, rendered.stderr).toBe(0);
  });

  it('a " in --pod-bridge-interface never reaches the payload', async () => {
    const rendered = await render(['--node-name', 'node1', ...node, '--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', 'br"0']);
    expect(rendered.code).toBe(2);
    expect(rendered.stdout).not.toContain('br"0');
  });
});
