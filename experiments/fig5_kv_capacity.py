"""Figure 5: KV-cache blocks over time per policy: usage (solid) and capacity (dashed), the full-precision
capacity as the limit line (red).

    python experiments/fig5_kv_capacity.py [trace=...] [figure_dir=...]
"""
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.metrics.timeline import Timeline
from experiments.plots.figure_files import (
    FP_LIMIT_COLOR, FigureFiles, new_figure, policy_color, require_data, save_figure,
)
from experiments.replay.figures import register_schemas, run_policies

KV_SERIES = ("kv_blocks_used", "kv_blocks_capacity")


def plot_kv_capacity(timelines: dict[str, Timeline], fp_capacity_blocks: float, out_dir: str | Path,
                     title: str = "", stem: str = "fig5_kv_capacity") -> FigureFiles:
    """``timelines`` maps policy -> timeline with ``kv_blocks_used`` and ``kv_blocks_capacity`` (resampled)."""
    require_data(timelines, "timelines")
    figure, (axes,) = new_figure(width_in=8.0)
    rows = []
    for policy, timeline in timelines.items():
        _check_series(policy, timeline)
        color = policy_color(policy)
        used_line, = axes.plot(timeline.times_s, timeline.series["kv_blocks_used"], color=color, label=f"{policy} used")
        axes.plot(timeline.times_s, timeline.series["kv_blocks_capacity"], color=used_line.get_color(), ls="--",
                  lw=1, label=f"{policy} capacity")
        rows += [{"policy": policy, **row} for row in _kv_rows(timeline)]
    axes.axhline(fp_capacity_blocks, color=FP_LIMIT_COLOR, lw=1.5, label="full-precision capacity")
    axes.set(xlabel="time (s)", ylabel="KV cache blocks", title=title)
    figure.legend(loc="outside right upper", fontsize="small")
    return save_figure(figure, rows, out_dir, stem)


def _kv_rows(timeline: Timeline) -> list[dict[str, float]]:
    return [{key: row[key] for key in ("time_s", *KV_SERIES)} for row in timeline.rows()]


def _check_series(policy: str, timeline: Timeline) -> None:
    missing = [name for name in KV_SERIES if name not in timeline.series]
    if missing:
        raise ValueError(f"timeline of policy {policy!r} lacks series {missing}")


register_schemas()


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    results = run_policies(cfg)
    fp_blocks = next(iter(results.values())).fp_kv_blocks
    files = plot_kv_capacity({p: r.timeline for p, r in results.items()}, fp_blocks, Path(cfg.figure_dir))
    print(f"wrote {files.png} and {files.csv}")


if __name__ == "__main__":
    main()
