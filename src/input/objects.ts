// Reads Services, EndpointSlices and Nodes from multi-document YAML or JSON files (the `render`
// command's input). Errors are values naming the file and the offending document.

import { loadAllYaml } from '@kubernetes/client-node';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';

export interface ObjectBundle {
  readonly services: readonly V1Service[];
  readonly endpointSlices: readonly V1EndpointSlice[];
  readonly nodes: readonly V1Node[];
}

export type LoadResult =
  | { readonly ok: true; readonly bundle: ObjectBundle }
  | { readonly ok: false; readonly message: string };

interface RawObject {
  readonly kind?: unknown;
  readonly apiVersion?: unknown;
  readonly metadata?: { readonly name?: unknown; readonly namespace?: unknown };
  readonly items?: unknown;
}

function describe(raw: RawObject, index: number): string {
  const kind = typeof raw.kind === 'string' ? raw.kind : '<no kind>';
  const namespace = typeof raw.metadata?.namespace === 'string' ? `${raw.metadata.namespace}/` : '';
  const name = typeof raw.metadata?.name === 'string' ? raw.metadata.name : '<no name>';
  return `document ${index + 1} (${kind} ${namespace}${name})`;
}

/** Splits `List` kinds into their items so every object is classified alike. */
function flatten(documents: readonly unknown[]): RawObject[] {
  const out: RawObject[] = [];
  for (const document of documents) {
    if (document === null || document === undefined) continue;
    const raw = document as RawObject;
    if (typeof raw.kind === 'string' && raw.kind.endsWith('List') && Array.isArray(raw.items)) {
      for (const item of raw.items as unknown[]) out.push(item as RawObject);
    } else {
      out.push(raw);
    }
  }
  return out;
}

/** Parses one file's text; `fileName` only labels errors. */
export function parseObjects(fileName: string, text: string): LoadResult {
  let documents: unknown[];
  try {
    // loadAllYaml also deserialises into client-node's typed models (Dates, etc.).
    documents = loadAllYaml(text) as unknown[];
  } catch (error: unknown) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return { ok: false, message: `${fileName}: cannot parse YAML/JSON: ${reason}` };
  }
  const services: V1Service[] = [];
  const endpointSlices: V1EndpointSlice[] = [];
  const nodes: V1Node[] = [];
  const objects = flatten(documents);
  for (const [index, raw] of objects.entries()) {
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      return { ok: false, message: `${fileName}: document ${index + 1} is not an object` };
    }
    if (typeof raw.metadata?.name !== 'string' || raw.metadata.name === '') {
      return { ok: false, message: `${fileName}: ${describe(raw, index)} has no metadata.name` };
    }
    switch (raw.kind) {
      case 'Service':
        services.push(raw as V1Service);
        break;
      case 'EndpointSlice':
        endpointSlices.push(raw as V1EndpointSlice);
        break;
      case 'Node':
        nodes.push(raw as V1Node);
        break;
      default:
        // Other kinds (Deployments, Pods...) commonly share a manifest file: not an error.
        break;
    }
  }
  return { ok: true, bundle: { services, endpointSlices, nodes } };
}

export function mergeBundles(bundles: readonly ObjectBundle[]): ObjectBundle {
  return {
    services: bundles.flatMap((bundle) => bundle.services),
    endpointSlices: bundles.flatMap((bundle) => bundle.endpointSlices),
    nodes: bundles.flatMap((bundle) => bundle.nodes),
  };
}
