"""Gather a replay sweep (a Hydra multirun folder of ``run_replay.py``) into one table and a Pareto plot.

    python experiments/summarize_sweep.py results/sweeps/<date_time> [--quality auto|rouge_l|f1|agreement|fp_tokens]

One row per job (its folder ``<sweep>/<job number>``): the job's overrides (all, and ``setting``: those that differ
between jobs), then its metrics row, with the comparison
against the baseline when the job had one (``comparison.json``). Writes ``sweep_summary.{csv,json}`` and
``sweep_pareto.{png,csv}`` (P95 TTFT against quality, one point per job, the Pareto frontier) into the sweep folder.
Quality (``auto``): Rouge-L when every job scored an eval set; else the token agreement with the baseline's outputs
when every job had a baseline on the real engine; else the share of output tokens made at full precision, labelled
as such (on ``backend=sim`` the only measure: a simulated model writes no text).
"""
import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

from experiments.fig4_pareto import ParetoPoint, plot_pareto
from experiments.metrics import format_table, write_report

QUALITY = {
    "rouge_l": ("rouge_l", "Rouge-L"),
    "f1": ("f1", "F1"),
    "agreement": ("mean_prefix_agreement", "token agreement with the baseline's outputs"),
    "fp_tokens": ("share_tokens_fp", "share of output tokens at full precision"),
}
COLUMNS = ("job", "setting", "policy", "p95_ttft_ms", "ttft_slo_violation_rate", "output_throughput",
           "share_tokens_quantized", "rouge_l", "f1", "mean_prefix_agreement", "peak_kv_blocks", "swap_order")


def summarize(sweep_dir: Path, quality: str = "auto") -> list[dict]:
    """The table's rows, job order; writes the table and the Pareto plot into ``sweep_dir``."""
    rows = [job_row(job_dir) for job_dir in job_dirs(sweep_dir)]
    if not rows:
        raise ValueError(f"{sweep_dir} holds no finished job (<job number>/metrics.json with .hydra/overrides.yaml)")
    for row, setting in zip(rows, job_labels(rows)):
        row["setting"] = setting
    key, label = choose_quality(rows, quality)
    if all(row["backend"] == "sim" for row in rows) and key == "share_tokens_fp":
        label += "\n(simulated: no text)"
    write_report(rows, sweep_dir, stem="sweep_summary")
    points = [ParetoPoint(row["setting"], row["p95_ttft_ms"], row[key]) for row in rows]
    plot_pareto(points, sweep_dir, quality_name=label, title=sweep_dir.name, stem="sweep_pareto")
    return rows


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The finished jobs' folders, by job number."""
    jobs = [path for path in sweep_dir.iterdir() if path.name.isdigit() and (path / "metrics.json").is_file()]
    return sorted(jobs, key=lambda path: int(path.name))


def job_row(job_dir: Path) -> dict:
    """The job's overrides and backend, its metrics, and its row of the comparison with the baseline if any."""
    overrides = list(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))
    backend = OmegaConf.load(job_dir / ".hydra" / "config.yaml").backend.kind
    [row] = json.loads((job_dir / "metrics.json").read_text())
    comparison = job_dir / "comparison.json"
    if comparison.is_file():
        row = json.loads(comparison.read_text())[-1]       # the baseline first, then this job's policy
    return {"job": int(job_dir.name), "overrides": " ".join(overrides), "backend": backend, **row,
            "share_tokens_fp": 1 - row["share_tokens_quantized"]}


def choose_quality(rows: list[dict], quality: str) -> tuple[str, str]:
    """The column and axis label of the quality measure (see the module docstring for ``auto``)."""
    if quality != "auto":
        key, label = QUALITY[quality]
        missing = [row["job"] for row in rows if row.get(key) is None]
        if missing:
            raise ValueError(f"jobs {missing} have no {key}: choose another --quality")
        return key, label
    for name in ("rouge_l", "agreement"):
        key, label = QUALITY[name]
        if all(row.get(key) is not None for row in rows):
            return key, label
    return QUALITY["fp_tokens"]


def job_labels(rows: list[dict]) -> list[str]:
    """Each job's overrides that differ between jobs, each as its last key and value (``policy=x`` as ``x``)."""
    settings = [dict(override.partition("=")[::2] for override in row["overrides"].split()) for row in rows]
    varying = [key for key in dict.fromkeys(k for s in settings for k in s) if len({s.get(key) for s in settings}) > 1]
    return [" ".join(setting.get(key, "-") if key == "policy" else f"{key.rpartition('.')[2]}={setting.get(key, '-')}"
                     for key in varying) or row["policy"] for setting, row in zip(settings, rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--quality", choices=("auto", *QUALITY), default="auto")
    args = parser.parse_args()
    rows = summarize(args.sweep_dir, args.quality)
    print(format_table(rows, COLUMNS))
    print(f"wrote {args.sweep_dir / 'sweep_summary.csv'}, .json and {args.sweep_dir / 'sweep_pareto.png'}, .csv")


if __name__ == "__main__":
    main()
