"""Engine speed on this CPU, with the peers measured in the same run.

Prints: (1) output tokens/s on a mixed batch of requests vs HF transformers ``generate`` (static batches, the
best batching HF allows); (2) single-stream decode tokens/s vs HF; (3) batch-1 decode step time against the
memory-bandwidth floor (bytes read per step / measured read bandwidth), with achieved bandwidth; (4) aggregate
tokens/s at 32 concurrent streams vs llama.cpp (llama-cpp-python) single stream on the same GGUF.
A peer that is not installed is skipped, and the table says so.

    python benchmarks/bench_engine.py [--num-requests 64] [--threads 2] [--default-config] [--skip-hf-throughput]
"""
import argparse
import importlib.util
import random
import time

import torch

from swiftllm import LLM, EngineConfig, SamplingParams
from swiftllm.worker.weight import vocab_tensors
from swiftllm.worker.weight_loader import embedded_model_path

GiB = 1 << 30


def mixed_workload(n: int, seed: int = 0) -> list[tuple[list[int], int]]:
    """(prompt token ids, output length): prompts 64-1024 tokens, outputs 16-256 tokens, seeded."""
    rng = random.Random(seed)
    return [([rng.randrange(1000, 49000) for _ in range(rng.randint(64, 1024))], rng.randint(16, 256)) for _ in range(n)]


def ours_throughput(llm: LLM, workload) -> tuple[float, int]:
    params = [SamplingParams(temperature=0, max_tokens=n, ignore_eos=True) for _, n in workload]
    start = time.perf_counter()
    outs = llm.generate([p for p, _ in workload], params)
    elapsed = time.perf_counter() - start
    return sum(len(o.outputs[0].token_ids) for o in outs) / elapsed, len(outs)


def hf_throughput(hf, workload, batch_size: int) -> float:
    """Static batches of similar prompt length, left-padded; only each request's own tokens are counted."""
    order = sorted(range(len(workload)), key=lambda i: len(workload[i][0]))
    useful, start = 0, time.perf_counter()
    for b in range(0, len(order), batch_size):
        batch = [workload[i] for i in order[b:b + batch_size]]
        width = max(len(p) for p, _ in batch)
        ids = torch.tensor([[0] * (width - len(p)) + p for p, _ in batch])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p, _ in batch])
        steps = max(n for _, n in batch)
        with torch.inference_mode():
            hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=steps, min_new_tokens=steps, do_sample=False, pad_token_id=0)
        useful += sum(n for _, n in batch)
    return useful / (time.perf_counter() - start)


def ours_decode_step(llm: LLM, prompt: list[int], num_tokens: int) -> float:
    """Mean seconds per decode step at batch 1 (first token excluded)."""
    out = llm.generate([prompt], SamplingParams(temperature=0, max_tokens=num_tokens, ignore_eos=True))[0]
    times = out.outputs[0].token_times
    return (times[-1] - times[0]) / (len(times) - 1)


def ours_concurrent(llm: LLM, streams: int, prompt_len: int, num_tokens: int) -> float:
    rng = random.Random(1)
    prompts = [[rng.randrange(1000, 49000) for _ in range(prompt_len)] for _ in range(streams)]
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=num_tokens, ignore_eos=True))
    first = max(o.outputs[0].token_times[0] for o in outs)   # all streams decoding
    last = max(o.outputs[0].token_times[-1] for o in outs)
    decoded = sum(sum(1 for t in o.outputs[0].token_times if t > first) for o in outs)
    return decoded / (last - first)


@torch.inference_mode()
def hf_decode_step(hf, prompt: list[int], num_tokens: int) -> float:
    out = hf(torch.tensor([prompt]), use_cache=True)
    token = out.logits[:, -1:].argmax(-1)
    start = time.perf_counter()
    for _ in range(num_tokens):
        out = hf(token, past_key_values=out.past_key_values, use_cache=True)
        token = out.logits[:, -1:].argmax(-1)
    return (time.perf_counter() - start) / num_tokens


def llama_cpp_decode_step(prompt: list[int], num_tokens: int, threads: int) -> float | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    from llama_cpp import Llama
    model = Llama(model_path=embedded_model_path(), n_ctx=2048, n_threads=threads, verbose=False)
    model.eval(prompt)
    start = time.perf_counter()
    for _ in range(num_tokens):
        model.eval([int(model.sample(temp=0.0))])
    return (time.perf_counter() - start) / num_tokens


def read_bandwidth() -> float:
    """Bytes/s of a streaming read (sum over 1 GiB of float32), best of 5."""
    x = torch.ones(GiB // 4)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return GiB / best


def bytes_per_decode_step(llm: LLM, context_len: int) -> int:
    """Weights read by one batch-1 decode step: every decoder layer, the final norm and the LM head (the embedding
    lookup reads one row), plus the K/V of the context."""
    w = llm.engine.model_weights
    layers = sum(layer.nbytes() for layer in w.layers)
    head = sum(t.nbytes for t in vocab_tensors(w.lm_head).values())
    kv = context_len * llm.engine.model_config.kv_bytes_per_token(4)
    return layers + w.final_norm.nbytes + head + kv


def load_hf():
    import os
    from transformers import AutoModelForCausalLM
    path = embedded_model_path()
    return AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-requests", type=int, default=64)
    parser.add_argument("--hf-batch-size", type=int, default=8)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-hf-throughput", action="store_true", help="the HF mixed-batch run takes minutes")
    parser.add_argument("--default-config", action="store_true",
                        help="run ours as LLM() comes (EngineConfig defaults) instead of a 4 GiB budget, 2048 context")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = EngineConfig() if args.default_config else EngineConfig(
        model="embedded", memory_budget_bytes=4 * GiB, max_num_seqs=64, max_model_len=2048)
    llm = LLM(config)
    rows = []
    workload = mixed_workload(args.num_requests)
    ours_tps, n = ours_throughput(llm, workload)
    hf = load_hf()
    hf_tps = None if args.skip_hf_throughput else hf_throughput(hf, workload, args.hf_batch_size)
    rows.append((f"mixed batch, {n} requests: output tok/s", ours_tps, hf_tps, "HF generate, static batches of %d" % args.hf_batch_size))
    prompt = mixed_workload(1, seed=5)[0][0][:64]
    ours_step = ours_decode_step(llm, prompt, args.decode_tokens)
    hf_step = hf_decode_step(hf, prompt, args.decode_tokens)
    rows.append(("single-stream decode tok/s", 1 / ours_step, 1 / hf_step, "HF, batch 1, KV cache"))
    bandwidth = read_bandwidth()
    step_bytes = bytes_per_decode_step(llm, len(prompt) + args.decode_tokens // 2)
    floor = step_bytes / bandwidth
    rows.append(("batch-1 decode step ms (floor %.1f ms)" % (floor * 1e3), ours_step * 1e3, floor * 1e3, "floor = bytes per step / read bandwidth"))
    rows.append(("achieved bandwidth GB/s (measured read %.1f)" % (bandwidth / 1e9), step_bytes / ours_step / 1e9, bandwidth / 1e9, ""))
    concurrent = ours_concurrent(llm, 32, 128, 64)
    cpp_step = llama_cpp_decode_step(prompt, args.decode_tokens, args.threads)
    rows.append(("32 streams aggregate tok/s vs llama.cpp 1 stream", concurrent, None if cpp_step is None else 1 / cpp_step,
                 "llama-cpp-python not installed: skipped" if cpp_step is None else "llama.cpp, same GGUF (Q4_1)"))
    print_table(rows)


def print_table(rows) -> None:
    print(f"{'metric':<52} {'ours':>10} {'peer':>10} {'ratio':>7}  peer")
    for name, ours, peer, note in rows:
        peer_s = "skipped" if peer is None else f"{peer:10.2f}"
        ratio = "" if peer is None else f"{ours / peer:7.2f}"
        print(f"{name:<52} {ours:10.2f} {peer_s:>10} {ratio:>7}  {note}")


if __name__ == "__main__":
    main()
