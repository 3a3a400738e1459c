"""Bar panels of per-policy numbers side by side (Figure 6's saturation point, the section-4 summary figures)."""
from collections.abc import Sequence
from pathlib import Path

from experiments.metrics.report import Row
from experiments.plots.figure_files import FigureFiles, new_figure, policy_color, require_data, save_figure


def plot_policy_bars(rows: Sequence[Row], panels: Sequence[tuple[str, str]], out_dir: str | Path, stem: str,
                     title: str = "") -> FigureFiles:
    """One panel per ``(column, axis label)``, one bar per row (labelled by its ``policy``); the CSV holds the rows.
    A row without the column (or with None) gets no bar in that panel."""
    require_data(rows, "rows")
    figure, axes_list = new_figure(num_axes=len(panels), width_in=3.6, height_in=3.6)
    for axes, (column, label) in zip(axes_list, panels):
        shown = [row for row in rows if row.get(column) is not None]
        axes.bar([row["policy"] for row in shown], [row[column] for row in shown],
                 color=[policy_color(row["policy"]) or "tab:gray" for row in shown])
        axes.set(ylabel=label)
        axes.tick_params(axis="x", labelrotation=45, labelsize="small")
    if title:
        figure.suptitle(title)
    return save_figure(figure, rows, out_dir, stem)
