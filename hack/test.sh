#!/usr/bin/env bash
# THE test command (`npm test`): installs what is missing (hack/deps.sh), type-checks, then runs
# every vitest project (unit, kernel, integration/e2e, realnode) on the machine's Node, then the
# unit and kernel projects again on the Node.js LTS (hack/node-lts.sh; the image ships that line,
# and the realnode project already runs the agent on it, inside the image). Exits non-zero when a
# step fails. Extra arguments go to vitest, e.g. `npm test -- --project unit`; they skip the LTS
# run (a narrowed run is for iterating). KUBE_PROXY_TS_LTS_PROJECTS="unit kernel integration"
# widens it, "" turns it off.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "dependencies (hack/deps.sh)"
bash hack/deps.sh

step "type check (tsc --noEmit)"
npx tsc -p tsconfig.json --noEmit

results="$(mktemp)"
lts_results="$(mktemp)"
trap 'rm -f "${results}" "${lts_results}"' EXIT
# One plain line per run that any CI log reader understands.
summary() { # LABEL RESULTS_JSON
  # shellcheck disable=SC2016 # JavaScript, not shell, expands these
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    console.log(`${process.argv[2]}: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
  ' "$2" "$1" || true
}

step "tests (vitest run, node $(node --version))"
status=0
npx vitest run --reporter=default --reporter=json --outputFile="${results}" "$@" || status=$?

lts_projects="${KUBE_PROXY_TS_LTS_PROJECTS-unit kernel}"
lts_status=0
if [[ $# -eq 0 && -n "${lts_projects}" ]]; then
  lts_bin="$(bash hack/node-lts.sh | tail -n1)"
  project_args=()
  for project in ${lts_projects}; do project_args+=(--project "${project}"); done
  step "tests on the Node.js LTS ($("${lts_bin}/node" --version)): ${lts_projects}"
  # PATH first, so that every `node` a test spawns is the LTS one too.
  PATH="${lts_bin}:${PATH}" "${lts_bin}/node" node_modules/vitest/vitest.mjs run \
    --reporter=default --reporter=json --outputFile="${lts_results}" "${project_args[@]}" || lts_status=$?
fi

summary "tests (node $(node --version))" "${results}"
if [[ -s "${lts_results}" ]]; then summary "tests (node LTS, ${lts_projects})" "${lts_results}"; fi
((status != 0)) && exit "${status}"
exit "${lts_status}"
