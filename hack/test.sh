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
results="$(mktemp)"
trap 'rm -f "${results}"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile="${results}" "$@" || status=$?
# One plain closing line that any CI log reader understands.
# shellcheck disable=SC2016 # JavaScript, not shell, expands these
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "${results}" || true
exit "${status}"
