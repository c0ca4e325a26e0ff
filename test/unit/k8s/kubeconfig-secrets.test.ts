// A malformed kubeconfig never puts a credential into the log: every way a file holding a token, a
// password or a private key can be broken is loaded (and, where it loads, used for a request to a
// closed local port), and no message, error or process warning contains the secret.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadKubeConfig } from '../../../src/k8s/kubeconfig.js';
import { messageOf } from '../../../src/values.js';

const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const secret = 'S3cr3tT0k3nTh4tMustN0tL34k';
const pem = `-----BEGIN PRIVATE KEY-----\\n${secret}\\n-----END PRIVATE KEY-----`;
const base64 = (text: string): string => Buffer.from(text).toString('base64');

// A closed port on the loopback: a request made with a kubeconfig that loads fails locally.
const cluster = 'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]';
const context = 'contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x';
const withUser = (user: string): string => `apiVersion: v1\nkind: Config\n${cluster}\n${context}\nusers:\n- name: u\n  user:\n${user}\n`;

const keyData = base64(pem.replaceAll('\\n', '\n'));
const certData = base64(`CERT ${secret}`);

const cases: ReadonlyArray<{ name: string; text: string; loads: boolean; says?: RegExp }> = [
  { name: 'a token followed by a colon (nested mapping)', text: withUser(`    token: ${secret}: x`), loads: false, says: /not valid YAML \(BLOCK_AS_IMPLICIT_KEY at line 9, column 12/ },
  { name: 'a token given twice', text: withUser(`    token: ${secret}\n    token: other`), loads: false, says: /DUPLICATE_KEY at line 10, column 5/ },
  { name: 'a tab before the token', text: withUser(`\ttoken: ${secret}`), loads: false, says: /TAB_AS_INDENT/ },
  { name: 'an unclosed flow mapping around the password', text: withUser(`    {username: admin, password: ${secret}`), loads: false },
  { name: 'the token as an alias of no anchor', text: withUser(`    token: *${secret}`), loads: false },
  { name: 'an unknown tag on the token (a warning, not an error)', text: withUser(`    token: !secret ${secret}`), loads: true },
  { name: 'a token with a line break (not a valid header)', text: withUser(`    token: "${secret}\\nx"`), loads: true },
  { name: 'the token where the token file path belongs', text: withUser(`    tokenFile: ${secret}`), loads: true, says: /tokenFile names \(ENOENT\)/ },
  { name: 'the PEM key where the client-key path belongs', text: withUser(`    client-certificate-data: ${base64('CERT')}\n    client-key: "${pem}"`), loads: false, says: /client-key names \(ENOENT/ },
  { name: 'client-key-data that is not a key', text: withUser(`    client-certificate-data: ${certData}\n    client-key-data: ${keyData}`), loads: true },
  { name: 'a password in the server URL', text: `${cluster.replace('https://', `https://admin:${secret}@`)}\n${context}\nusers: [{name: u, user: {}}]\n`, loads: false, says: /server carries a user name or password/ },
];

/** Everything the load and a first request say: the failure detail, errors, process warnings. */
async function everythingSaid(text: string): Promise<{ loaded: boolean; said: string }> {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  const said: string[] = [];
  const onWarning = (warning: Error): void => void said.push(`warning: ${warning.message}`);
  process.on('warning', onWarning);
  try {
    const result = loadKubeConfig({ kubeconfigPath: path, env: {} });
    if (!result.ok) {
      said.push(result.detail);
    } else {
      try {
        const options = await result.connection.requestOptions();
        said.push(JSON.stringify({ server: result.connection.server, context: result.context, auth: result.auth }));
        await new Promise<void>((resolve) => {
          const request = https.request(`${result.connection.server}/api/v1/nodes`, { ...options, timeout: 2_000 }, () => resolve());
          request.on('error', (error) => {
            said.push(`${messageOf(error)} ${String(error.stack)}`);
            resolve();
          });
          request.end();
        });
      } catch (error: unknown) {
        said.push(`${messageOf(error)} ${error instanceof Error ? String(error.stack) : ''}`);
      }
    }
    // process.emitWarning fires on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    return { loaded: result.ok, said: said.join('\n') };
  } finally {
    process.off('warning', onWarning);
  }
}

describe('a malformed kubeconfig', () => {
  it.each(cases)('never shows its credential: $name', async ({ text, loads, says }) => {
    expect([secret, keyData].some((value) => text.includes(value))).toBe(true);
    const { loaded, said } = await everythingSaid(text);
    expect(loaded).toBe(loads);
    for (const value of [secret, keyData, certData, base64(secret).slice(0, 16)]) expect(said).not.toContain(value);
    if (says !== undefined) expect(said).toMatch(says);
  });
});
