"""The simulator against a real GPU: each point ``benchmarks/bench_gpu.py`` measured, predicted by the simulator's
cost model for the same model on a hardware config, with the prediction error beside it.

    python benchmarks/sim_vs_gpu.py docs/gpu_runs/2026-11-29-h200.json --hardware configs/hardware/h200.yaml

Decode steps and prefill go through ``CostModel.step_time`` (the simulator's worker), layer copies through the host
link and checksum speeds the simulated swapper uses. Error = predicted / measured - 1. The simulator has no term for
growing or shrinking the KV pool (it moves no memory then), so those points are not compared.
"""
import argparse
import json
import sys

import torch
import yaml

from swiftllm.model_presets import preset_config
from swiftllm.sampling_params import SamplingParams
from swiftllm.sim.cost_model import CostModel, RooflineOps
from swiftllm.sim.hardware import GB, HardwareSpec
from swiftllm.sim.hardware_config import load_hardware
from swiftllm.sim.model_bytes import meta_layer, meta_variant, slot_bytes
from swiftllm.worker.batch import SequenceChunk, WorkerBatch
from swiftllm.worker.random_weights import RandomModelSpec

GREEDY = SamplingParams(temperature=0)


def load_hardware_yaml(path: str) -> HardwareSpec:
    with open(path) as f:
        values = yaml.safe_load(f)
    values.pop("num_threads", None)             # the replay's thread count, not a machine speed
    return load_hardware(values)


def decode_batch(batch: int, context: int) -> WorkerBatch:
    """``batch`` decode rows, each the last token of a ``context``-token sequence."""
    return WorkerBatch([SequenceChunk(f"s{i}", [0], context - 1, [], GREEDY) for i in range(batch)])


def prefill_batch(tokens: int) -> WorkerBatch:
    return WorkerBatch([SequenceChunk("p", [0] * tokens, 0, [], GREEDY)])


def comparisons(measured: dict, hardware: HardwareSpec) -> list[dict]:
    """One row per measured point: what, measured ms, predicted ms, error."""
    model, dtype = measured["model"].split()
    spec = RandomModelSpec.parse(model)
    cfg = preset_config(spec.preset, spec.num_layers)
    cost = CostModel(RooflineOps(hardware, cfg))
    rows = []

    def row(what: str, measured_ms: float, predicted_s: float) -> None:
        predicted_ms = predicted_s * 1e3
        rows.append({"point": what, "measured_ms": measured_ms, "predicted_ms": predicted_ms,
                     "error": predicted_ms / measured_ms - 1})

    for point in measured["decode"]:
        batch = decode_batch(point["batch"], point["context"])
        row(f"decode {point['precision']} batch {point['batch']} ctx {point['context']}", point["step_ms"],
            cost.step_time(batch, [point["precision"]] * cfg.num_layers))
    for point in measured["prefill"]:
        row(f"prefill {point['precision']} {point['tokens']} tokens", point["seconds"] * 1e3,
            cost.step_time(prefill_batch(point["tokens"]), [point["precision"]] * cfg.num_layers))
    layer = meta_layer(cfg, getattr(torch, dtype))
    fp_bytes = slot_bytes(layer)
    int4_bytes = slot_bytes(meta_variant(layer, "int4", 128, "cuda"))
    swap = measured["swap"]
    row("swap copy FP->INT4 per layer", _median(swap["fp_to_int4_copy_ms"]), int4_bytes / (hardware.host_link_gbs * GB))
    row("swap copy INT4->FP per layer", _median(swap["int4_to_fp_copy_ms"]), fp_bytes / (hardware.host_link_gbs * GB))
    row("swap verify INT4 variant per layer", _median(swap["fp_to_int4_verify_ms"]),
        int4_bytes / (hardware.checksum_gbs * GB))
    return rows


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def print_table(rows: list[dict], title: str) -> None:
    print(f"| {title} | measured ms | predicted ms | error |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['point']} | {r['measured_ms']:.2f} | {r['predicted_ms']:.2f} | {r['error']:+.0%} |")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench_json", help="a benchmarks/bench_gpu.py result (its --json output)")
    parser.add_argument("--hardware", default="configs/hardware/h200.yaml", help="the hardware config to predict with")
    args = parser.parse_args(argv)
    try:
        with open(args.bench_json) as f:
            measured = json.load(f)
    except FileNotFoundError:
        sys.exit(f"no GPU benchmark result at {args.bench_json}: run benchmarks/bench_gpu.py on a GPU first")
    rows = comparisons(measured, load_hardware_yaml(args.hardware))
    print_table(rows, f"{measured['device']}, {measured['model']}")
    return rows


if __name__ == "__main__":
    main()
