"""The GPU check imports nothing its machine lacks: only the image's packages and the wheels it is given to carry.

The GPU machine has no package index, so a module-level import of a package outside its image
(scripts/gpu_image_packages.txt) and scripts/gpu_wheels.txt stops the whole check at collection, after minutes of
device time. This runs the check's imports (collecting tests/gpu, and benchmarks/bench_gpu.py's module level) in a
process that refuses every other installed distribution. Imports inside functions are not covered.
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

IMPORTS_UNDER_THE_IMAGE = r"""
import importlib.abc, importlib.metadata, os, runpy, sys

allowed = set(sys.argv[1].split(","))
distributions_of = importlib.metadata.packages_distributions()


def normalized(name):
    return name.lower().replace("_", "-").replace(".", "-")


class RefuseWhatTheImageLacks(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if os.path.exists(top) or os.path.exists(top + ".py"):     # the project's own packages (cwd: its root)
            return None
        distributions = {normalized(d) for d in distributions_of.get(top, [])}
        if distributions and not distributions & allowed:
            raise ModuleNotFoundError(f"{top} (distribution {sorted(distributions)}) is not on the GPU machine",
                                      name=top)
        return None


sys.meta_path.insert(0, RefuseWhatTheImageLacks())
import pytest
collected = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests/gpu"])
runpy.run_path("benchmarks/bench_gpu.py", run_name="bench_gpu_imports")
sys.exit(int(collected))
"""


def requirement_names(path: Path) -> set[str]:
    """Distribution names, normalized, of a file with one name (optionally ``==version``) per line and # comments."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {line.split("==")[0].lower().replace("_", "-").replace(".", "-") for line in lines if line}


def run_the_checks_imports(allowed: set[str]) -> subprocess.CompletedProcess:
    """Collects tests/gpu and runs bench_gpu.py's module level in a process that may import only ``allowed``."""
    return subprocess.run([sys.executable, "-c", IMPORTS_UNDER_THE_IMAGE, ",".join(sorted(allowed))], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ROOT)})


IMAGE = requirement_names(ROOT / "scripts" / "gpu_image_packages.txt")


def test_the_gpu_check_imports_only_the_image_and_the_carried_wheels():
    result = run_the_checks_imports(IMAGE | requirement_names(ROOT / "scripts" / "gpu_wheels.txt"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " tests collected" in result.stdout


def test_without_the_carried_wheels_the_check_would_stop_at_omegaconf():
    result = run_the_checks_imports(IMAGE)
    assert result.returncode != 0 and "omegaconf" in result.stdout + result.stderr
