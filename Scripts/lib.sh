# Shared by the scripts in Scripts/: source it, then call `use_eddy NAME`.
# Sets EDDY to the binary to run: $EDDY when given (to measure a particular build), else a fresh release build.
use_eddy() {
  local name=$1 root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [ -z "${EDDY:-}" ]; then
    echo "$name: building release eddy" >&2
    (cd "$root" && swift build -c release --product eddy 2>&1 | tail -n 1 >&2)
    EDDY="$(cd "$root" && swift build -c release --show-bin-path)/eddy"
  fi
  [ -x "$EDDY" ] || { echo "$name: $EDDY is not an executable" >&2; exit 1; }
}
