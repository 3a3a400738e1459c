"""The simulator's error against the real engine on this CPU: the same replays on ``backend=real`` (twice, for the
real engine's own run-to-run spread) and ``backend=sim hardware=cpu``.

    python experiments/validate_sim.py [--windows azure_code azure_conv synthetic_burst]
                                       [--policies <presets; default: the paper's four, configs/figure.yaml>]
                                       [--out results/validate_sim] [--reuse] [--real-runs 2]

For every window x policy and figure (P50 / P95 TTFT, mean / P99 TPOT, output throughput, peak KV capacity, morph
transitions) it prints the two real runs, their spread, the simulation and its error against the real runs' mean;
then the mean absolute error over all figures. Writes ``validate_sim.{csv,json}``. The Azure windows need the
shared traces (``MORPHSERVE_SHARED``, default ``../shared``). Each real run takes one to two minutes; ``--reuse``
loads runs already saved under ``--out`` by this same code (the committed sources and their uncommitted changes)
instead of replaying them.
"""
import argparse
import copy
import json
import statistics
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.metrics import format_table, write_report
from experiments.replay.config import ReplayConfig
from experiments.replay.run import ReplayResult, run_replay
from experiments.replay.saved_runs import load_if_current
from experiments.replay.figures import paper_policies, register_schemas

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FIGURES = ("median_ttft_ms", "p95_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "output_throughput", "peak_kv_blocks",
           "morph_transitions")
WINDOWS = ("azure_code", "azure_conv", "synthetic_burst")


def replay_config(window: str, policy: str, backend: str, out_dir: Path) -> ReplayConfig:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        raw = compose("config", overrides=[f"trace={window}", f"policy={policy}", f"backend={backend}", "dataset=random",
                                           "plots=false", f"output_dir={out_dir}"])
    return OmegaConf.to_object(raw)


def replay_or_reuse(cfg: ReplayConfig, reuse: bool) -> ReplayResult:
    """A new replay into ``cfg.output_dir``, or with ``reuse`` the one saved there if this code made it."""
    saved = load_if_current(cfg) if reuse else None
    return saved or run_replay(copy.deepcopy(cfg))


def compare(real: list[dict], sim: dict) -> list[dict]:
    """One row per figure: both real values, their spread and the simulation's error against their mean (in %)."""
    rows = []
    for figure in FIGURES:
        values = [r[figure] for r in real]
        mean = statistics.fmean(values)
        spread = 100 * (max(values) - min(values)) / abs(mean) if mean else 0.0
        error = 100 * (sim[figure] - mean) / abs(mean) if mean else (0.0 if sim[figure] == 0 else float("inf"))
        rows.append({"figure": figure, **{f"real_{i + 1}": v for i, v in enumerate(values)}, "real_spread_pct": spread,
                     "sim": sim[figure], "error_pct": error})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", nargs="+", default=list(WINDOWS))
    parser.add_argument("--policies", nargs="+", default=paper_policies())
    parser.add_argument("--out", default="results/validate_sim")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--real-runs", type=int, default=2, help="real runs per window and policy (>= 2 shows the "
                                                                   "real engine's own spread; 1: spread 0)")
    args = parser.parse_args()
    if args.real_runs < 1:
        parser.error(f"--real-runs must be >= 1, got {args.real_runs}")
    register_schemas()
    rows = []
    for window in args.windows:
        for policy in args.policies:
            base = Path(args.out) / window / policy
            real = [replay_or_reuse(replay_config(window, policy, "real", base / f"real-{i}"), args.reuse).row
                    for i in range(1, args.real_runs + 1)]
            sim = replay_or_reuse(replay_config(window, policy, "sim", base / "sim"), args.reuse).row
            rows += [{"window": window, "policy": policy, **row} for row in compare(real, sim)]
    errors = [abs(r["error_pct"]) for r in rows]
    real_columns = tuple(f"real_{i}" for i in range(1, args.real_runs + 1))
    print(format_table(rows, ("window", "policy", "figure", *real_columns, "real_spread_pct", "sim", "error_pct")))
    summary = {"figures": len(rows), "mean_abs_error_pct": statistics.fmean(errors), "max_abs_error_pct": max(errors),
               "within_10_pct": sum(e <= 10 for e in errors)}
    print(json.dumps(summary, indent=1))
    files = write_report(rows + [{"window": "all", **summary}], args.out, stem="validate_sim")
    print(f"wrote {files.csv} and {files.json}")


if __name__ == "__main__":
    main()
