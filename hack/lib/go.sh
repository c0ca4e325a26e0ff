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
