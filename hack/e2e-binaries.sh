#!/usr/bin/env bash
# Provides upstream's e2e test binary (e2e.test) and its test image's program (agnhost) of the
# pinned release (hack/versions.env), built from the k8s.io/kubernetes Go module and cached outside
# the repo, plus the pause program (build/pause/linux/pause.c of the same module, built with gcc).
# Prints the directory holding e2e.test, agnhost and pause on its last line. Idempotent.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "${here}/versions.env"
# shellcheck source=hack/lib/k8s-module.sh
source "${here}/lib/k8s-module.sh"

version="${KUBE_VERSION}"
cache_root="${KUBE_PROXY_TS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-proxy-ts}"
out="${cache_root}/k8s/${version}/e2e"
outputs=(e2e.test agnhost pause)

have_all() {
  local b
  for b in "${outputs[@]}"; do [[ -x "${out}/${b}" ]] || return 1; done
}
# shellcheck source=hack/lib/go.sh
source "${here}/lib/go.sh"
cached_or_locked e2e-binaries "${cache_root}/k8s/.lock-e2e-${version}" "${out}" have_all
require_go e2e-binaries
command -v gcc >/dev/null || { echo "e2e-binaries: gcc is required to build pause" >&2; exit 1; }

# The Go module proxy refuses k8s.io/sample-apiserver v0.33.10-.13 ("not available"); only the
# aggregator test uses it, and any v0.33 release compiles with the rest.
sample_apiserver="${KUBE_E2E_SAMPLE_APISERVER:-v0.33.5}"

work="${cache_root}/k8s/build-e2e-${version}"
mkdir -p "${work}" "${out}"
cd "${work}"
export GOFLAGS="-mod=mod"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

if [[ ! -f go.sum ]]; then
  k8s_write_gomod go.mod kube-proxy-ts/k8s-e2e-build "${version}" "sample-apiserver=${sample_apiserver}" ||
    { echo "e2e-binaries: no go.mod for ${version}" >&2; exit 1; }
  cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/test/e2e"
	_ "k8s.io/kubernetes/test/images/agnhost"
)
GO
  echo "e2e-binaries: resolving modules for ${version} in ${work}" >&2
  go mod tidy -e >&2 2>&1 || go mod download >&2
fi

ldflags="$(k8s_ldflags "${version}")"

if [[ ! -x "${out}/pause" ]]; then
  src="$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  gcc -Os -Wall -Werror -static -DVERSION=v3.10-kube-proxy-ts -o "${out}/pause.tmp" "${src}" >&2
  mv "${out}/pause.tmp" "${out}/pause"
fi
if [[ ! -x "${out}/agnhost" ]]; then
  echo "e2e-binaries: building agnhost ${version} (about 3 min on 2 cores)" >&2
  start=$(date +%s)
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${out}/agnhost.tmp" k8s.io/kubernetes/test/images/agnhost >&2
  mv "${out}/agnhost.tmp" "${out}/agnhost"
  echo "e2e-binaries: agnhost built in $(( $(date +%s) - start ))s" >&2
fi
if [[ ! -x "${out}/e2e.test" ]]; then
  echo "e2e-binaries: building e2e.test ${version} (about 7 min on 2 cores)" >&2
  start=$(date +%s)
  CGO_ENABLED=0 go test -c -trimpath -tags selinux,notest -ldflags "${ldflags}" \
    -o "${out}/e2e.test.tmp" k8s.io/kubernetes/test/e2e >&2
  mv "${out}/e2e.test.tmp" "${out}/e2e.test"
  echo "e2e-binaries: e2e.test built in $(( $(date +%s) - start ))s" >&2
fi
echo "${out}"
