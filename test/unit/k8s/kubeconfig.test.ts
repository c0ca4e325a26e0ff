import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadKubeConfig } from '../../../src/k8s/kubeconfig.js';

const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(file: string, cluster: string, server: string, currentContext: string | undefined): string {
  const path = join(dir, file);
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{name: ${cluster}, cluster: {server: "${server}"}}]`,
      `users: [{name: ${cluster}-user, user: {token: t}}]`,
      `contexts: [{name: ${cluster}-ctx, context: {cluster: ${cluster}, user: ${cluster}-user}}]`,
      ...(currentContext !== undefined ? [`current-context: ${currentContext}`] : []),
    ].join('\n'),
  );
  return path;
}

const first = kubeconfig('first.yaml', 'one', 'https://10.0.0.1:6443', 'one-ctx');
const second = kubeconfig('second.yaml', 'two', 'https://10.0.0.2:6443', 'two-ctx');
const noContext = kubeconfig('no-context.yaml', 'three', 'https://10.0.0.3:6443', undefined);

describe('loadKubeConfig', () => {
  it('prefers --kubeconfig over KUBECONFIG', () => {
    const result = loadKubeConfig({ kubeconfigPath: first, env: { KUBECONFIG: second } });
    expect(result).toMatchObject({ ok: true, source: 'flag', connection: { server: 'https://10.0.0.1:6443' } });
  });

  it('merges a KUBECONFIG list with the first current-context and the first definition of a name winning', () => {
    const result = loadKubeConfig({ env: { KUBECONFIG: [noContext, second, first].join(delimiter) } });
    expect(result).toMatchObject({ ok: true, source: 'env', connection: { server: 'https://10.0.0.2:6443' }, context: 'two-ctx' });
    // A file earlier in the list that also defines cluster "two" wins for that cluster.
    const shadow = kubeconfig('shadow.yaml', 'two', 'https://10.0.0.99:6443', undefined);
    expect(loadKubeConfig({ env: { KUBECONFIG: [shadow, second].join(delimiter) } })).toMatchObject({ ok: true, connection: { server: 'https://10.0.0.99:6443' } });
  });

  it('uses the service account when running in a pod', () => {
    const root = join(dir, 'pod');
    const accountDir = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
    mkdirSync(accountDir, { recursive: true });
    writeFileSync(join(accountDir, 'token'), 'token');
    writeFileSync(join(accountDir, 'namespace'), 'kube-system');
    const result = loadKubeConfig({
      env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
      serviceAccountRoot: root,
    });
    expect(result).toMatchObject({ ok: true, source: 'in-cluster', connection: { server: 'https://10.96.0.1:443' } });
  });

  it('names what is missing when nothing is configured', () => {
    const result = loadKubeConfig({ env: {}, serviceAccountRoot: join(dir, 'nowhere') });
    expect(result).toMatchObject({ ok: false, reason: 'no-config' });
    if (!result.ok) expect(result.detail).toContain('KUBERNETES_SERVICE_HOST');
  });

  it('does not fall back to the service account when in-cluster env lacks a token', () => {
    const result = loadKubeConfig({
      env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
      serviceAccountRoot: join(dir, 'nowhere'),
    });
    expect(result).toMatchObject({ ok: false, reason: 'no-config' });
  });

  it('reports an unreadable file as a value, naming the path', () => {
    const missing = join(dir, 'missing.yaml');
    const result = loadKubeConfig({ kubeconfigPath: missing, env: {} });
    expect(result).toMatchObject({ ok: false, reason: 'unreadable' });
    if (!result.ok) expect(result.detail).toContain(missing);
  });

  it('rejects a kubeconfig without a current cluster', () => {
    const result = loadKubeConfig({ kubeconfigPath: noContext, env: {} });
    expect(result).toMatchObject({ ok: false, reason: 'no-current-cluster' });
  });
});

function writeIn(subdir: string, files: Record<string, string>): string {
  const path = join(dir, subdir);
  mkdirSync(path, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(path, name), text);
  return path;
}

describe('the connection a kubeconfig describes', () => {
  it('reads CA, client certificate and key from files relative to the kubeconfig, or from -data', async () => {
    const certs = writeIn('certs', {
      'ca.crt': 'CA PEM',
      'client.crt': 'CLIENT CERT PEM',
      'client.key': 'CLIENT KEY PEM',
      'config.yaml': [
        'clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443", certificate-authority: ca.crt, tls-server-name: apiserver.local}}]',
        'users: [{name: u, user: {client-certificate: client.crt, client-key-data: ' + Buffer.from('INLINE KEY').toString('base64') + '}}]',
        'contexts: [{name: x, context: {cluster: c, user: u}}]',
        'current-context: x',
      ].join('\n'),
    });
    const result = loadKubeConfig({ kubeconfigPath: join(certs, 'config.yaml'), env: {} });
    expect(result).toMatchObject({ ok: true, auth: 'client-certificate' });
    if (!result.ok) return;
    const options = await result.connection.requestOptions();
    expect(String(options.ca)).toBe('CA PEM');
    expect(String(options.cert)).toBe('CLIENT CERT PEM');
    expect(String(options.key)).toBe('INLINE KEY');
    expect(options.servername).toBe('apiserver.local');
    expect(options.rejectUnauthorized).toBeUndefined();
    expect(options.headers).toEqual({});
  });

  it('sends a bearer token, basic credentials, and skips TLS verification only when told to', async () => {
    const config = (user: string, cluster = '{server: "https://10.0.0.1:6443"}'): string =>
      join(
        writeIn(`auth-${Math.random().toString(36).slice(2)}`, {
          'config.yaml': `clusters: [{name: c, cluster: ${cluster}}]\nusers: [{name: u, user: ${user}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
        }),
        'config.yaml',
      );
    const token = loadKubeConfig({ kubeconfigPath: config('{token: abc}', '{server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}'), env: {} });
    expect(token).toMatchObject({ ok: true, auth: 'token' });
    if (token.ok) expect(await token.connection.requestOptions()).toMatchObject({ headers: { Authorization: 'Bearer abc' }, rejectUnauthorized: false });
    const basic = loadKubeConfig({ kubeconfigPath: config('{username: admin, password: secret}'), env: {} });
    expect(basic).toMatchObject({ ok: true, auth: 'basic' });
    if (basic.ok) {
      expect((await basic.connection.requestOptions()).headers).toEqual({ Authorization: `Basic ${Buffer.from('admin:secret').toString('base64')}` });
    }
  });

  it('reads a token file again once the cache time passed (the kubelet rotates service account tokens)', async () => {
    const root = join(dir, 'rotating');
    const accountDir = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
    mkdirSync(accountDir, { recursive: true });
    writeFileSync(join(accountDir, 'token'), 'first\n');
    writeFileSync(join(accountDir, 'ca.crt'), 'CLUSTER CA');
    let now = 1_000;
    const result = loadKubeConfig({
      env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' },
      serviceAccountRoot: root,
      credentialFileCacheMs: 60_000,
      now: () => now,
    });
    expect(result).toMatchObject({ ok: true, source: 'in-cluster', connection: { server: 'https://[fd00::1]:443' }, auth: 'token-file' });
    if (!result.ok) return;
    expect(await result.connection.requestOptions()).toMatchObject({ headers: { Authorization: 'Bearer first' } });
    expect(String((await result.connection.requestOptions()).ca)).toBe('CLUSTER CA');
    writeFileSync(join(accountDir, 'token'), 'second\n');
    now += 59_000;
    expect((await result.connection.requestOptions()).headers).toEqual({ Authorization: 'Bearer first' });
    now += 1_000;
    expect((await result.connection.requestOptions()).headers).toEqual({ Authorization: 'Bearer second' });
  });

  it('hands credential plugins (exec) to client-node, which runs them', async () => {
    const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-plugin' } });
    const plugin = writeIn('plugin', { 'credential.json': credential });
    const path = join(plugin, 'config.yaml');
    writeFileSync(
      path,
      [
        'clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]',
        `users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: cat, args: ["${join(plugin, 'credential.json')}"], interactiveMode: Never}}}]`,
        'contexts: [{name: x, context: {cluster: c, user: u}}]',
        'current-context: x',
      ].join('\n'),
    );
    const result = loadKubeConfig({ kubeconfigPath: path, env: {} });
    expect(result).toMatchObject({ ok: true, auth: 'plugin', connection: { server: 'https://10.0.0.1:6443' } });
    if (result.ok) expect((await result.connection.requestOptions()).headers).toMatchObject({ Authorization: 'Bearer from-plugin' });
    // Loading client-node takes ~2.5 s on an idle 2-core machine, over 5 s (vitest's default) on a busy one.
  }, 30_000);

  it('rejects a client certificate without its key, naming the user', () => {
    const half = writeIn('half', {
      'client.crt': 'CERT',
      'config.yaml': 'clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]\nusers: [{name: lonely, user: {client-certificate: client.crt}}]\ncontexts: [{name: x, context: {cluster: c, user: lonely}}]\ncurrent-context: x\n',
    });
    const result = loadKubeConfig({ kubeconfigPath: join(half, 'config.yaml'), env: {} });
    expect(result).toMatchObject({ ok: false, reason: 'unreadable' });
    if (!result.ok) expect(result.detail).toContain('lonely');
  });

  it('rejects impersonation instead of ignoring it', () => {
    const other = writeIn('impersonate', {
      'config.yaml': 'clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]\nusers: [{name: u, user: {token: t, as: admin}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    });
    const result = loadKubeConfig({ kubeconfigPath: join(other, 'config.yaml'), env: {} });
    expect(result).toMatchObject({ ok: false, reason: 'unreadable' });
    if (!result.ok) expect(result.detail).toContain('impersonation');
  });
});
