"""The README's sweep through each of Hydra's launchers shipped in configs/hydra/launcher/ (joblib, submitit's local
executor, a local Ray cluster), two jobs each, on the simulator with a few requests; then the sweep summary.
The launchers are the ``cluster`` extra (``pip install -e .[cluster]``), which scripts/setup.sh installs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.summarize_sweep import summarize

REPOSITORY = Path(__file__).resolve().parents[1]
SWEEP = ["-m", "policy=morph_accuracy,morph_performance", "policy.controller.kv_usage_trigger=0.9"]
FEW_SIMULATED_REQUESTS = ["backend=sim", "hardware=l4", "model=llama-2-7b", "engine=gpu", "plots=false",
                          "trace.synthetic.num_requests=6", "trace.synthetic.request_rate=20"]


@pytest.mark.parametrize("launcher", ["parallel", "slurm_local", "ray_local"])
def test_the_sweep_runs_through_each_launcher_and_is_summarized(launcher, tmp_path):
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "experiments/run_replay.py", *SWEEP, *FEW_SIMULATED_REQUESTS,
               f"runs_dir={tmp_path / 'runs'}", f"hydra.sweep.dir={sweep_dir}", f"hydra/launcher={launcher}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = summarize(sweep_dir)
    assert [(row["job"], row["policy"]) for row in rows] == [(0, "morph_accuracy"), (1, "morph_performance")]
    assert all("policy.controller.kv_usage_trigger=0.9" in row["overrides"] for row in rows)
    assert [row["setting"] for row in rows] == ["morph_accuracy", "morph_performance"]
    for job in (0, 1):
        config = json.loads((sweep_dir / str(job) / "result.json").read_text())["metadata"]["policy"]
        assert config["controller"]["kv_usage_trigger"] == 0.9
    assert len(list((tmp_path / "runs").glob("fp-*/result.json"))) == 1      # the shared baseline, replayed once
    assert (sweep_dir / "sweep_summary.csv").is_file() and (sweep_dir / "sweep_pareto.png").stat().st_size > 0
