// The published package works on its own: `npm pack` (whose prepack builds dist/) gives a tarball
// that installs into an empty project, and its `kube-proxy-ts` bin prints its usage and renders a
// payload, with nothing from the repository but the tarball.

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servicePortChainNames } from '../../src/render/names.js';
import { exec, type ExecResult } from '../harness/exec.js';
import { repoRoot } from '../harness/versions.js';

const workDir = mkdtempSync(join(tmpdir(), 'kube-proxy-ts-pack-'));
const projectDir = join(workDir, 'project');
const bin = join(projectDir, 'node_modules', '.bin', 'kube-proxy-ts');
const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
let tarball = '';
let tarballFiles: string[] = [];

function explain(what: string, result: ExecResult): string {
  return `${what} exited ${result.code}\nstdout:\n${result.stdout.slice(-4000)}\nstderr:\n${result.stderr.slice(-4000)}`;
}

/** Runs the installed bin from a directory outside the repository. */
function runBin(args: readonly string[]): Promise<ExecResult> {
  return exec('bash', ['-c', 'cd "$1" && shift && exec "$@"', 'run-bin', projectDir, bin, ...args], { timeoutMs: 60_000 });
}

beforeAll(async () => {
  const packed = await exec('npm', ['pack', '--pack-destination', workDir, '--no-fund', '--no-audit'], { timeoutMs: 300_000 });
  if (packed.code !== 0) throw new Error(explain('npm pack', packed));
  const found = readdirSync(workDir).filter((name) => name.endsWith('.tgz'));
  if (found.length !== 1 || found[0] === undefined) throw new Error(`expected one tarball in ${workDir}, found ${found.join(', ')}`);
  tarball = join(workDir, found[0]);
  const listing = await exec('tar', ['-tzf', tarball]);
  tarballFiles = listing.stdout.split('\n').filter((line) => line !== '').map((line) => line.replace(/^package\//, ''));

  // A bare consumer project. --prefer-offline: npm's cache (filled by `npm ci` in the repo) serves
  // the dependencies when it can, the registry otherwise.
  await exec('mkdir', ['-p', projectDir]);
  writeFileSync(join(projectDir, 'package.json'), `${JSON.stringify({ name: 'pack-consumer', private: true, version: '0.0.0' }, null, 2)}\n`);
  const installed = await exec(
    'bash',
    ['-c', 'cd "$1" && npm install --prefer-offline --no-audit --no-fund --no-package-lock --omit=dev "$2"', 'install', projectDir, tarball],
    { timeoutMs: 300_000 },
  );
  if (installed.code !== 0) throw new Error(explain('npm install <tarball>', installed));
}, 600_000);

afterAll(() => {
  rmSync(workDir, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships the built CLI, the manifests and the README, and no sources, tests or source maps', () => {
    expect(tarballFiles).toContain('package.json');
    expect(tarballFiles).toContain('README.md');
    expect(tarballFiles).toContain('dist/src/cli.js');
    expect(tarballFiles).toContain('dist/src/cli/run-command.js');
    expect(tarballFiles).toContain('manifests/40-daemonset.yaml');
    expect(tarballFiles.filter((file) => file.endsWith('.ts') || file.endsWith('.map'))).toEqual([]);
    expect(tarballFiles.filter((file) => /^(src|test|demo|hack|bench)\//.test(file))).toEqual([]);
  });

  it('installs a kube-proxy-ts bin that prints its usage', async () => {
    const help = await runBin(['--help']);
    expect(help.code, explain('kube-proxy-ts --help', help)).toBe(0);
    expect(help.stdout).toContain('Usage:');
    expect(help.stdout).toContain('kube-proxy-ts run');
    expect(help.stdout).toContain('kube-proxy-ts render');

    const runHelp = await runBin(['run', '--help']);
    expect(runHelp.code, explain('kube-proxy-ts run --help', runHelp)).toBe(0);
    expect(runHelp.stdout).toContain('--kubeconfig');

    const version = await runBin(['version']);
    expect(version.code, explain('kube-proxy-ts version', version)).toBe(0);
    expect(version.stdout.trim()).toBe(`kube-proxy-ts ${packageJson.version}`);
  });

  it('renders a complete iptables-restore payload from an objects file', async () => {
    const objects = join(workDir, 'objects.yaml');
    writeFileSync(
      objects,
      [
        'apiVersion: v1',
        'kind: Service',
        'metadata: { name: web, namespace: shop }',
        'spec:',
        '  type: NodePort',
        '  clusterIP: 10.96.0.20',
        '  clusterIPs: [10.96.0.20]',
        '  ports: [{ name: http, port: 80, targetPort: 8080, protocol: TCP, nodePort: 30080 }]',
        '---',
        'apiVersion: discovery.k8s.io/v1',
        'kind: EndpointSlice',
        'metadata:',
        '  name: web-1',
        '  namespace: shop',
        '  labels: { kubernetes.io/service-name: web }',
        'addressType: IPv4',
        'ports: [{ name: http, port: 8080, protocol: TCP }]',
        'endpoints:',
        '  - addresses: [10.244.1.11]',
        '    nodeName: node1',
        '    conditions: { ready: true }',
        '',
      ].join('\n'),
    );
    const rendered = await runBin(['render', '--objects', objects, '--node-name', 'node1', '--node-ip', '172.30.0.10', '--cluster-cidr', '10.244.0.0/16']);
    expect(rendered.code, explain('kube-proxy-ts render', rendered)).toBe(0);
    const payload = rendered.stdout;
    expect(payload).toMatch(/^\*filter$/m);
    expect(payload).toMatch(/^\*nat$/m);
    expect(payload.match(/^COMMIT$/gm)?.length).toBe(2);
    // The installed package names chains exactly as the sources (and kube-proxy) do.
    const chains = servicePortChainNames('shop/web:http', 'TCP');
    expect(payload).toContain(`:${chains.cluster} - [0:0]`);
    expect(payload).toMatch(new RegExp(`^-A KUBE-SERVICES .*-d 10\\.96\\.0\\.20 .*--dport 80 -j ${chains.cluster}$`, 'm'));
    expect(payload).toMatch(new RegExp(`^-A KUBE-NODEPORTS .*--dport 30080 -j ${chains.external}$`, 'm'));
    expect(payload).toMatch(/^-A KUBE-SEP-\w+ .*-j DNAT --to-destination 10\.244\.1\.11:8080$/m);
  });

  it('exits 2 with the usage on an unknown command', async () => {
    const unknown = await runBin(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command');
  });
});
