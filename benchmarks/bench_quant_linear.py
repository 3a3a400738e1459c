"""Per-op CPU time of the full-precision, INT8 and INT4 linear variants on SmolLM2-135M shapes, and bytes per layer.

    python benchmarks/bench_quant_linear.py [--tokens 1 8 32 256] [--copies 30] [--repeats 5] [--group-size 128]
                                            [--threads N]

Each op is timed over ``--copies`` distinct weight copies (one per decoder layer, as in the model) so
the weights stream from memory instead of sitting in cache. Columns: ``fp32`` (dense: the C++ GEMV up to
96 rows), ``int8`` / ``int4`` (the ops as shipped, choosing their path by M), ``*-kernel`` / ``*-float`` (the C++
kernel or dequantize + fp32 GEMM forced), ``*-dequant`` (only the dequantization the float path does per call: its
price for not keeping a full-precision copy). The bandwidth table gives each op's weight bytes over its time beside
a 2-thread read of 1 GiB measured in the same run (the ceiling a decode GEMV can reach). The last table gives the M
threshold each op should switch at. Timings are noisy when other processes share the CPU.
"""
import argparse
import statistics
import time

import torch

from swiftllm.quant.groupwise import quantize_groups
from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.quant.int8_linear import Int8Linear
from swiftllm.quant.linear_path import forced_linear_path
from swiftllm.quant.variants import quantize_layer_int8, quantize_layer_rtn
from swiftllm.worker.layers.linear import DenseLinear
from swiftllm.worker.weight import LINEAR_NAMES, dense_layer

HIDDEN, INTERMEDIATE, Q_SIZE, KV_SIZE = 576, 1536, 576, 192
SHAPES = {"qkv_proj": (Q_SIZE + 2 * KV_SIZE, HIDDEN), "o_proj": (HIDDEN, Q_SIZE),
          "gate_up_proj": (2 * INTERMEDIATE, HIDDEN), "down_proj": (HIDDEN, INTERMEDIATE)}   # (out, in)
FORCED_PATHS = ("kernel", "float")
COLUMNS = ("fp32", "int8", "int8-kernel", "int8-float", "int8-dequant", "int4", "int4-kernel", "int4-float", "int4-dequant")
GiB = 1 << 30


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 8, 16, 32, 256])
    parser.add_argument("--copies", type=int, default=30, help="distinct weight copies per shape (model layers)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--group-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    return parser.parse_args()


def read_gbs(repeats: int = 5) -> float:
    """A float32 ``sum`` over 1 GiB on the configured threads."""
    x = torch.ones(GiB // 4)
    return GiB / seconds_per_call([x.sum], repeats) / 1e9


def seconds_per_call(calls: list, repeats: int) -> float:
    """Median over ``repeats`` sweeps of the mean time of one call (each sweep runs every call once)."""
    for call in calls:
        call()
    sweeps = []
    for _ in range(repeats):
        start = time.perf_counter()
        for call in calls:
            call()
        sweeps.append((time.perf_counter() - start) / len(calls))
    return statistics.median(sweeps)


def build_ops(shape: tuple[int, int], copies: int, group_size: int) -> dict[str, list]:
    weights = [torch.randn(shape) * shape[1] ** -0.5 for _ in range(copies)]
    return {"fp32": [DenseLinear(w) for w in weights],
            "int8": [Int8Linear.quantize(w) for w in weights],
            "int4": [Int4Linear.from_groups(quantize_groups(w, group_size)) for w in weights]}


def time_shape(ops: dict[str, list], num_tokens: int, repeats: int) -> dict[str, float]:
    """Milliseconds per call of every column for one weight shape and M."""
    x = torch.randn(num_tokens, ops["fp32"][0].in_features)
    times = {"fp32": seconds_per_call([lambda op=op: op(x) for op in ops["fp32"]], repeats)}
    for kind, cls in (("int8", Int8Linear), ("int4", Int4Linear)):
        times[kind] = seconds_per_call([lambda op=op: op(x) for op in ops[kind]], repeats)
        for path in FORCED_PATHS:
            with forced_linear_path(path, ops=(cls,)):
                times[f"{kind}-{path}"] = seconds_per_call([lambda op=op: op(x) for op in ops[kind]], repeats)
    times["int8-dequant"] = seconds_per_call([lambda op=op: op.weight.float() for op in ops["int8"]], repeats)
    times["int4-dequant"] = seconds_per_call([op.dequantized_transposed for op in ops["int4"]], repeats)
    return {k: 1e3 * v for k, v in times.items()}


def print_table(title: str, rows: list[tuple[str, int, dict[str, float], float]]) -> None:
    print(f"\n{title}")
    print(f"{'op':<14}{'M':>5}" + "".join(f"{c:>14}" for c in COLUMNS) + f"{'fp32 GB/s':>11}")
    for name, num_tokens, times, weight_bytes in rows:
        cells = "".join(f"{times[c]:>14.3f}" for c in COLUMNS)
        print(f"{name:<14}{num_tokens:>5}{cells}{weight_bytes / times['fp32'] / 1e6:>11.1f}")


def print_thresholds(per_layer: dict[int, dict[str, float]]) -> None:
    print("\nkernel choice (per layer, 4 linears): where the C++ kernel beats dequantize + fp32 GEMM")
    for kind in ("int8", "int4"):
        winning = [m for m, t in sorted(per_layer.items()) if t[f"{kind}-kernel"] < t[f"{kind}-float"]]
        print(f"  {kind}: the kernel wins at M in {winning}; currently switching above "
              f"{(Int8Linear if kind == 'int8' else Int4Linear).KERNEL_MAX_TOKENS}")


def print_bandwidth(per_layer: dict[int, dict[str, float]], layer_bytes: dict[str, int], read: float) -> None:
    """Weight bytes streamed per second by each op as shipped, against this run's read bandwidth."""
    print(f"\nachieved weight bandwidth per layer, GB/s (read bandwidth measured now: {read:.1f} GB/s)")
    print(f"{'M':>5}" + "".join(f"{k:>16}" for k in layer_bytes))
    for m, times in sorted(per_layer.items()):
        cells = "".join(f"{layer_bytes[k] / times[k] / 1e6:>9.1f} ({layer_bytes[k] / times[k] / 1e6 / read:4.0%})"
                        for k in layer_bytes)
        print(f"{m:>5}{cells}")


def smollm2_layer():
    def w(out: int, inp: int) -> torch.Tensor:
        return torch.randn(out, inp)
    return dense_layer(torch.ones(HIDDEN), w(Q_SIZE, HIDDEN), w(KV_SIZE, HIDDEN), w(KV_SIZE, HIDDEN), w(HIDDEN, Q_SIZE),
                       torch.ones(HIDDEN), w(INTERMEDIATE, HIDDEN), w(INTERMEDIATE, HIDDEN), w(HIDDEN, INTERMEDIATE))


def linear_bytes(group_size: int) -> dict[str, int]:
    """Bytes of the four linears of one layer at each precision (the norms are not read by the GEMVs)."""
    layer = smollm2_layer()
    variants = {"fp32": layer, "int8": quantize_layer_int8(layer), "int4": quantize_layer_rtn(layer, 4, group_size)}
    return {name: sum(t.nbytes for key, t in v.tensors().items() if "norm" not in key) for name, v in variants.items()}


def print_layer_bytes(group_size: int) -> None:
    layer = smollm2_layer()
    fp = layer.nbytes()
    print("\nbytes per decoder layer (SmolLM2-135M)")
    for name, variant in (("fp32", layer), ("int8", quantize_layer_int8(layer)),
                          *((f"int4-g{g}", quantize_layer_rtn(layer, 4, g)) for g in sorted({32, 64, 128, group_size}))):
        print(f"  {name:<10}{variant.nbytes():>12,d} B  ({fp / variant.nbytes():.2f}x smaller than fp32, "
              f"frees {(fp - variant.nbytes()) / 1e6:.2f} MB)")


@torch.inference_mode()
def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, {args.copies} weight copies per shape, INT4 group {args.group_size}")
    rows, per_layer = [], {m: dict.fromkeys(COLUMNS, 0.0) for m in args.tokens}
    for name in LINEAR_NAMES:
        ops = build_ops(SHAPES[name], args.copies, args.group_size)
        for num_tokens in args.tokens:
            times = time_shape(ops, num_tokens, args.repeats)
            rows.append((name, num_tokens, times, 4 * SHAPES[name][0] * SHAPES[name][1]))
            for column in COLUMNS:
                per_layer[num_tokens][column] += times[column]
    print_table("milliseconds per call", rows)
    layer_bytes = 4 * sum(out * inp for out, inp in SHAPES.values())
    print_table("milliseconds per layer (sum of the 4 linears)",
                [("layer", m, t, layer_bytes) for m, t in per_layer.items()])
    print_bandwidth(per_layer, linear_bytes(args.group_size), read_gbs())
    print_thresholds(per_layer)
    print_layer_bytes(args.group_size)


if __name__ == "__main__":
    main()
