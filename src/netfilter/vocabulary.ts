// The iptables vocabulary, written once: the tables we own, the built-in chains, kube-proxy's
// chain names and per-service prefixes, the canaries, the restore syntax (words, quoting) and
// "where a rule jumps". Every iptables-speaking module reads it from here; nothing
// backend-neutral (model, conntrack, health) imports it.

/** The tables kube-proxy-ts writes, in the order a payload writes them. */
export const TABLES = ['filter', 'nat'] as const;
export type TableName = (typeof TABLES)[number];

/** The built-in chains our jumps hang off. */
export const BUILTIN_CHAINS = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] as const;
export type BuiltinChain = (typeof BUILTIN_CHAINS)[number];
const builtinChains: ReadonlySet<string> = new Set(BUILTIN_CHAINS);

export function isBuiltinChain(name: string): name is BuiltinChain {
  return builtinChains.has(name);
}

// kube-proxy's node-wide chains.
export const kubeServicesChain = 'KUBE-SERVICES';
export const kubeExternalServicesChain = 'KUBE-EXTERNAL-SERVICES';
export const kubeNodePortsChain = 'KUBE-NODEPORTS';
export const kubePostroutingChain = 'KUBE-POSTROUTING';
export const kubeMarkMasqChain = 'KUBE-MARK-MASQ';
export const kubeForwardChain = 'KUBE-FORWARD';
export const kubeProxyFirewallChain = 'KUBE-PROXY-FIREWALL';
/** Empty, in every table we own: if one disappears, the table was flushed behind our back. */
export const kubeProxyCanaryChain = 'KUBE-PROXY-CANARY';
/** kubelet's chain, which kube-proxy duplicates (same single rule) when localhost NodePorts are on.
 * Shared with kubelet: never delete it on cleanup. */
export const kubeletFirewallChain = 'KUBE-FIREWALL';
/** Chains kubelet (1.17+) creates in mangle with the host's iptables variant (nft or legacy). */
export const kubeletVariantHintChains = ['KUBE-IPTABLES-HINT', 'KUBE-KUBELET-CANARY'] as const;

// kube-proxy's per-service-port chain prefixes (the rest is a hash: render/names.ts).
export const servicePortPolicyClusterChainPrefix = 'KUBE-SVC-';
export const servicePortPolicyLocalChainPrefix = 'KUBE-SVL-';
export const serviceExternalChainPrefix = 'KUBE-EXT-';
export const serviceFirewallChainPrefix = 'KUBE-FW-';
export const servicePortEndpointChainPrefix = 'KUBE-SEP-';
const servicePortChainPrefixes = [
  servicePortPolicyClusterChainPrefix,
  servicePortPolicyLocalChainPrefix,
  serviceExternalChainPrefix,
  serviceFirewallChainPrefix,
  servicePortEndpointChainPrefix,
] as const;

const ownedFixedChains: ReadonlySet<string> = new Set([
  kubeServicesChain,
  kubeExternalServicesChain,
  kubeNodePortsChain,
  kubePostroutingChain,
  kubeMarkMasqChain,
  kubeForwardChain,
  kubeProxyFirewallChain,
  kubeProxyCanaryChain,
]);

/** Whether a chain is one of the per-service-port chains (the ones kube-proxy garbage-collects). */
export function isServicePortChain(name: string): boolean {
  return servicePortChainPrefixes.some((prefix) => name.startsWith(prefix));
}

/**
 * Chains kube-proxy (and so kube-proxy-ts) owns: an explicit list, not "every KUBE- chain", since
 * kubelet (KUBE-FIREWALL, KUBE-MARK-DROP, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) and other agents
 * (kube-router's KUBE-ROUTER-*, KUBE-NWPLCY-*) use the same prefix and are never touched.
 */
export function isOwnedChain(name: string): boolean {
  return ownedFixedChains.has(name) || isServicePortChain(name);
}

// ---- restore syntax ----

export type TokenizeResult =
  | { readonly ok: true; readonly tokens: readonly string[] }
  | { readonly ok: false; readonly message: string };

/**
 * Splits a line like iptables-restore does: whitespace separates words, double quotes group
 * (a backslash inside quotes escapes the next character), quotes may sit inside a word.
 */
export function tokenize(text: string): TokenizeResult {
  // Most lines quote nothing: plain splitting is several times faster on large payloads and dumps.
  if (!text.includes('"')) return { ok: true, tokens: text.split(/[ \t]+/).filter((token) => token !== '') };
  const tokens: string[] = [];
  let current = '';
  let inWord = false;
  let quoted = false;
  for (let index = 0; index < text.length; index++) {
    const char = text.charAt(index);
    if (quoted) {
      if (char === '\\' && index + 1 < text.length) {
        index++;
        current += text.charAt(index);
      } else if (char === '"') {
        quoted = false;
      } else {
        current += char;
      }
    } else if (char === '"') {
      quoted = true;
      inWord = true;
    } else if (char === ' ' || char === '\t') {
      if (inWord) tokens.push(current);
      current = '';
      inWord = false;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (quoted) return { ok: false, message: 'unterminated quoted string' };
  if (inWord) tokens.push(current);
  return { ok: true, tokens };
}

/** `tokenize`, with an unterminated quote yielding no words (for text we only inspect). */
export function ruleWords(rule: string): readonly string[] {
  const result = tokenize(rule);
  return result.ok ? result.tokens : [];
}

/** Inverse of `tokenize` for one word: quotes only when needed, as iptables-save does. */
export function quoteToken(token: string): string {
  if (token !== '' && !/[\s"\\]/.test(token)) return token;
  return `"${token.replace(/(["\\])/g, '\\$1')}"`;
}

/** The canonical text of a rule spec: tokens re-joined with minimal quoting. */
export function joinTokens(tokens: readonly string[]): string {
  return tokens.map(quoteToken).join(' ');
}

/** Where a rule sends a matching packet: `-j TARGET` (jump) or `-g CHAIN` (goto). */
export interface RuleTarget {
  readonly name: string;
  readonly goto: boolean;
}

/**
 * The `-j`/`-g` target of a rule spec's words, or undefined for a rule without one (it only
 * counts). Skips the value of `--comment` so a comment that reads "-j" cannot fool it.
 */
export function ruleTarget(args: readonly string[]): RuleTarget | undefined {
  for (let index = 0; index < args.length - 1; index++) {
    const token = args[index];
    const next = args[index + 1];
    if (next === undefined) break;
    if (token === '--comment') index++;
    else if (token === '-j' || token === '--jump') return { name: next, goto: false };
    else if (token === '-g' || token === '--goto') return { name: next, goto: true };
  }
  return undefined;
}

/** The chain (or target) a rule spec or `-A CHAIN ...` line jumps or goes to; undefined without one. */
export function jumpTarget(rule: string): string | undefined {
  return ruleTarget(ruleWords(rule))?.name;
}

/** The `--comment` of a rule spec's words, if any. */
export function ruleComment(args: readonly string[]): string | undefined {
  for (let index = 0; index < args.length - 1; index++) {
    if (args[index] === '--comment') return args[index + 1];
  }
  return undefined;
}
