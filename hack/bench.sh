#!/usr/bin/env bash
# THE benchmark command (`npm run bench`): each step prints its own figures; none fails on timing.
# Steps run one after another; add a step as two more lines below. Options for one bench go to it
# directly, e.g. `npx tsx bench/render-bench.ts --services 1000`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "render pipeline at 10,000 Services x 10 endpoints (bench/render-bench.ts)"
npx tsx bench/render-bench.ts

step "trace on a node of 10,000 Services x 10 endpoints: parse the rules, trace one cluster IP (bench/trace-bench.ts)"
npx tsx bench/trace-bench.ts

step "chain declaration order and iptables-legacy-restore, 10,000 Services x 10 endpoints (bench/restore-order.ts; root, ~2 min)"
npx tsx bench/restore-order.ts

step "dual-stack: 5,000 dual-stack Services x 10 endpoints, first sync of each family and one family's change (bench/dual-stack.ts; root, ~1 min)"
npx tsx bench/dual-stack.ts --services 5000
step "dual-stack side by side with upstream kube-proxy: 5,000 RequireDualStack Services x 10 endpoints per family, first sync of both families and an IPv6 endpoint change (bench/dual-stack-compare.ts; root, ~10 min)"
npx tsx bench/dual-stack-compare.ts --services 5000
step "the periodic drift check at 10,000 Services x 10 endpoints (bench/drift-check.ts; root, ~2 min)"
npx tsx bench/drift-check.ts

step "kube-proxy-ts vs upstream kube-proxy, ${BENCH_SCALES:-100,1000,5000,10000} Services x 10 endpoints (bench/compare/main.ts; root, ~1 h at 10k)"
npx tsx bench/compare/main.ts --scales "${BENCH_SCALES:-100,1000,5000,10000}" ${BENCH_COMPARE_ARGS:-}
