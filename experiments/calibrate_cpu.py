"""Time this CPU engine's ops on this machine and write the simulator's ``cpu`` op table.

    python experiments/calibrate_cpu.py [--threads 2] [--out swiftllm/sim/op_tables/cpu_smollm2-135m.json]
                                        [--swap-only]

Times, on the embedded model's real weights: a decoder layer outside attention at FP / INT8 / INT4 by token count,
decode and prefill attention (fitted), the LM head by sampled rows; this machine's read, checksum and swap-copy (under
decode load) speeds; then replays the default synthetic burst online under the paper's policies (configs/figure.yaml)
and static INT8 (so that every precision runs) and fits each step's period as
``sum_p layer_scale[p] * layers at p + other ops + step + per_sequence * D`` (experiments/calibration/step_fit.py).
About 17 minutes on the 2-core machine; run it with nothing else running. ``--swap-only`` re-times only the swap
copy and checksum speeds (half a minute; after a change to the swap path) and keeps the rest of the table: its op
times, their fit and the read bandwidth measured beside them. The simulator's fidelity against real replays is
measured by ``experiments/validate_sim.py``.
"""
import argparse
import dataclasses
import datetime
import json
import logging
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

from experiments.calibration.machine import checksum_gbs, read_gbs, swap_copy_gbs_under_load
from experiments.calibration.op_timing import (
    HEAD_ROWS, LAYER_TOKENS, fit_decode_attention, fit_prefill_attention, head_seconds, layer_seconds,
    layers_by_precision,
)
from experiments.calibration.step_fit import fit_overhead, record_steps
from experiments.replay.config import ReplayConfig
from experiments.replay.figures import paper_policies
from experiments.replay.policy import attach_policy
from experiments.replay.run import build_engine, random_token_range
from experiments.workload import build_workload, load_workload_trace
from morph.policy_presets import load_policy
from morph.runtime import MorphConfig, attach_morph
from swiftllm.sim.cost_model import CostModel
from swiftllm.sim.cpu_ops import SHAPE_FIELDS, CpuOps, CpuOpTable, load_cpu_op_table
from swiftllm.sim.hardware_config import OP_TABLE_DIR

def time_ops(engine) -> dict:
    cfg, weights = engine.model_config, engine.model_weights
    layers = layers_by_precision(weights, cfg)
    logging.info("timing decoder layers at %s tokens", LAYER_TOKENS)
    layer = {p: tuple(layer_seconds(variant, cfg, t) for t in LAYER_TOKENS) for p, variant in layers.items()}
    logging.info("timing attention and the LM head")
    return {"layer_tokens": LAYER_TOKENS, "layer_seconds": layer, "decode_attention": fit_decode_attention(cfg),
            "prefill_attention": fit_prefill_attention(cfg), "head_rows": HEAD_ROWS,
            "head_seconds": tuple(head_seconds(weights, cfg, rows) for rows in HEAD_ROWS)}


def time_machine(engine) -> dict[str, float]:
    logging.info("timing the read bandwidth")
    return {"read_gbs": read_gbs(), **time_swaps(engine), "threads": torch.get_num_threads()}


def time_swaps(engine) -> dict[str, float]:
    logging.info("timing the checksum and the swap copy under decode load")
    runtime = attach_morph(engine, MorphConfig(policy=None, int4_method="rtn"))
    try:
        copy = swap_copy_gbs_under_load(engine, runtime)
    finally:
        runtime.close()
    return {"checksum_gbs": checksum_gbs(), "copy_gbs": copy}


def fit_steps(ops: dict, model: dict) -> dict:
    """Replay the default burst online under each of the paper's policies and static INT8, and fit the step
    periods."""
    unscaled = {"layer_scale": {p: 1.0 for p in ops["layer_seconds"]}, "step_s": 0.0, "per_sequence_s": 0.0}
    provisional = CpuOpTable(model=model, overhead=unscaled, machine={}, provenance={}, **ops)
    samples = []
    events_dir = tempfile.mkdtemp(prefix="calibration-events-")
    for policy in paper_policies() + ["static_int8"]:
        logging.info("replaying the default burst under %s", policy)
        cfg = ReplayConfig(policy=load_policy(policy), plots=False)
        engine = build_engine(cfg)
        cost = CostModel(CpuOps(provisional, engine.model_config))
        runtime = attach_policy(engine, cfg.policy, cfg.quant, Path(events_dir))
        workload = build_workload(load_workload_trace(cfg.trace), cfg.dataset, engine.tokenizer,
                                  random_token_range(engine))
        try:
            samples += record_steps(engine, workload)
        finally:
            if runtime is not None:
                runtime.close()
    logging.info("fitting %d step periods", len(samples))
    fitted = fit_overhead(samples, cost)
    scales = fitted["layer_scale"]
    if set(scales) != set(ops["layer_seconds"]) or min(scales.values()) <= 0:
        raise RuntimeError(f"the step fit gave no positive layer factor for every precision ({scales}); the op table "
                           "was not written")
    return fitted


def provenance(args) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    flags = " --swap-only" if args.swap_only else ""
    return {"date": datetime.date.today().isoformat(), "commit": commit, "processor": platform.processor(),
            "machine": platform.machine(),
            "command": f"python experiments/calibrate_cpu.py --threads {args.threads}{flags}"}


def retime_swaps(engine, args) -> CpuOpTable:
    """The table at ``args.out`` with its swap copy and checksum speeds timed again; its provenance says which parts
    are from when."""
    table = load_cpu_op_table(args.out)
    return dataclasses.replace(table, machine={**table.machine, **time_swaps(engine)},
                               provenance={**table.provenance, "swap_speeds": provenance(args)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(OP_TABLE_DIR) / "cpu_smollm2-135m.json"))
    parser.add_argument("--swap-only", action="store_true",
                        help="re-time only the swap copy and checksum speeds of the table at --out, keeping the rest")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    engine = build_engine(ReplayConfig(plots=False))
    if args.swap_only:
        table = retime_swaps(engine, args)
    else:
        model = {"name": engine.model_config.name, **{f: getattr(engine.model_config, f) for f in SHAPE_FIELDS}}
        ops = time_ops(engine)
        table = CpuOpTable(model=model, overhead=fit_steps(ops, model), machine=time_machine(engine),
                           provenance=provenance(args), **ops)
    Path(args.out).write_text(json.dumps(table.to_json(), indent=1) + "\n")
    print(json.dumps({"overhead": table.overhead, "machine": table.machine}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
