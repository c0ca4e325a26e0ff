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
  // `file`: the field in a config file; `flag=value`: the same setting on the command line.
  const parity: readonly { readonly file: string; readonly flag: string; readonly value: string; readonly valid: boolean }[] = [
    { valid: false, file: 'nodePortAddresses: ["192.168.0.2"]', flag: '--nodeport-addresses', value: '192.168.0.2' },
    { valid: false, file: 'nodePortAddresses: ["192.168.0.0/24", "nonsense"]', flag: '--nodeport-addresses', value: '192.168.0.0/24,nonsense' },
    { valid: false, file: 'clusterCIDR: "10.244.0.1"', flag: '--cluster-cidr', value: '10.244.0.1' },
    { valid: false, file: 'clusterCIDR: "10.244.0.0/33"', flag: '--cluster-cidr', value: '10.244.0.0/33' },
    { valid: false, file: 'detectLocal: { bridgeInterface: "br\\"0" }', flag: '--pod-bridge-interface', value: 'br"0' },
    { valid: false, file: 'detectLocal: { interfaceNamePrefix: "ve\\\\th" }', flag: '--pod-interface-name-prefix', value: 've\\th' },
    { valid: false, file: 'mode: ipvs', flag: '--proxy-mode', value: 'ipvs' },
    { valid: false, file: 'iptables: { masqueradeBit: 32 }', flag: '--iptables-masquerade-bit', value: '32' },
    { valid: false, file: 'nodeIP: "fd00::2,fd00::3"', flag: '--node-ip', value: 'fd00::2,fd00::3' },
    { valid: true, file: 'nodeIP: "10.0.0.2,fd00::2"', flag: '--node-ip', value: '10.0.0.2,fd00::2' },
    { valid: true, file: 'nodePortAddresses: ["192.168.0.2/32"]', flag: '--nodeport-addresses', value: '192.168.0.2/32' },
    { valid: true, file: 'nodePortAddresses: [primary]', flag: '--nodeport-addresses', value: 'primary' },
    { valid: true, file: 'clusterCIDR: "10.244.0.0/16,fd00:10:244::/56"', flag: '--cluster-cidr', value: '10.244.0.0/16,fd00:10:244::/56' },
    { valid: true, file: 'detectLocal: { bridgeInterface: cni0 }', flag: '--pod-bridge-interface', value: 'cni0' },
    { valid: true, file: 'iptables: { masqueradeBit: 5 }', flag: '--iptables-masquerade-bit', value: '5' },
  ];
  it.each(parity)('$file / $flag $value: valid $valid everywhere', async ({ file, flag, value, valid }) => {
    expect(fromFile(file).kind).toBe(valid ? 'ok' : 'invalid');
    expect(parseRunArgs([`${flag}=${value}`], {}, () => '', 'node-1').kind).toBe(valid ? 'ok' : 'invalid');
    const base = flag === '--node-ip' ? ['--node-name', 'node1'] : ['--node-name', 'node1', ...node];
    const rendered = await render([...base, flag, value]);
    if (valid) {
      expect(rendered.code, rendered.stderr).toBe(0);
      return;
    }
    expect(rendered.code).toBe(2);
    expect(rendered.stdout).toBe('');
    expect(rendered.stderr).toContain(`${flag} ${JSON.stringify(value)}`);
  });

  it('a " in --pod-bridge-interface never reaches the payload', async () => {
    const rendered = await render(['--node-name', 'node1', ...node, '--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', 'br"0']);
    expect(rendered.code).toBe(2);
    expect(rendered.stdout).not.toContain('br"0');
  });
});
