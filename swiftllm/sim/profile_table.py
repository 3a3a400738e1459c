"""Per-operator timings of one decoder layer on one GPU, by number of tokens: Vidur's published ``mlp.csv`` tables.

A table row is one (num_tokens, tensor-parallel size) point; ``time_stats.<op>.median`` is milliseconds for one
layer's operator. Only single-GPU rows are used; a token count measured twice keeps the smaller median.
"""
import csv
import os
from dataclasses import dataclass

from swiftllm.sim.hardware import interpolate

LINEAR_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
OTHER_LAYER_OPS = ("input_layernorm", "post_attention_layernorm", "attn_rope", "mlp_act", "add")
ADDS_PER_LAYER = 2      # the two residual additions; the table times one


@dataclass(frozen=True, slots=True)
class OpProfile:
    """tokens: increasing token counts; times[op][i]: seconds at tokens[i] for one layer (``emb``: once per step)."""
    tokens: tuple[int, ...]
    times: dict[str, tuple[float, ...]]

    def time(self, op: str, num_tokens: int) -> float:
        return interpolate(self.tokens, self.times[op], num_tokens)

    def linear_time(self, num_tokens: int) -> float:
        """The four GEMMs of one layer (fused QKV, O, fused gate/up, down)."""
        return sum(self.time(op, num_tokens) for op in LINEAR_OPS)

    def other_time(self, num_tokens: int) -> float:
        """The rest of one layer outside attention: norms, rotary, activation, residual adds."""
        return sum(self.time(op, num_tokens) * (ADDS_PER_LAYER if op == "add" else 1) for op in OTHER_LAYER_OPS)


def profile_path(profile_dir: str, gpu: str, model_name: str) -> str | None:
    """The table of ``model_name`` (e.g. ``llama-2-7b``) on ``gpu`` in ``profile_dir``, or None when there is none."""
    wanted = _PROFILED_MODELS.get(model_name)
    if wanted is None or not os.path.isdir(profile_dir):
        return None
    path = os.path.join(profile_dir, f"{gpu}_{wanted}.mlp.csv")
    return path if os.path.isfile(path) else None


# Model presets -> the org_model part of Vidur's file names (Vicuna-7B has Llama-2-7B's architecture).
_PROFILED_MODELS = {
    "llama-2-7b": "meta-llama_Llama-2-7b-hf",
    "vicuna-7b-v1.5": "meta-llama_Llama-2-7b-hf",
    "llama-3-8b": "meta-llama_Meta-Llama-3-8B",
    "codellama-34b": "codellama_CodeLlama-34b-Instruct-hf",
}


def load_op_profile(path: str) -> OpProfile:
    """Read a Vidur ``mlp.csv`` (single-GPU rows); ``ValueError`` naming the file when a column is missing."""
    best: dict[int, dict[str, float]] = {}
    ops = LINEAR_OPS + OTHER_LAYER_OPS + ("emb",)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [f"time_stats.{op}.median" for op in ops if f"time_stats.{op}.median" not in (reader.fieldnames or [])]
        if missing or "num_tokens" not in (reader.fieldnames or []):
            raise ValueError(f"{path} is not a Vidur mlp.csv table: missing columns {missing or ['num_tokens']}")
        for row in reader:
            if row.get("num_tensor_parallel_workers", "1") != "1":
                continue
            tokens = int(row["num_tokens"])
            times = {op: float(row[f"time_stats.{op}.median"]) / 1e3 for op in ops}
            if tokens not in best or sum(times.values()) < sum(best[tokens].values()):
                best[tokens] = times
    if not best:
        raise ValueError(f"{path} holds no single-GPU rows")
    tokens = tuple(sorted(best))
    return OpProfile(tokens, {op: tuple(best[t][op] for t in tokens) for op in ops})
