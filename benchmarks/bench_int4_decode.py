"""End-to-end decode tokens/s of an all-INT4 model against full precision, at batch 1 and 32, in one run.

    python benchmarks/bench_int4_decode.py [--method rtn|awq --calibration-text PATH] [--threads 2]
"""
import argparse
import random

import torch

from morph.runtime import MorphConfig, attach_morph
from swiftllm import LLM, EngineConfig, SamplingParams

GiB = 1 << 30


def decode_tokens_per_s(llm: LLM, streams: int, prompt_len: int = 64, num_tokens: int = 64) -> float:
    """Aggregate decode tokens/s once every stream is decoding (prefill excluded)."""
    rng = random.Random(streams)
    prompts = [[rng.randrange(1000, 49000) for _ in range(prompt_len)] for _ in range(streams)]
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=num_tokens, ignore_eos=True))
    start = max(o.outputs[0].token_times[0] for o in outs)
    end = max(o.outputs[0].token_times[-1] for o in outs)
    return sum(sum(1 for t in o.outputs[0].token_times if t > start) for o in outs) / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=("rtn", "awq"), default="rtn")
    parser.add_argument("--calibration-text", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    llm = LLM(EngineConfig(model="embedded", memory_budget_bytes=4 * GiB, max_num_seqs=64, max_model_len=1024))
    fp = {b: decode_tokens_per_s(llm, b) for b in (1, 32)}
    runtime = attach_morph(llm.engine, MorphConfig(policy=None, precisions=("fp", "int4"), int4_method=args.method,
                                                   calibration_text_path=args.calibration_text))
    runtime.apply(["int4"] * llm.engine.model_config.num_layers)
    int4 = {b: decode_tokens_per_s(llm, b) for b in (1, 32)}
    runtime.close()
    print(f"{'batch':>5} {'FP32 tok/s':>11} {'INT4 tok/s':>11} {'INT4/FP':>8}   (INT4 = {args.method}, group 128)")
    for b in (1, 32):
        print(f"{b:>5} {fp[b]:11.1f} {int4[b]:11.1f} {int4[b] / fp[b]:8.2f}")


if __name__ == "__main__":
    main()
