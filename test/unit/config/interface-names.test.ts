// --pod-bridge-interface / --pod-interface-name-prefix go into `-i NAME` of the restore payload
// unquoted: a name with a quote would break the payload, so every source refuses it alike (flag,
// environment, config file: they share one parser).
import { describe, expect, it } from 'vitest';
import { parseRunArgs } from '../../../src/config/load.js';
import type { ConfigResult } from '../../../src/config/types.js';

const file = (text: string) => (path: string): string => {
  if (path !== '/kp.yaml') throw new Error(`ENOENT: ${path}`);
  return text;
};
const noFile = file('');

function errorsOf(result: ConfigResult): string[] {
  return result.kind === 'invalid' ? result.errors.map((error) => `${error.field}: ${error.message}`) : [];
}

describe('interface names for detectLocalMode', () => {
  it.each(['br"0', "br'0", 'br\\0', 'br/0', 'br:0', 'br+', 'br 0', 'brüc', '.', '..', 'a-very-long-name0'])('refuses %j from a flag, the environment and the config file', (name) => {
    const flag = errorsOf(parseRunArgs(['--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', name], {}, noFile, 'h'));
    expect(flag.join('\n')).toMatch(/detectLocal\.bridgeInterface: .* is not an interface name/);
    const env = errorsOf(parseRunArgs([], { KUBE_PROXY_TS_DETECT_LOCAL_MODE: 'InterfaceNamePrefix', KUBE_PROXY_TS_POD_INTERFACE_NAME_PREFIX: name }, noFile, 'h'));
    expect(env.join('\n')).toMatch(/detectLocal\.interfaceNamePrefix: .* is not an interface name/);
    const yaml = `detectLocalMode: BridgeInterface\ndetectLocal:\n  bridgeInterface: ${JSON.stringify(name)}\n`;
    const fromFile = errorsOf(parseRunArgs(['--config', '/kp.yaml'], {}, file(yaml), 'h'));
    expect(fromFile.join('\n')).toMatch(/detectLocal\.bridgeInterface: .* is not an interface name/);
  });

  it.each(['cni0', 'br-0.10', 'veth_x@1', 'a!b', 'a#b', 'x=y~%,'])('accepts %j', (name) => {
    const result = parseRunArgs(['--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', name], {}, noFile, 'h');
    expect(result.kind === 'ok' && result.config.detectLocal).toEqual({ mode: 'BridgeInterface', bridgeInterface: name });
  });
});
