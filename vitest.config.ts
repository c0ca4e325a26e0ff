import { defineConfig } from 'vitest/config';

// Projects, as in STYLE.md: unit (pure, fast), kernel (real netfilter in network namespaces),
// integration (real kube-apiserver) and e2e (agent + apiserver + packets), then realnode. The slow ones run one
// file at a time: they share a single control plane and the 2-core machine.
export default defineConfig({
  test: {
    projects: [
      {
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], environment: 'node' },
      },
      {
        test: {
          name: 'kernel',
          include: ['test/kernel/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 300_000,
          hookTimeout: 600_000,
          fileParallelism: false,
          globalSetup: ['test/harness/global-setup.ts'],
        },
      },
      {
        // A real kubelet node (hack/local-cluster.sh) judged by upstream's e2e binary: it runs
        // after every other project, alone, because it loads both cores for minutes.
        test: {
          name: 'realnode',
          include: ['test/realnode/**/*.test.ts'],
          environment: 'node',
          testTimeout: 30 * 60_000,
          hookTimeout: 60 * 60_000,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
