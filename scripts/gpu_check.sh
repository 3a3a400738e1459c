#!/usr/bin/env bash
# The GPU check of issue 13, in one go: build the CUDA extension, link it, run tests/gpu, run
# benchmarks/bench_gpu.py. At most ~8 minutes, stage by stage with a timeout each (a stage gets what is left of
# the budget); every stage's log, the tests' JUnit XML, the benchmark's JSON and summary.json go to $OUT.
#
# How to run it on the project's GPU machine (the `device` tool; one H200, its own python3 with a CUDA torch,
# triton, transformers, pytest and pytest-timeout, no package index): first, here, `bash scripts/gpu_wheels.sh`
# builds into .whl/ the few pure-Python packages that machine lacks (scripts/gpu_wheels.txt); carry that folder.
# The script builds the C++/CUDA extension there with that machine's nvcc and torch (the .so files built elsewhere
# are for another Python and torch, and are git-ignored, so they do not travel). The call:
#     run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=560)
# The reply's output tail ends with the benchmark table and the summary; files_at holds $OUT's files
# (summary.json, env.log, imports.log, build.log, tests.log, tests.xml, bench.log, bench.json). Give the machine back
# after.
#
# Elsewhere: OUT=/a/folder bash scripts/gpu_check.sh (default OUT: ./gpu_check_out). Without a CUDA GPU it says
# so and exits with status 2.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
OUT="${OUT:-$PWD/gpu_check_out}"
BUDGET_SECONDS=470

if ! python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  cat >&2 <<'MESSAGE'
scripts/gpu_check.sh needs a CUDA GPU: this machine's python3 has no torch that sees one.
Run it on a GPU machine, from the repository root: bash scripts/gpu_check.sh (logs and summary.json in $OUT).
From a session with the device tool: bash scripts/gpu_wheels.sh here, then
run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=560) (the script builds the extension there);
then give the machine back.
MESSAGE
  exit 2
fi

mkdir -p "$OUT"
STAGES="$OUT/.stages.tsv"
: > "$STAGES"
FAILED=0

if compgen -G ".whl/*.whl" > /dev/null; then
  CARRIED_SITE=$(mktemp -d)
  python3 -m pip install --quiet --no-index --no-deps --no-compile --target "$CARRIED_SITE" .whl/*.whl ||
    { echo "installing the carried wheels (.whl/) failed: rebuild them with bash scripts/gpu_wheels.sh" >&2; exit 1; }
  export PYTHONPATH="$PYTHONPATH:$CARRIED_SITE"
fi
MISSING_PACKAGE_HINT='If a package is missing (ModuleNotFoundError above) and this machine has no package index, build
its wheel where pip reaches one (bash scripts/gpu_wheels.sh; add the package to scripts/gpu_wheels.txt first if it
is not there) and carry .whl: run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=560).'

# run_stage NAME MAX_SECONDS COMMAND: runs COMMAND with bash under a timeout of MAX_SECONDS or what is left of the
# budget, logging to $OUT/NAME.log; records name, status, exit code and seconds.
run_stage() {
  local name=$1 max=$2 command=$3
  local left=$((BUDGET_SECONDS - SECONDS))
  local limit=$((max < left ? max : left))
  if ((limit < 15)); then
    printf '%s\tskipped: no time left\t-\t0\n' "$name" >> "$STAGES"
    echo "== $name: skipped, the budget of ${BUDGET_SECONDS} s is spent"
    FAILED=1
    return 1
  fi
  echo "== $name (at most ${limit} s)"
  local start=$SECONDS
  timeout --signal=TERM --kill-after=10 "$limit" bash -c "$command" > "$OUT/$name.log" 2>&1
  local rc=$?
  local status=ok
  if ((rc == 124 || rc == 137)); then status="timed out after ${limit} s"; elif ((rc != 0)); then status=failed; fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$((SECONDS - start))" >> "$STAGES"
  echo "   $status in $((SECONDS - start)) s (exit $rc)"
  if [[ $status != ok ]]; then
    tail -n 25 "$OUT/$name.log"
    FAILED=1
    return 1
  fi
}

run_stage env 30 'nvidia-smi; python3 -c "import sys, torch, triton; print(sys.version); print(torch.__version__, torch.version.cuda, triton.__version__, torch.cuda.get_device_name(0))"; which nvcc && nvcc --version; python3 -c "from torch.utils.cpp_extension import CUDA_HOME; print(\"CUDA_HOME\", CUDA_HOME)"; ls -l "$(python3 -c "from torch.utils.cpp_extension import CUDA_HOME; print(CUDA_HOME)")"/lib64/stubs; ldconfig -p | grep libcuda; nproc; free -g'

# Collecting tests/gpu imports what the tests and the benchmark import; a missing package stops the check here,
# before the build spends minutes.
if ! run_stage imports 60 'python3 -m pytest --collect-only -q -p no:cacheprovider tests/gpu'; then
  echo "$MISSING_PACKAGE_HINT" | tee -a "$OUT/imports.log"
  for stage in build tests bench; do printf '%s\tskipped: the imports failed\t-\t0\n' "$stage"; done >> "$STAGES"
elif run_stage build 240 'MAX_JOBS=$(nproc) python3 setup.py build_ext --inplace && python3 -c "import swiftllm._arena_cuda, swiftllm._arena_cpu, swiftllm._cpu_kernels; print(\"extensions import\")"'; then
  run_stage tests 240 "python3 -m pytest -q -rs -p no:cacheprovider --timeout 150 --junitxml '$OUT/tests.xml' tests/gpu 'tests/test_cuda_sources.py::test_the_device_arena_links_into_a_shared_library_with_the_setup_flags'"
  run_stage bench 200 "python3 benchmarks/bench_gpu.py --json '$OUT/bench.json'"
else
  printf 'tests\tskipped: the build failed\t-\t0\nbench\tskipped: the build failed\t-\t0\n' >> "$STAGES"
fi

python3 - "$STAGES" "$OUT" <<'PY'
import json, os, sys, xml.etree.ElementTree as ElementTree
stages_file, out = sys.argv[1], sys.argv[2]
stages = []
for line in open(stages_file):
    name, status, code, seconds = line.rstrip("\n").split("\t")
    stages.append({"stage": name, "status": status, "exit_code": None if code == "-" else int(code),
                   "seconds": int(seconds), "log": f"{name}.log"})
summary = {"stages": stages, "ok": all(s["status"] == "ok" for s in stages)}
junit = os.path.join(out, "tests.xml")
if os.path.exists(junit):
    suite = ElementTree.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["failed"] = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
                        if case.find("failure") is not None or case.find("error") is not None]
    summary["tests"] = counts
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
print(json.dumps(summary, indent=1))
PY
rm -f "$STAGES"
if [[ -f "$OUT/bench.log" ]]; then
  echo "== benchmark table"
  grep -A 40 -m 1 '  torch ' "$OUT/bench.log"
fi
exit $FAILED
