"""Writing a figure: a PNG and the CSV of exactly the data it shows. Uses the Agg canvas, no pyplot state."""
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from experiments.metrics.report import Row, write_csv

# The paper's palette: full precision blue, static quantization orange, MorphServe greens, FP limit red.
POLICY_COLORS = {
    "fp": "tab:blue", "static_int4": "tab:orange", "static_int8": "tab:brown",
    "morph_accuracy": "darkgreen", "morph_performance": "limegreen", "morph_forecast": "tab:olive",
}
FP_LIMIT_COLOR = "tab:red"


@dataclass(frozen=True, slots=True)
class FigureFiles:
    png: Path
    csv: Path


def new_figure(num_axes: int = 1, width_in: float = 6.0, height_in: float = 4.0,
               stacked: bool = False) -> tuple[Figure, list]:
    """``num_axes`` panels side by side, each ``width_in`` x ``height_in``; ``stacked``: one above the other, sharing
    the x axis."""
    size = (width_in, height_in * num_axes) if stacked else (width_in * num_axes, height_in)
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    if stacked:
        return figure, list(figure.subplots(num_axes, 1, sharex=True, squeeze=False)[:, 0])
    return figure, [figure.add_subplot(1, num_axes, i + 1) for i in range(num_axes)]


def policy_color(policy: str) -> str | None:
    """The paper's color for a known policy; None lets matplotlib pick one for anything else."""
    return POLICY_COLORS.get(policy)


def save_figure(figure: Figure, rows: Sequence[Row], out_dir: str | Path, stem: str) -> FigureFiles:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = FigureFiles(out_dir / f"{stem}.png", out_dir / f"{stem}.csv")
    figure.savefig(files.png, dpi=150)
    write_csv(rows, files.csv)
    return files


def require_data(items: Sequence | dict, what: str) -> None:
    if len(items) == 0:
        raise ValueError(f"nothing to plot: {what} is empty")
