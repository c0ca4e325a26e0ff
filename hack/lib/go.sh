# shellcheck shell=bash
# Sourced by the hack/ scripts that build from Go modules.

# require_go WHO [WHY]: makes `go` callable (adding /usr/local/go/bin to PATH when only it has Go)
# or exits with WHO's message. Builds resolve their toolchain as go.mod asks (GOTOOLCHAIN=auto).
require_go() {
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH="${PATH}:/usr/local/go/bin"
  fi
  command -v go >/dev/null || { echo "$1: Go is required${2:+ $2} (not found in PATH)" >&2; exit 1; }
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
}

# cached_or_locked WHO LOCK RESULT CHECK...: when CHECK succeeds, prints RESULT and exits (a warm
# cache answers at once); otherwise takes LOCK on fd 9, waiting while another run builds the same
# thing, and checks again, so two concurrent runs never build one output twice. Returns holding
# the lock when the caller has to build.
cached_or_locked() {
  local who="$1" lock="$2" result="$3"
  shift 3
  if "$@"; then echo "${result}"; exit 0; fi
  mkdir -p "$(dirname "${lock}")"
  exec 9>"${lock}"
  if ! flock -n 9; then
    echo "${who}: another build is running; waiting for it" >&2
    flock 9
  fi
  if "$@"; then echo "${result}"; exit 0; fi
}
