"""The engine and the morph runtime on a CUDA GPU, against the device's own measured bandwidth.

Measures, in this order, on a random-weights model (``random:<preset>``, fp16 by default; no checkpoint needed):
1. the device: device-to-device copy bandwidth (bytes read + written) and pinned host-to-device bandwidth;
2. start: engine construction and its warm-up (Triton compiles from an empty cache: first call minus a second,
   cached one), morph attach (layer store, slots, the variants' warm-up);
3. decode steps at batch 1 / 16 / 64 and context 512 / 4096 in FP, INT8 and INT4: step time, achieved GB/s (weights
   at that precision + LM head + the KV read) and the floor (those bytes at the measured copy bandwidth);
4. prefill tokens/s (one sequence of ``--prefill-tokens``) per precision;
5. swaps: copy time per layer FP -> INT4 and INT4 -> FP (CUDA events around the copy), and the decode step while one
   layer's copy is in flight against the step without one;
6. KV pool grow / shrink time.

Prints a table and writes every figure to ``--json``. The default is a 7B-shaped model of 8 layers (the layer
shapes set the kernels' efficiency; 8 layers keep batch 64 x 4096 tokens of KV at 32 GiB). ``--device cpu`` with a
tiny preset and small points runs the same code on a CPU (tests/test_bench_gpu.py: a smoke test, not a measurement).

    python benchmarks/bench_gpu.py [--model random:llama-2-7b] [--layers 8] [--json bench_gpu.json]
"""
import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TRITON_CACHE_DIR", tempfile.mkdtemp(prefix="triton-cold-"))   # before triton is imported

import torch  # noqa: E402

from morph.layer_store import LayerStore  # noqa: E402
from morph.layer_swapper import LayerSwapper  # noqa: E402
from morph.plan import Precision  # noqa: E402
import morph.runtime  # noqa: E402
from morph.runtime import MorphRuntime  # noqa: E402
from swiftllm.quant.spec import VariantSpec  # noqa: E402
from swiftllm import EngineConfig, LLMEngine, SamplingParams  # noqa: E402
from swiftllm.worker.batch import SequenceChunk, WorkerBatch  # noqa: E402
from swiftllm.worker.runner import ModelRunner  # noqa: E402

GiB = 1 << 30
GREEDY = SamplingParams(temperature=0, max_tokens=1, ignore_eos=True)
PRECISIONS = (Precision.FP, Precision.INT8, Precision.INT4)
BLOCK_SIZE = 16


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(run, repeats: int, warmups: int = 2) -> float:
    """Median wall time of ``run()`` (which must synchronize the device itself)."""
    for _ in range(warmups):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def event_seconds(run, device: torch.device, repeats: int = 10) -> float:
    """Median of ``run()`` between CUDA events (host time on a CPU), after two warm-up runs."""
    if device.type != "cuda":
        return median_seconds(run, repeats)
    for _ in range(2):
        run()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def device_bandwidth(device: torch.device, nbytes: int) -> dict:
    """Device-to-device copy of ``nbytes`` (bytes read + written) and pinned host-to-device copy, GB/s."""
    source = torch.randint(0, 255, (nbytes,), dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    d2d = 2 * nbytes / event_seconds(lambda: target.copy_(source), device)
    if device.type != "cuda":
        return {"device_to_device_GBps": d2d / 1e9, "host_to_device_GBps": None}
    host = torch.randint(0, 255, (nbytes,), dtype=torch.uint8).pin_memory()
    h2d = nbytes / event_seconds(lambda: target.copy_(host, non_blocking=True), device)
    return {"device_to_device_GBps": d2d / 1e9, "host_to_device_GBps": h2d / 1e9}


class Timings(dict):
    """Wraps functions so that each call's duration (device work included) is appended under the function's name,
    until ``restore()``."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = device
        self.originals = []

    def restore(self) -> None:
        for owner, name, original in self.originals:
            setattr(owner, name, original)

    def wrap(self, owner, name: str) -> None:
        original = getattr(owner, name)
        self.originals.append((owner, name, original))

        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = original(*args, **kwargs)
            synchronize(self.device)
            self.setdefault(name, []).append(time.perf_counter() - start)
            return result
        setattr(owner, name, timed)


def build(args, timings: Timings) -> tuple[LLMEngine, MorphRuntime, dict]:
    """The engine (its warm-up timed) and the morph runtime (store and attach timed). A CPU engine does not warm up
    (nothing to compile): there both warm-ups are called here twice."""
    device = torch.device(args.device)
    num_blocks = max(args.batches) * -(-max(args.contexts) // BLOCK_SIZE)
    model = f"{args.model}:layers={args.layers}"
    start = time.perf_counter()
    engine = LLMEngine(EngineConfig(model=model, device=args.device, dtype=args.dtype, block_size=BLOCK_SIZE,
                                    num_kv_blocks=num_blocks, max_num_seqs=max(args.batches),
                                    max_model_len=max(*args.contexts, args.prefill_tokens) + 1,
                                    max_num_batched_tokens=args.prefill_tokens,
                                    memory_budget_bytes=args.budget_gib * GiB))
    engine_seconds = time.perf_counter() - start
    start = time.perf_counter()
    store = LayerStore.prepare(engine.model_weights, engine.model_config, PRECISIONS, VariantSpec("rtn"),
                               cache_root=None, device=device)
    store_seconds = time.perf_counter() - start
    dtype = engine.model_weights.final_norm.dtype
    start = time.perf_counter()
    swapper = LayerSwapper.into_slots(engine.install_layer, store, device)
    if device.type == "cuda":      # as attach_morph does: Triton compiles the variants' GEMMs now
        morph.runtime.warm_up_variants(store, device, dtype, args.prefill_tokens)
    runtime = MorphRuntime(engine, None, swapper)
    attach_seconds = time.perf_counter() - start
    for _ in range(1 if device.type == "cuda" else 2):
        engine.worker.warm_up(args.prefill_tokens)
        morph.runtime.warm_up_variants(store, device, dtype, args.prefill_tokens)
    first_engine, cached_engine = timings["warm_up"]
    first_variants, cached_variants = timings["warm_up_variants"]
    return engine, runtime, {
        "engine_seconds": engine_seconds, "store_prepare_seconds": store_seconds,
        "slots_and_variant_warm_up_seconds": attach_seconds, "engine_warm_up_first_seconds": first_engine,
        "engine_warm_up_cached_seconds": cached_engine, "variant_warm_up_first_seconds": first_variants,
        "variant_warm_up_cached_seconds": cached_variants,
        "first_call_compile_seconds": (first_engine - cached_engine) + (first_variants - cached_variants)}


def decode_batch(batch: int, context: int) -> WorkerBatch:
    """``batch`` decode rows, each at position ``context - 1`` over its own blocks (the KV holds zeros: timing only)."""
    blocks = -(-context // BLOCK_SIZE)
    return WorkerBatch([SequenceChunk(f"d{i}", [11], context - 1, list(range(i * blocks, (i + 1) * blocks)), GREEDY)
                        for i in range(batch)])


def weight_bytes_read(runtime: MorphRuntime, engine: LLMEngine, precision: Precision) -> int:
    """Bytes a step reads from the weights: every layer at ``precision``, the final norm and the LM head."""
    swapper = runtime.swapper
    layers = sum(swapper.variant_bytes(i, precision) for i in range(swapper.store.num_layers))
    return layers + engine.model_weights.lm_head.nbytes + engine.model_weights.final_norm.nbytes


def decode_points(engine: LLMEngine, runtime: MorphRuntime, precision: Precision, bandwidth: float,
                  batches: list[int], contexts: list[int]) -> list[dict]:
    kv_per_token = engine.model_config.kv_bytes_per_token(engine.model_weights.embed_tokens.element_size())
    points = []
    for batch in batches:
        for context in contexts:
            work = decode_batch(batch, context)
            seconds = median_seconds(lambda: engine.worker.execute(work), repeats=10)
            moved = weight_bytes_read(runtime, engine, precision) + batch * context * kv_per_token
            points.append({"precision": precision.value, "batch": batch, "context": context, "step_ms": seconds * 1e3,
                           "bytes": moved, "achieved_GBps": moved / seconds / 1e9,
                           "floor_ms": moved / bandwidth * 1e3})
    return points


def prefill_point(engine: LLMEngine, precision: Precision, tokens: int) -> dict:
    table = list(range(-(-tokens // BLOCK_SIZE)))
    work = WorkerBatch([SequenceChunk("p", [(7 * j) % 1000 + 3 for j in range(tokens)], 0, table, GREEDY)])
    seconds = median_seconds(lambda: engine.worker.execute(work), repeats=5)
    return {"precision": precision.value, "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def swap_points(runtime: MorphRuntime, layers: int) -> dict:
    """Copy seconds per layer (CUDA events) for a whole-model FP -> INT4 and back."""
    down = runtime.apply([Precision.INT4.value] * layers)
    up = runtime.apply([Precision.FP.value] * layers)
    return {"fp_to_int4_copy_ms": [e.copy_seconds * 1e3 for e in down if e.status == "done"],
            "int4_to_fp_copy_ms": [e.copy_seconds * 1e3 for e in up if e.status == "done"],
            "fp_to_int4_verify_ms": [e.verify_seconds * 1e3 for e in down if e.status == "done"]}


def stall_point(engine: LLMEngine, runtime: MorphRuntime, layer: int, target: Precision, work: WorkerBatch) -> dict:
    """A decode step of ``work`` with layer ``layer``'s copy to ``target`` in flight, against one without: the
    interim layer makes the compute stream wait for the copy only at that layer."""
    quiet = median_seconds(lambda: engine.worker.execute(work), repeats=10)
    swapper = runtime.swapper
    swapper.begin(layer, target)
    swapper.wait_for_work()
    swapper.poll()                                     # verified: the copy is enqueued, the interim layer installed
    start = time.perf_counter()
    engine.worker.execute(work)
    stalled = time.perf_counter() - start
    while swapper.in_flight:
        swapper.wait_for_work()
        swapper.poll()
    return {"target": target.value, "quiet_step_ms": quiet * 1e3, "step_with_copy_in_flight_ms": stalled * 1e3}


def kv_resize_points(engine: LLMEngine, blocks: int, device: torch.device) -> dict:
    def timed_resize(capacity: int) -> float:
        synchronize(device)
        start = time.perf_counter()
        engine.resize_kv_pool(capacity)
        synchronize(device)
        return time.perf_counter() - start
    base = engine.kv_capacity
    grow = timed_resize(base + blocks)
    shrink = timed_resize(base)
    return {"blocks": blocks, "bytes": blocks * engine.memory.block_bytes, "grow_ms": grow * 1e3, "shrink_ms": shrink * 1e3}


def print_table(result: dict) -> None:
    bw = result["bandwidth"]
    print(f"\n{result['device']}  torch {result['torch']}  triton {result['triton']}  model {result['model']}")
    print(f"copy bandwidth: device-to-device {bw['device_to_device_GBps']:.1f} GB/s, "
          f"pinned host-to-device {bw['host_to_device_GBps'] or 0:.1f} GB/s")
    print(f"{'prec':>5} {'batch':>5} {'ctx':>5} {'step ms':>8} {'floor ms':>8} {'GB/s':>7} {'of floor':>8}")
    for p in result["decode"]:
        print(f"{p['precision']:>5} {p['batch']:>5} {p['context']:>5} {p['step_ms']:8.2f} {p['floor_ms']:8.2f} "
              f"{p['achieved_GBps']:7.0f} {p['floor_ms'] / p['step_ms']:8.0%}")
    for p in result["prefill"]:
        print(f"prefill {p['precision']:>5}: {p['tokens']} tokens in {p['seconds'] * 1e3:.1f} ms, {p['tokens_per_s']:.0f} tok/s")
    swap = result["swap"]
    for key in ("fp_to_int4_copy_ms", "int4_to_fp_copy_ms"):
        print(f"swap {key}: median {statistics.median(swap[key]):.2f} ms per layer over {len(swap[key])} layers")
    for s in result["stall"]:
        print(f"decode step with a copy to {s['target']} in flight: {s['step_with_copy_in_flight_ms']:.2f} ms "
              f"(without: {s['quiet_step_ms']:.2f} ms)")
    kv = result["kv_resize"]
    print(f"KV grow by {kv['blocks']} blocks ({kv['bytes'] / GiB:.1f} GiB): {kv['grow_ms']:.1f} ms, shrink {kv['shrink_ms']:.1f} ms")
    start = result["start"]
    print(f"engine start {start['engine_seconds']:.1f} s (warm-up {start['engine_warm_up_first_seconds']:.1f} s cold, "
          f"{start['engine_warm_up_cached_seconds']:.2f} s cached); layer store {start['store_prepare_seconds']:.1f} s; "
          f"slots + variant warm-up {start['slots_and_variant_warm_up_seconds']:.1f} s; "
          f"first-call compile {start['first_call_compile_seconds']:.1f} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="random:llama-2-7b")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--contexts", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("--prefill-tokens", type=int, default=2048)
    parser.add_argument("--copy-mib", type=int, default=4096, help="size of the bandwidth copy")
    parser.add_argument("--kv-grow-blocks", type=int, default=4096)
    parser.add_argument("--budget-gib", type=int, default=64)
    parser.add_argument("--json", default="bench_gpu.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA GPU (see scripts/gpu_check.sh)")
    import triton
    timings = Timings(device)
    timings.wrap(ModelRunner, "warm_up")
    timings.wrap(morph.runtime, "warm_up_variants")
    bandwidth = device_bandwidth(device, args.copy_mib << 20)
    engine, runtime, start = build(args, timings)
    timings.restore()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {"device": name, "torch": torch.__version__, "triton": triton.__version__,
              "model": f"{args.model}:layers={args.layers} {args.dtype}", "bandwidth": bandwidth, "start": start,
              "decode": [], "prefill": []}
    copy_bandwidth = bandwidth["device_to_device_GBps"] * 1e9
    for precision in PRECISIONS:
        runtime.apply([precision.value] * args.layers)
        result["decode"] += decode_points(engine, runtime, precision, copy_bandwidth, args.batches, args.contexts)
        result["prefill"].append(prefill_point(engine, precision, args.prefill_tokens))
    runtime.apply([Precision.FP.value] * args.layers)
    result["swap"] = swap_points(runtime, args.layers)
    middle, work = args.layers // 2, decode_batch(min(16, max(args.batches)), min(args.contexts))
    result["stall"] = [stall_point(engine, runtime, middle, target, work) for target in (Precision.INT4, Precision.FP)]
    result["kv_resize"] = kv_resize_points(engine, args.kv_grow_blocks, device)
    runtime.close()
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print_table(result)
    return result

if __name__ == "__main__":
    main()
