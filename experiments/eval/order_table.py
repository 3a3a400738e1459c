"""Table 1 (paper appendix B.3): WikiText-2 perplexity as the number of INT4 layers grows, per swap order.

Perplexity depends only on which layers are quantized, so each distinct set is evaluated once (k = 0
and k = all are shared by every order), and, with a points file, once across runs. ``random`` is the
mean over one random order per seed.
"""
import hashlib
import logging
import statistics
from pathlib import Path

import torch

from experiments.eval.config import Table1Config, resolve_path
from experiments.eval.orders import resolve_order
from experiments.eval.ppl_points import PerplexityPoints
from experiments.eval.session import EvalSession
from experiments.metrics.report import Row
from experiments.plots.figure_files import FigureFiles, new_figure, save_figure
from morph.profiling import random_order

logger = logging.getLogger(__name__)

ORDER_LABELS = {"front_to_back": "Front-to-Back", "back_to_front": "Back-to-Front", "random": "Random", "lis": "LIS"}


def table1_orders(cfg: Table1Config, num_layers: int) -> dict[str, list[tuple[int, ...]]]:
    """Order name -> the orders it stands for (one per seed for ``random``, else one)."""
    orders = {}
    for name in cfg.orders:
        if name == "lis":
            orders[name] = [resolve_order(cfg.lis_order_file, num_layers)]
        elif name == "random":
            orders[name] = [random_order(num_layers, seed) for seed in cfg.random_seeds]
        else:
            orders[name] = [resolve_order(name, num_layers)]      # a simple order or a profiling JSON file
    return orders


def swap_counts(cfg: Table1Config, num_layers: int) -> list[int]:
    """0, the configured points, and every layer."""
    if max(cfg.counts, default=0) > num_layers:
        raise ValueError(f"counts go up to {max(cfg.counts)}, the model has {num_layers} layers")
    return sorted({0, *cfg.counts, num_layers})


def table1_rows(session: EvalSession, cfg: Table1Config) -> list[Row]:
    """One row per (order, number of INT4 layers): the perplexity (mean, min and max over the order's runs)."""
    orders = table1_orders(cfg, session.num_layers)
    points = PerplexityPoints(None if cfg.points_file is None else resolve_path(cfg.points_file),
                              points_identity(session, cfg.int4_variant))

    def ppl(layers: tuple[int, ...], label: str) -> float:
        value = points.get(layers)
        if value is None:
            value = session.perplexity(session.mixed(cfg.int4_variant, layers), desc=label).ppl
            points.put(layers, value)
            logger.info("%s: ppl %.4f", label, value)
        return value

    rows = []
    for name, runs in orders.items():
        for k in swap_counts(cfg, session.num_layers):
            values = [ppl(order[:k], f"{name} k={k}") for order in runs]
            rows.append({"order": name, "int4_layers": k, "ppl": statistics.fmean(values),
                         "ppl_min": min(values), "ppl_max": max(values), "runs": len(values)})
    return rows


def points_identity(session: EvalSession, int4_variant: str) -> dict:
    """What a perplexity point depends on: model and variant weights, and the test windows."""
    windows = torch.cat(session.test_windows).numpy().tobytes()
    return {"model_hash": session.model_hash, "int4_variant": int4_variant,
            "variant_hash": session.variant_hash(int4_variant), "window_len": session.data.window_len,
            "num_windows": len(session.test_windows), "windows_sha256": hashlib.sha256(windows).hexdigest()}


def markdown_table(rows: list[Row], num_layers: int) -> str:
    """Orders as rows, numbers of INT4 layers as columns (the paper's layout); the best of each column in bold."""
    counts = sorted({row["int4_layers"] for row in rows})
    names = list(dict.fromkeys(row["order"] for row in rows))
    value = {(row["order"], row["int4_layers"]): row for row in rows}
    best = {k: min(value[name, k]["ppl"] for name in names) for k in counts}
    header = [_count_label(k, num_layers) for k in counts]
    lines = ["| Order | " + " | ".join(header) + " |", "|---|" + "---:|" * len(counts)]
    for name in names:
        cells = [_ppl_cell(value[name, k]["ppl"], best[k]) for k in counts]
        lines.append(f"| {_order_label(name, value[name, counts[0]]['runs'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_table1(rows: list[Row], out_dir: str, title: str) -> FigureFiles:
    """Perplexity against the number of INT4 layers, one line per order (random: mean with its min-max band)."""
    figure, (axes,) = new_figure()
    counts = sorted({row["int4_layers"] for row in rows})
    position = {k: i for i, k in enumerate(counts)}
    for name in dict.fromkeys(row["order"] for row in rows):
        own = [row for row in rows if row["order"] == name]
        x = [position[row["int4_layers"]] for row in own]
        (line,) = axes.plot(x, [row["ppl"] for row in own], marker="o", label=_order_label(name, own[0]["runs"]))
        if own[0]["runs"] > 1:
            axes.fill_between(x, [row["ppl_min"] for row in own], [row["ppl_max"] for row in own],
                              color=line.get_color(), alpha=0.2)
    axes.set_xticks(range(len(counts)), [str(k) for k in counts])
    axes.set_xlabel("decoder layers in INT4")
    axes.set_ylabel("WikiText-2 perplexity")
    axes.set_title(title)
    axes.legend()
    return save_figure(figure, rows, out_dir, "table1")


def _count_label(k: int, num_layers: int) -> str:
    return "0 (FP)" if k == 0 else f"{k} (INT4)" if k == num_layers else str(k)


def _order_label(name: str, runs: int) -> str:
    label = ORDER_LABELS.get(name) or Path(name).stem
    return f"{label} (mean of {runs})" if runs > 1 else label


def _ppl_cell(ppl: float, best: float) -> str:
    cell = f"{ppl:.3f}"
    return f"**{cell}**" if f"{ppl:.3f}" == f"{best:.3f}" else cell
