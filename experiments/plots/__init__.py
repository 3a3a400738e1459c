"""Paper figures, one module each; every figure is written as PNG plus the CSV of the plotted data."""
from experiments.plots.figure_files import FigureFiles
from experiments.plots.fig4_pareto import ParetoPoint, pareto_frontier, plot_pareto
from experiments.plots.fig5_kv_capacity import plot_kv_capacity
from experiments.plots.fig6_rate_sweep import RateSweepPoint, plot_rate_sweep
from experiments.plots.fig7_tpot_cdf import empirical_cdf, plot_tpot_cdf

__all__ = [
    "FigureFiles", "ParetoPoint", "RateSweepPoint", "empirical_cdf", "pareto_frontier", "plot_kv_capacity",
    "plot_pareto", "plot_rate_sweep", "plot_tpot_cdf",
]
