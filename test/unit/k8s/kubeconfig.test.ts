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
    expect(result).toMatchObject({ ok: true, source: 'flag', server: 'https://10.0.0.1:6443' });
  });

  it('merges a KUBECONFIG list with the first current-context winning', () => {
    const result = loadKubeConfig({ env: { KUBECONFIG: [noContext, second, first].join(delimiter) } });
    expect(result).toMatchObject({ ok: true, source: 'env', server: 'https://10.0.0.2:6443' });
    if (result.ok) expect(result.kubeConfig.getClusters().map((cluster) => cluster.name)).toEqual(['three', 'two', 'one']);
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
    expect(result).toMatchObject({ ok: true, source: 'in-cluster', server: 'https://10.96.0.1:443' });
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
