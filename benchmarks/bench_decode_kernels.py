"""The C++ decode kernels against the torch ops they replace, on SmolLM2-135M shapes (fp32).

    python benchmarks/bench_decode_kernels.py [--tokens 1 16 32 96 128 192] [--threads 2]

GEMV: ms for one pass over the 120 decoder linears (30 distinct copies of each shape, so the weights stream
from memory as in a decode step), torch ``F.linear`` vs ``csrc/skinny_linear.cpp``; GB/s is weight bytes / time.
Attention: ms per layer call of paged decode attention, the torch reference (gathers each context into a padded
copy) vs ``csrc/paged_decode_attention.cpp`` (reads the blocks in place).
"""
import argparse
import time

import torch
import torch.nn.functional as F

from swiftllm.worker.kernels.cpu_kernels import cpu_kernels
from swiftllm.worker.kernels.paged_attention import paged_decode_attention

SHAPES = [(960, 576), (576, 576), (3072, 576), (576, 1536)]         # qkv, o, gate_up, down: (out, in)
NUM_LAYERS, BLOCK_SIZE, KV_HEADS, Q_HEADS, HEAD_DIM = 30, 16, 3, 9, 64


def best_ms(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def gemv_rows(tokens: list[int]) -> list[tuple]:
    weights = [torch.randn(shape) for _ in range(NUM_LAYERS) for shape in SHAPES]
    nbytes = sum(w.numel() * 4 for w in weights)
    rows = []
    for m in tokens:
        inputs = [torch.randn(m, w.shape[1]) for w in weights]
        ours = best_ms(lambda: [cpu_kernels().skinny_linear(x, w) for x, w in zip(inputs, weights)])
        peer = best_ms(lambda: [F.linear(x, w) for x, w in zip(inputs, weights)])
        rows.append((f"GEMV, {m} rows (GB/s ours {nbytes / ours / 1e6:.1f}, torch {nbytes / peer / 1e6:.1f})", ours, peer))
    return rows


def attention_rows() -> list[tuple]:
    rows = []
    for num_seqs, context in ((1, 128), (16, 900)):
        blocks_per_seq = -(-context // BLOCK_SIZE)
        k_cache = torch.randn(num_seqs * blocks_per_seq + 8, BLOCK_SIZE, KV_HEADS, HEAD_DIM)
        v_cache = torch.randn_like(k_cache)
        tables = torch.randperm(k_cache.shape[0])[:num_seqs * blocks_per_seq].view(num_seqs, blocks_per_seq)
        lens = torch.full((num_seqs,), context)
        q = torch.randn(num_seqs, Q_HEADS, HEAD_DIM)
        ours = best_ms(lambda: cpu_kernels().paged_decode_attention(q, k_cache, v_cache, tables, lens, HEAD_DIM ** -0.5), 20)
        peer = best_ms(lambda: paged_decode_attention(q, k_cache, v_cache, tables, lens, HEAD_DIM ** -0.5), 20)
        rows.append((f"decode attention, {num_seqs} seqs x {context} tokens", ours, peer))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 16, 32, 96, 128, 192])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if cpu_kernels() is None:
        raise SystemExit("this CPU has no AVX2/FMA: the C++ kernels are not used here")
    torch.set_num_threads(args.threads)
    print(f"{'op':<60} {'ours ms':>9} {'torch ms':>9} {'speedup':>8}")
    for name, ours, peer in gemv_rows(args.tokens) + attention_rows():
        print(f"{name:<60} {ours:9.2f} {peer:9.2f} {peer / ours:8.2f}")


if __name__ == "__main__":
    main()
