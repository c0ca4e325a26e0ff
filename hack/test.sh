#!/usr/bin/env bash
# THE test command (`npm test`): installs what is missing (hack/deps.sh), type-checks, then runs
# every vitest project (unit, kernel, integration/e2e). Exits non-zero on the first failing step.
# Extra arguments go to vitest, e.g. `npm test -- --project unit`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "dependencies (hack/deps.sh)"
bash hack/deps.sh

step "type check (tsc --noEmit)"
npx tsc -p tsconfig.json --noEmit

step "tests (vitest run)"
npx vitest run "$@"
