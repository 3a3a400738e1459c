"""Figure 7: empirical CDF of per-request TPOT, one curve per policy, and its numbers: mean, P95 and P99 TPOT of each
policy and their ratios to the baseline's (policy / FP).

    python experiments/fig7_tpot_cdf.py [trace=...] [figure_dir=...]

Writes ``fig7_tpot_cdf.{png,csv}`` and ``fig7_tpot_ratios.{csv,json}`` in ``figure_dir``.
"""
from collections.abc import Sequence
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from experiments.metrics import format_table, write_report
from experiments.plots.figure_files import FigureFiles, new_figure, policy_color, require_data, save_figure
from experiments.replay.comparison import compare
from experiments.replay.figures import register_schemas, run_policies
from experiments.replay.run import tpots_ms

RATIO_COLUMNS = ("policy", "mean_tpot_ms", "p95_tpot_ms", "p99_tpot_ms", "tpot_ratio_mean", "tpot_ratio_p95",
                 "tpot_ratio_p99")


def empirical_cdf(values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values ``[n]`` and the share of values at or below each ``[n]`` ((i + 1) / n)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    return x, np.arange(1, x.size + 1) / x.size


def plot_tpot_cdf(tpots_ms: dict[str, Sequence[float]], out_dir: str | Path, title: str = "",
                  stem: str = "fig7_tpot_cdf") -> FigureFiles:
    """``tpots_ms`` maps policy -> per-request TPOT in ms (``RequestRecord.tpot_s * 1000``)."""
    require_data(tpots_ms, "tpots_ms")
    figure, (axes,) = new_figure()
    rows = []
    for policy, values in tpots_ms.items():
        require_data(values, f"the TPOTs of {policy!r}")
        x, cdf = empirical_cdf(values)
        axes.step(x, cdf, where="post", color=policy_color(policy), label=policy)
        rows += [{"policy": policy, "tpot_ms": float(t), "cdf": float(c)} for t, c in zip(x, cdf)]
    axes.set(xlabel="TPOT (ms)", ylabel="CDF", ylim=(0, 1.02), title=title)
    axes.legend(fontsize="small")
    return save_figure(figure, rows, out_dir, stem)


register_schemas()


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    results = run_policies(cfg)
    files = plot_tpot_cdf({p: tpots_ms(r.records) for p, r in results.items()}, Path(cfg.figure_dir))
    print(f"wrote {files.png} and {files.csv}")
    if cfg.baseline in results:
        rows = [{c: row.get(c) for c in RATIO_COLUMNS}
                for row in compare(results, cfg.baseline, simulated=cfg.backend.simulated)]
        print(format_table(rows, RATIO_COLUMNS))
        ratios = write_report(rows, cfg.figure_dir, stem="fig7_tpot_ratios")
        print(f"wrote {ratios.csv}")


if __name__ == "__main__":
    main()
