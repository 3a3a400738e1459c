"""The simulator's error against the real engine on this CPU: the same replays on ``backend=real`` (twice, for the
real engine's own run-to-run spread) and ``backend=sim hardware=cpu``.

    python experiments/validate_sim.py [--windows azure_code azure_conv synthetic_burst]
                                       [--policies <presets; default: the paper's four, configs/figure.yaml>]
                                       [--out results/validate_sim] [--reuse] [--real-runs 2]

For every window x policy and figure (P50 / P95 TTFT, mean / P99 TPOT, output throughput, peak KV capacity, morph
transitions) it prints the two real runs, their spread, the simulation and its error against the real runs' mean;
then the mean absolute error over all figures. Writes ``validate_sim.{csv,json}``.

This virtual machine's speed drifts by 20 % and more over minutes and hours (steal time, memory bandwidth), and the
real engine's with it, and not equally for every precision (FP layers stream their weights; INT4 and INT8 layers
spend more of their time unpacking). Beside each real run the script times the op the table is mostly made of, a
decoder layer over ``PROBE_TOKENS`` rows at each precision (``layer_seconds``, as the calibration timed it; before
and after the replay), and simulates each window and policy twice: at the op table's speed, and at the speed probed
beside the real runs: every step time x the FP probe over the table's FP layer (``hardware.time_scale``), and each
quantized precision's layers x its own probe's ratio over that (``hardware.layer_time_scales``).

The Azure windows need the shared traces (``MORPHSERVE_SHARED``, default ``../shared``). Each real run takes one to
two minutes; ``--reuse`` loads runs already saved under ``--out`` by this same code (the committed sources and their
uncommitted changes) instead of replaying them.
"""
import argparse
import copy
import json
import math
import statistics
from functools import cache
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.calibration.op_timing import layer_seconds, layers_by_precision
from experiments.metrics import format_table, write_report
from experiments.replay.config import ReplayConfig
from experiments.replay.run import ReplayResult, run_replay
from experiments.replay.saved_runs import load_if_current
from experiments.replay.figures import paper_policies, register_schemas
from swiftllm.model_config import LlamaModelConfig
from swiftllm.server.engine import FULL_PRECISION, LAYER_PRECISIONS
from swiftllm.sim.cpu_ops import load_cpu_op_table
from swiftllm.sim.hardware import HardwareSpec, interpolate
from swiftllm.worker.weight import LayerWeights
from swiftllm.worker.weight_loader import load_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FIGURES = ("median_ttft_ms", "p95_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "output_throughput", "peak_kv_blocks",
           "morph_transitions")
WINDOWS = ("azure_code", "azure_conv", "synthetic_burst")
QUANTIZED = LAYER_PRECISIONS[1:]


PROBE_FILE = "speed_probe.json"
PROBE_TOKENS = 16          # rows of the probed layer: a decode batch of this window's size


@cache
def _embedded_layers() -> tuple[dict[str, list[LayerWeights]], LlamaModelConfig]:
    """The embedded model's decoder layers at each precision, as ``calibrate_cpu.py`` times them."""
    cfg, weights = load_model("embedded")
    return layers_by_precision(weights, cfg), cfg


def layer_probe_seconds() -> dict[str, float]:
    """This machine's time now for a decoder layer over ``PROBE_TOKENS`` rows outside attention, per precision."""
    layers, cfg = _embedded_layers()
    return {precision: layer_seconds(variant, cfg, PROBE_TOKENS) for precision, variant in layers.items()}


def table_layer_seconds(hardware: HardwareSpec) -> dict[str, float]:
    """The op table's time for the probed op, per precision."""
    table = load_cpu_op_table(hardware.op_table)
    return {precision: interpolate(table.layer_tokens, seconds, PROBE_TOKENS)
            for precision, seconds in table.layer_seconds.items()}


def probed_scales(probes: list[dict[str, float]], table: dict[str, float]) -> tuple[float, dict[str, float]]:
    """``hardware.time_scale`` (the real runs' mean FP probe over the table's FP layer) and
    ``hardware.layer_time_scales`` (each quantized precision's mean probe over its table time, relative to that)."""
    ratio = {precision: statistics.fmean(p[precision] for p in probes) / table[precision] for precision in probes[0]}
    time_scale = ratio[FULL_PRECISION]
    return time_scale, {precision: r / time_scale for precision, r in ratio.items() if precision != FULL_PRECISION}


def replay_config(window: str, policy: str, backend: str, out_dir: Path, time_scale: float = 1.0,
                  layer_time_scales: dict[str, float] | None = None) -> ReplayConfig:
    layer_scales = [f"hardware.layer_time_scales.{precision}={scale}"
                    for precision, scale in (layer_time_scales or {}).items()]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        raw = compose("config", overrides=[f"trace={window}", f"policy={policy}", f"backend={backend}", "dataset=random",
                                           "plots=false", f"output_dir={out_dir}", f"hardware.time_scale={time_scale}",
                                           *layer_scales])
    return OmegaConf.to_object(raw)


def probed_real_run(cfg: ReplayConfig, reuse: bool) -> tuple[dict, dict[str, float] | None]:
    """A real run's figures and the probed layer times beside it (s per precision, the mean of a probe before and
    after the replay, kept in the run's folder; None for a reused run saved without them)."""
    probe_path = Path(cfg.output_dir) / PROBE_FILE
    saved = load_if_current(cfg) if reuse else None
    if saved is not None:
        probe = json.loads(probe_path.read_text())["layer_seconds"] if probe_path.exists() else None
        return saved.row, probe
    before = layer_probe_seconds()
    result = run_replay(copy.deepcopy(cfg))
    after = layer_probe_seconds()
    probe = {precision: statistics.fmean([before[precision], after[precision]]) for precision in before}
    probe_path.write_text(json.dumps({"layer_seconds": probe, "tokens": PROBE_TOKENS}) + "\n")
    return result.row, probe


def replay_or_reuse(cfg: ReplayConfig, reuse: bool) -> ReplayResult:
    """A new replay into ``cfg.output_dir``, or with ``reuse`` the one saved there if this code made it."""
    saved = load_if_current(cfg) if reuse else None
    return saved or run_replay(copy.deepcopy(cfg))


def compare(real: list[dict], sim: dict, probed: dict | None = None, time_scale: float = float("nan"),
            layer_time_scales: dict[str, float] | None = None) -> list[dict]:
    """One row per figure: the real values, their spread and the simulation's error against their mean (in %); with
    ``probed`` (the simulation at ``time_scale`` and ``layer_time_scales``, the speed probed beside the real runs) its
    value and error too (NaN without)."""
    scales = {f"{precision}_layer_scale": (layer_time_scales or {}).get(precision, float("nan"))
              for precision in QUANTIZED}
    rows = []
    for figure in FIGURES:
        values = [r[figure] for r in real]
        mean = statistics.fmean(values)
        spread = 100 * (max(values) - min(values)) / abs(mean) if mean else 0.0
        probed_value = probed[figure] if probed is not None else float("nan")
        rows.append({"figure": figure, **{f"real_{i + 1}": v for i, v in enumerate(values)}, "real_spread_pct": spread,
                     "sim": sim[figure], "error_pct": _error_pct(sim[figure], mean), "time_scale": time_scale,
                     **scales, "sim_probed": probed_value,
                     "error_probed_pct": _error_pct(probed_value, mean) if probed is not None else float("nan")})
    return rows


def _error_pct(value: float, mean: float) -> float:
    if mean:
        return 100 * (value - mean) / abs(mean)
    return 0.0 if value == 0 else float("inf")


def error_summary(errors: list[float], prefix: str) -> dict:
    """Mean and max absolute error and the count within 10 %, over the errors that were measured (not NaN)."""
    measured = [abs(e) for e in errors if not math.isnan(e)]
    if not measured:
        return {f"{prefix}mean_abs_error_pct": float("nan")}
    return {f"{prefix}mean_abs_error_pct": statistics.fmean(measured), f"{prefix}max_abs_error_pct": max(measured),
            f"{prefix}within_10_pct": sum(e <= 10 for e in measured)}


def validate(window: str, policy: str, base: Path, real_runs: int, reuse: bool) -> list[dict]:
    """``compare``'s rows for one window and policy: the real runs with their speed probes, the simulation at the op
    table's speed and at the probed one."""
    runs = [probed_real_run(replay_config(window, policy, "real", base / f"real-{i}"), reuse)
            for i in range(1, real_runs + 1)]
    real, probes = [row for row, _ in runs], [probe for _, probe in runs]
    sim_cfg = replay_config(window, policy, "sim", base / "sim")
    sim = replay_or_reuse(sim_cfg, reuse).row
    if None in probes:
        return compare(real, sim)
    time_scale, layer_scales = probed_scales(probes, table_layer_seconds(sim_cfg.hardware.spec()))
    probed_cfg = replay_config(window, policy, "sim", base / "sim-probed", time_scale, layer_scales)
    return compare(real, sim, replay_or_reuse(probed_cfg, reuse).row, time_scale, layer_scales)


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
    rows = [{"window": window, "policy": policy, **row} for window in args.windows for policy in args.policies
            for row in validate(window, policy, Path(args.out) / window / policy, args.real_runs, args.reuse)]
    real_columns = tuple(f"real_{i}" for i in range(1, args.real_runs + 1))
    print(format_table(rows, ("window", "policy", "figure", *real_columns, "real_spread_pct", "sim", "error_pct",
                              "time_scale", "int8_layer_scale", "int4_layer_scale", "sim_probed", "error_probed_pct")))
    summary = {"figures": len(rows), **error_summary([r["error_pct"] for r in rows], ""),
               **error_summary([r["error_probed_pct"] for r in rows], "probed_")}
    print(json.dumps(summary, indent=1))
    files = write_report(rows + [{"window": "all", **summary}], args.out, stem="validate_sim")
    print(f"wrote {files.csv} and {files.json}")


if __name__ == "__main__":
    main()
