// A client certificate rotated on disk, against the real kube-apiserver: the connection the agent
// builds from a kubeconfig whose client certificate and key are files reads them again once the
// cache time passed (as client-go does), authenticates with the new certificate from then on, and
// closes what was opened with the old one (a watch ends, so the agent's watcher reconnects). A
// rotation caught half-way (new certificate, old key) keeps the old pair.

import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { apiUrl, type ApiConnection } from '../../src/k8s/connection.js';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import { openWatchStream } from '../../src/k8s/watch-stream.js';
import { issueClientCertificate } from '../harness/control-plane.js';

/** The user the apiserver authenticated this request as (a SelfSubjectReview). */
async function whoAmI(connection: ApiConnection): Promise<string> {
  const options = await connection.requestOptions();
  const body = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
  const url = apiUrl(connection, '/apis/authentication.k8s.io/v1/selfsubjectreviews');
  const text = await new Promise<string>((resolve, reject) => {
    const request = https.request(url, { ...options, method: 'POST', headers: { ...options.headers, 'Content-Type': 'application/json' } }, (response) => {
      let data = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (data += chunk));
      response.on('end', () => (response.statusCode === 201 ? resolve(data) : reject(new Error(`HTTP ${response.statusCode}: ${data}`))));
    });
    request.on('error', reject);
    request.end(body);
  });
  const review = JSON.parse(text) as { status?: { userInfo?: { username?: string } } };
  return review.status?.userInfo?.username ?? '';
}

describe('a client certificate rotated on disk', () => {
  const controlPlaneDir = inject('controlPlaneDir');
  const work = mkdtempSync(join(tmpdir(), 'cert-rotation-'));
  const suffix = Math.random().toString(36).slice(2, 8);
  let first: { cert: string; key: string };
  let second: { cert: string; key: string };

  beforeAll(async () => {
    first = await issueClientCertificate(controlPlaneDir, join(work, 'issued'), `first-${suffix}`, `/O=system:masters/CN=first-${suffix}`);
    second = await issueClientCertificate(controlPlaneDir, join(work, 'issued'), `second-${suffix}`, `/O=system:masters/CN=second-${suffix}`);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('is used once the cache time passed, and the connections of the old one are closed', async () => {
    copyFileSync(first.cert, join(work, 'client.crt'));
    copyFileSync(first.key, join(work, 'client.key'));
    writeFileSync(
      join(work, 'kubeconfig'),
      [
        `clusters: [{name: c, cluster: {server: "${inject('apiserverURL')}", certificate-authority: ${join(controlPlaneDir, 'pki', 'ca.crt')}}}]`,
        'users: [{name: u, user: {client-certificate: client.crt, client-key: client.key}}]',
        'contexts: [{name: x, context: {cluster: c, user: u}}]',
        'current-context: x',
      ].join('\n'),
    );
    let now = 0;
    const loaded = loadKubeConfig({ kubeconfigPath: join(work, 'kubeconfig'), env: {}, credentialFileCacheMs: 60_000, now: () => now });
    if (!loaded.ok) throw new Error(loaded.detail);
    expect(loaded.auth).toBe('client-certificate');
    const { connection } = loaded;
    expect(await whoAmI(connection)).toBe(`first-${suffix}`);

    const ends: unknown[] = [];
    const watch = await openWatchStream(connection, '/api/v1/namespaces/default/services?watch=true', () => undefined, (error) => ends.push(error));

    // Half-way through a rotation: the new certificate is there, its key not yet.
    copyFileSync(second.cert, join(work, 'client.crt'));
    now += 60_000;
    expect(await whoAmI(connection)).toBe(`first-${suffix}`);
    expect(ends).toEqual([]);

    copyFileSync(second.key, join(work, 'client.key'));
    now += 30_000;
    // Not read again before the cache time passed since the last read.
    expect(await whoAmI(connection)).toBe(`first-${suffix}`);
    now += 30_000;
    expect(await whoAmI(connection)).toBe(`second-${suffix}`);
    // The watch opened with the old certificate was closed.
    await expect.poll(() => ends.length, { timeout: 10_000 }).toBe(1);
    expect(ends[0]).toBeInstanceOf(Error);
    watch.abort();
  });
});
