# Sourced by the reproduction scripts: SHARED (default ../shared) must hold the named files; the trace and dataset
# configs then read their paths from MORPHSERVE_SHARED.
SHARED=${SHARED:-../shared}
require_shared() {
  for f in "$@"; do
    [ -f "$SHARED/$f" ] || { echo "missing $SHARED/$f: set SHARED to the folder with traces/ and datasets/ (see README, Data)"; exit 1; }
  done
  export MORPHSERVE_SHARED="$SHARED"
}
