import { describe, expect, it } from 'vitest';
import {
  hash16,
  isServicePortChain,
  probability,
  servicePortChainNames,
  servicePortEndpointChainName,
} from '../../../src/render/index.js';

// Chain names that upstream's proxier_test.go (TestOverallIPTablesRules) expects for its services.
describe('chain names match upstream kube-proxy', () => {
  it.each([
    ['ns1/svc1:p80', 'XPGD46QRK7WJZT7O'],
    ['ns2/svc2:p80', 'GNZBNJ2PO5MGZ6GT'],
    ['ns3/svc3:p80', 'X27LE4BHSL4DOUIK'],
    ['ns4/svc4:p80', '4SW47YFZTEDKD3PK'],
    ['ns5/svc5:p80', 'NUKIZ6OKUXPJNT4C'],
  ])('%s tcp -> %s', (servicePortName, hash) => {
    expect(servicePortChainNames(servicePortName, 'TCP')).toEqual({
      cluster: `KUBE-SVC-${hash}`,
      local: `KUBE-SVL-${hash}`,
      external: `KUBE-EXT-${hash}`,
      firewall: `KUBE-FW-${hash}`,
    });
  });

  it.each([
    ['ns1/svc1:p80', '10.180.0.1', 'SXIVWICOYRO3J4NJ'],
    ['ns2/svc2:p80', '10.180.0.2', 'RS4RBKLTHTF2IUXJ'],
    ['ns3/svc3:p80', '10.180.0.3', 'OYPFS5VJICHGATKP'],
    ['ns4/svc4:p80', '10.180.0.4', 'UKSFD7AGPMPPLUHC'],
    ['ns4/svc4:p80', '10.180.0.5', 'C6EBXVWJJZMIWKLZ'],
    ['ns5/svc5:p80', '10.180.0.3', 'I77PXRDZVX7PMWMN'],
  ])('%s tcp %s:80 -> KUBE-SEP-%s', (servicePortName, ip, hash) => {
    expect(servicePortEndpointChainName(servicePortName, 'TCP', ip, 80)).toBe(`KUBE-SEP-${hash}`);
  });

  it('hashes the lowercase protocol, so TCP and UDP ports of one name differ', () => {
    expect(hash16('ns1/svc1:p80tcp')).toBe('XPGD46QRK7WJZT7O');
    expect(servicePortChainNames('ns1/svc1:p80', 'UDP').cluster).toBe(`KUBE-SVC-${hash16('ns1/svc1:p80udp')}`);
    expect(servicePortChainNames('ns1/svc1:p80', 'UDP').cluster).not.toBe('KUBE-SVC-XPGD46QRK7WJZT7O');
  });

  it('memoises: the same names object comes back', () => {
    expect(servicePortChainNames('ns9/memo:p', 'SCTP')).toBe(servicePortChainNames('ns9/memo:p', 'SCTP'));
  });

  it('recognises per-service-port chains and nothing else', () => {
    for (const name of ['KUBE-SVC-X', 'KUBE-SVL-X', 'KUBE-EXT-X', 'KUBE-FW-X', 'KUBE-SEP-X']) expect(isServicePortChain(name)).toBe(true);
    for (const name of ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-FIREWALL']) expect(isServicePortChain(name)).toBe(false);
  });
});

describe('probability', () => {
  it("formats 1/n like Go's %0.10f", () => {
    expect(probability(2)).toBe('0.5000000000');
    expect(probability(3)).toBe('0.3333333333');
    expect(probability(7)).toBe('0.1428571429');
    expect(probability(1000)).toBe('0.0010000000');
  });

  it('rounds the one exact tie (1/2048) to even, as Go does', () => {
    expect(probability(2048)).toBe('0.0004882812');
    expect(probability(4096)).toBe('0.0002441406');
  });
});
