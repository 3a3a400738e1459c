"""End-to-end decode tokens/s of the embedded model with every decoder layer at FP32, INT8 or INT4, the LM head at
FP32 or INT8, at batch 1 and 32; llama.cpp on the same GGUF (Q4_1 layers, Q8_0 head) single stream, in the same run.

    python benchmarks/bench_quantized_decode.py [--method rtn|awq --calibration-text PATH] [--threads 2]
                                                [--tokens 128] [--json out.json]

Targets (issue 16): all-INT4 single stream >= 0.8x llama.cpp; INT4 >= 2.5x and INT8 >= 1.8x FP32 at batch 1;
INT4 >= 1.5x FP32 at batch 32. A peer that is not installed (llama-cpp-python) is skipped, and the table says so.
"""
import argparse
import json
import random

import torch

from bench_engine import llama_cpp_decode_step
from morph.runtime import MorphConfig, attach_morph
from swiftllm import LLM, EngineConfig, SamplingParams

GiB = 1 << 30
BATCHES = (1, 32)


def decode_tokens_per_s(llm: LLM, streams: int, num_tokens: int, prompt_len: int = 64) -> float:
    """Aggregate decode tokens/s once every stream is decoding (prefill excluded)."""
    rng = random.Random(streams)
    prompts = [[rng.randrange(1000, 49000) for _ in range(prompt_len)] for _ in range(streams)]
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=num_tokens, ignore_eos=True))
    start = max(o.outputs[0].token_times[0] for o in outs)
    end = max(o.outputs[0].token_times[-1] for o in outs)
    return sum(sum(1 for t in o.outputs[0].token_times if t > start) for o in outs) / (end - start)


def measure_head(head: str, args) -> dict[str, dict[int, float]]:
    """tok/s of every layer precision at each batch, with the LM head at ``head``."""
    llm = LLM(EngineConfig(model="embedded", memory_budget_bytes=4 * GiB, max_num_seqs=64, max_model_len=1024,
                           lm_head=head))
    decode_tokens_per_s(llm, 1, 8)                                     # warm-up
    results = {"fp32": {b: decode_tokens_per_s(llm, b, args.tokens) for b in BATCHES}}
    runtime = attach_morph(llm.engine, MorphConfig(policy=None, int4_method=args.method,
                                                   calibration_text_path=args.calibration_text))
    for precision in ("int8", "int4"):
        runtime.apply([precision] * llm.engine.model_config.num_layers)
        results[precision] = {b: decode_tokens_per_s(llm, b, args.tokens) for b in BATCHES}
    runtime.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=("rtn", "awq"), default="rtn")
    parser.add_argument("--calibration-text", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128, help="decode tokens per measurement")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {f"head {head}": measure_head(head, args) for head in ("fp", "int8")}
    cpp_step = llama_cpp_decode_step([random.Random(0).randrange(1000, 49000) for _ in range(64)], args.tokens,
                                     args.threads)
    llama_cpp = None if cpp_step is None else 1 / cpp_step
    print(f"decode tokens/s, INT4 = {args.method} group 128; llama.cpp 1 stream: "
          + ("not installed (skipped)" if llama_cpp is None else f"{llama_cpp:.1f}"))
    print(f"{'LM head':<10}{'layers':<8}" + "".join(f"{'batch ' + str(b):>10}{'vs FP32':>9}" for b in BATCHES)
          + f"{'vs llama.cpp':>14}")
    for head, by_precision in results.items():
        for precision, tps in by_precision.items():
            cells = "".join(f"{tps[b]:>10.1f}{tps[b] / results['head fp']['fp32'][b]:>9.2f}" for b in BATCHES)
            versus = "" if llama_cpp is None else f"{tps[1] / llama_cpp:>14.2f}"
            print(f"{head:<10}{precision:<8}{cells}{versus}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tokens_per_s": results, "llama_cpp_tokens_per_s": llama_cpp}, f, indent=1)


if __name__ == "__main__":
    main()
