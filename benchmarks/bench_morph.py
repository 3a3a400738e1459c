"""Morph runtime costs on the embedded SmolLM2-135M: layer swaps, decode stalls, KV resizes.

    python benchmarks/bench_morph.py [--layers 6] [--batch 8] [--steps 40] [--int4-method rtn]
                                     [--variant-cache-dir ~/.cache/morphserve/variants] [--threads N] [--json out.json]

1. Swap latency per layer for each transition of the ladder FP <-> INT8 <-> INT4 and FP <-> INT4:
   checksum verification and slot copy (on a CPU one pass, the copy checking its bytes: verify 0), the whole
   swap as seen by the step loop (plan applied -> layer settled, KV resize included), and the bytes copied.
2. Decode step time of ``--batch`` concurrent requests in steady state vs while a swap is in flight
   (a layer toggles FP <-> INT4 at every boundary without waiting), lowering and raising apart: the
   stall, target < 2%. On CPU the swap's work (the checked copy, and on a raise the page faults that
   bring the released tail back) takes a share of each step on the step loop.
3. Swaps under load: a plan lowering 4 layers to INT4, then raising them back, while ``--batch`` requests
   decode; wall time and decode steps until every swap settled, the time the morph step hook took at those steps'
   boundaries (the swaps' work, the KV resizes and the bookkeeping), and the mean step time over those steps against
   the steady steps just before (the stall; the swaps' work takes a share of each step, ``MorphConfig.swap_step_share``).
4. KV resize latency: growing and shrinking by one layer's worth of blocks, idle and with live
   blocks to move.
Timings are noisy when other processes share the CPU: run it alone for reportable numbers.
"""
import argparse
import json
import statistics
import time

import torch

from morph.plan import MorphPlan, Precision
from morph.runtime import DEFAULT_VARIANT_CACHE, MorphConfig, attach_morph
from swiftllm import EngineConfig, LLMEngine, SamplingParams
from swiftllm.server.block_manager import BlockManager
from swiftllm.server.structs import Request

FP, INT8, INT4 = Precision.FP, Precision.INT8, Precision.INT4
WINDOW = 5
TRANSITIONS = ((FP, INT4), (INT4, FP), (FP, INT8), (INT8, INT4), (INT4, INT8), (INT8, FP))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=6, help="layers swapped one at a time per transition")
    parser.add_argument("--batch", type=int, default=8, help="concurrent decode requests")
    parser.add_argument("--steps", type=int, default=40, help="decode steps per measurement")
    parser.add_argument("--int4-method", default="rtn", choices=("rtn", "awq"))
    parser.add_argument("--calibration-text", default=None, help="AWQ calibration text (WikiText-2 valid)")
    parser.add_argument("--variant-cache-dir", default=DEFAULT_VARIANT_CACHE, help="quantized-variant cache root")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    return parser.parse_args()


def build(args: argparse.Namespace):
    engine = LLMEngine(EngineConfig(model="embedded", memory_budget_bytes=1 << 30, num_kv_blocks=128, max_model_len=1024))
    config = MorphConfig(policy=None, int4_method=args.int4_method, calibration_text_path=args.calibration_text,
                         variant_cache_dir=args.variant_cache_dir, precisions=("fp", "int8", "int4"))
    return engine, attach_morph(engine, config)


def swap_latencies(engine, runtime, num_layers: int) -> list[dict]:
    """Median costs of each transition, each layer swapped on its own."""
    total = engine.model_config.num_layers
    rows = []
    for source, target in TRANSITIONS:
        samples = []
        for layer in range(num_layers):
            runtime.apply(_plan(total, {layer: source}))
            start = time.perf_counter()
            [event] = runtime.apply(_plan(total, {layer: target}))
            samples.append((time.perf_counter() - start, event))
        runtime.apply(_plan(total, {}))
        rows.append(_swap_row(source, target, samples))
    return rows


def _swap_row(source: Precision, target: Precision, samples: list) -> dict:
    copy_s = statistics.median(e.copy_seconds for _, e in samples)
    nbytes = samples[0][1].bytes_copied
    return {"transition": f"{source.value}->{target.value}", "bytes": nbytes,
            "verify_ms": statistics.median(e.verify_seconds for _, e in samples) * 1e3,
            "copy_ms": copy_s * 1e3, "copy_GBps": nbytes / copy_s / 1e9,
            "swap_ms": statistics.median(wall for wall, _ in samples) * 1e3}


def _plan(num_layers: int, precisions: dict[int, Precision]) -> MorphPlan:
    return MorphPlan(tuple(precisions.get(i, FP) for i in range(num_layers)))


def decode_stall(engine, runtime, batch: int, steps: int) -> list[dict]:
    """Median decode step time in steady state and with a swap of layer 0 in flight at every step (hook
    included), lowering (FP -> INT4) and raising (INT4 -> FP) apart.

    Windows of ``WINDOW`` steady and ``WINDOW`` in-flight steps alternate, so the contexts' growth and
    other processes' load drift affect both alike."""
    num_layers = engine.model_config.num_layers
    prompts = [engine.tokenizer.encode(f"Request {i}: describe the city of Lyon in detail.") for i in range(batch)]
    params = SamplingParams(temperature=0, max_tokens=3 * steps + 8, ignore_eos=True)
    for prompt in prompts:
        engine.add_request(prompt, params)
    for _ in range(4):
        engine.step()                                         # prefill and warm-up
    times = {"steady": [], "lowering in flight": [], "raising in flight": []}
    while len(times["lowering in flight"]) + len(times["raising in flight"]) < steps:
        runtime.apply(_plan(num_layers, {}))                  # all layers back at FP, nothing in flight
        times["steady"] += [_timed_step(engine) for _ in range(WINDOW)]
        target = FP
        for _ in range(WINDOW):
            if not runtime.actuator.busy:
                target = INT4 if target == FP else FP
                runtime.actuator.apply(_plan(num_layers, {0: target}), engine.clock())
            times["lowering in flight" if target == INT4 else "raising in flight"].append(_timed_step(engine))
    runtime.apply(_plan(num_layers, {}))
    for request_id in list(engine.requests):
        engine.abort(request_id)
    steady_ms = statistics.median(times["steady"]) * 1e3
    return [{"batch": batch, "state": state, "steps": len(samples), "step_ms": statistics.median(samples) * 1e3,
             "stall_pct": 100 * (statistics.median(samples) * 1e3 / steady_ms - 1)} for state, samples in times.items()]


def swaps_under_load(engine, runtime, batch: int, layers: int = 4, trials: int = 3) -> list[dict]:
    """Wall time and decode steps from a plan lowering (then raising) ``layers`` layers at once until every swap
    settled, while ``batch`` requests decode: the swaps' work then takes a share of each step."""
    num_layers = engine.model_config.num_layers
    lowered = _plan(num_layers, {i: INT4 for i in range(layers)})
    prompts = [engine.tokenizer.encode(f"Request {i}: describe the city of Lyon in detail.") for i in range(batch)]
    for prompt in prompts:
        engine.add_request(prompt, SamplingParams(temperature=0, max_tokens=900, ignore_eos=True))
    for _ in range(4):
        engine.step()
    rows = []
    for name, start_plan, plan in (("fp->int4", _plan(num_layers, {}), lowered), ("int4->fp", lowered, _plan(num_layers, {}))):
        for _ in range(trials):
            runtime.apply(start_plan)
            steady = statistics.mean(_timed_step(engine) for _ in range(WINDOW))
            start, steps = time.perf_counter(), 0
            with TimedStepHook(engine, runtime.on_step) as hook:
                runtime.actuator.apply(plan, engine.clock())
                while runtime.actuator.busy or runtime.actuator.waiting:
                    engine.step()
                    steps += 1
            wall = time.perf_counter() - start
            rows.append({"transition": name, "layers": layers, "batch": batch, "wall_ms": wall * 1e3,
                         "decode_steps": steps, "boundary_work_ms": hook.seconds * 1e3,
                         "steady_step_ms": steady * 1e3, "stall_pct": 100 * (wall / max(steps, 1) / steady - 1)})
    runtime.apply(_plan(num_layers, {}))
    for request_id in list(engine.requests):
        engine.abort(request_id)
    return rows


class TimedStepHook:
    """Within the ``with`` block, the engine runs ``hook`` through a wrapper adding up the seconds it takes."""

    def __init__(self, engine, hook):
        self.engine, self.hook, self.seconds = engine, hook, 0.0

    def __call__(self, stats) -> None:
        start = time.perf_counter()
        self.hook(stats)
        self.seconds += time.perf_counter() - start

    def __enter__(self) -> "TimedStepHook":
        self.engine.remove_step_hook(self.hook)
        self.engine.add_step_hook(self)
        return self

    def __exit__(self, *exc_info) -> None:
        self.engine.remove_step_hook(self)
        self.engine.add_step_hook(self.hook)


def _timed_step(engine) -> float:
    start = time.perf_counter()
    engine.step()
    return time.perf_counter() - start


def kv_resizes(engine, runtime) -> list[dict]:
    """Grow and shrink by one layer's worth of blocks, idle and with live blocks above the cut."""
    resizer = runtime.resizer
    base = resizer.capacity
    delta = (runtime.swapper.variant_bytes(0, FP) - runtime.swapper.variant_bytes(0, INT4)) // resizer.block_bytes
    rows = [_resize_row("grow (idle)", resizer.resize(base + delta)), _resize_row("shrink (idle)", resizer.resize(base))]
    resizer.resize(base + delta)
    survivors = _hold_the_top_blocks(engine.block_manager)
    rows.append(_resize_row("shrink (moving live blocks)", resizer.resize(base)))
    for holder in survivors:
        engine.block_manager.free(holder)
    return rows


def _hold_the_top_blocks(manager: BlockManager) -> list[Request]:
    """Fill the pool with 4-block holders, then free the older half: the rest hold the top blocks."""
    holders = []
    while manager.num_free >= 4:
        holder = Request(prompt_token_ids=[0] * (4 * manager.block_size), params=SamplingParams(), arrival_time=0.0)
        manager.allocate(holder, holder.num_tokens)
        holders.append(holder)
    for holder in holders[:len(holders) // 2]:
        manager.free(holder)
    return holders[len(holders) // 2:]


def _resize_row(name: str, resize) -> dict:
    return {"resize": name, "blocks": f"{resize.before}->{resize.after}", "moved_blocks": resize.moved_blocks,
            "ms": resize.seconds * 1e3}


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    columns = list(rows[0])
    print("  ".join(f"{c:>18}" for c in columns))
    for row in rows:
        print("  ".join(f"{v:>18.3f}" if isinstance(v, float) else f"{v!s:>18}" for v in row.values()))


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    engine, runtime = build(args)
    results = {"swaps": swap_latencies(engine, runtime, args.layers),
               "decode": decode_stall(engine, runtime, args.batch, args.steps),
               "under_load": swaps_under_load(engine, runtime, args.batch),
               "kv_resize": kv_resizes(engine, runtime)}
    runtime.close()
    print_table("Swap latency per layer (median; a CPU copy checks its bytes as it goes)", results["swaps"])
    print_table("Decode step time: steady vs swap in flight (target stall < 2%)", results["decode"])
    print_table("Swaps under decode load (the whole plan, until settled)", results["under_load"])
    print_table("KV resize latency", results["kv_resize"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
