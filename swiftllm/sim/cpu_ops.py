"""Op times of this project's CPU engine, timed on this machine (``experiments/calibrate_cpu.py`` writes the table).

The table holds, for the model it was timed with: one decoder layer outside attention at each precision by token
count; decode attention as a fit ``per_call + per_sequence * D + per_context_token * sum(context)``; prefill attention
as ``per_call + per_query_key * pairs + per_context_token * context`` (a cached prefix is gathered from the paged
cache); the LM head by sampled rows; and the step's overhead outside the model as ``step + per_sequence * D``, with
``layer_scale[precision]`` the factor a decoder layer's isolated time at that precision takes inside a real step
(all fitted to real engine steps; attention and the LM head keep their isolated times). It also records the
machine's measured read, copy and checksum speeds.
"""
import json
from collections.abc import Sequence
from dataclasses import dataclass

from swiftllm.model_config import LlamaModelConfig
from swiftllm.sim.hardware import interpolate

OVERHEAD_FIELDS = ("step_s", "per_sequence_s", "layer_scale")
SHAPE_FIELDS = ("num_layers", "hidden_size", "intermediate_size", "num_q_heads", "num_kv_heads", "head_dim", "vocab_size")


@dataclass(frozen=True, slots=True)
class CpuOpTable:
    model: dict                              # the SHAPE_FIELDS of the model the ops were timed with, and its name
    layer_tokens: tuple[int, ...]
    layer_seconds: dict[str, tuple[float, ...]]   # precision -> seconds per layer at each of layer_tokens
    decode_attention: dict[str, float]       # per_call_s, per_sequence_s, per_context_token_s
    prefill_attention: dict[str, float]      # per_call_s, per_query_key_s, per_context_token_s
    head_rows: tuple[int, ...]
    head_seconds: tuple[float, ...]
    overhead: dict                           # step_s, per_sequence_s, layer_scale: {precision: factor}
    machine: dict[str, float]                # read_gbs, copy_gbs, checksum_gbs, threads
    provenance: dict                         # when, where and how it was measured

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @staticmethod
    def from_json(values: dict) -> "CpuOpTable":
        values = dict(values)
        missing = [f for f in OVERHEAD_FIELDS if f not in values["overhead"]]
        if missing:
            raise KeyError(f"overhead lacks {missing}")
        values["layer_tokens"] = tuple(values["layer_tokens"])
        values["layer_seconds"] = {p: tuple(v) for p, v in values["layer_seconds"].items()}
        values["head_rows"], values["head_seconds"] = tuple(values["head_rows"]), tuple(values["head_seconds"])
        return CpuOpTable(**values)


def load_cpu_op_table(path: str) -> CpuOpTable:
    try:
        with open(path, encoding="utf-8") as f:
            return CpuOpTable.from_json(json.load(f))
    except FileNotFoundError:
        raise FileNotFoundError(f"CPU op table {path!r} is missing: write it with `python experiments/calibrate_cpu.py`"
                                ) from None
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"CPU op table {path!r} is malformed ({error!r}): write it again with "
                         "`python experiments/calibrate_cpu.py`") from None


class CpuOps:
    """``OpTimes`` from a ``CpuOpTable``; the model served must have the shapes the table was timed with."""

    def __init__(self, table: CpuOpTable, cfg: LlamaModelConfig):
        mismatched = {f: (getattr(cfg, f), table.model[f]) for f in SHAPE_FIELDS if getattr(cfg, f) != table.model[f]}
        if mismatched:
            raise ValueError(f"the CPU op table was timed with {table.model.get('name')!r}, whose shapes differ from "
                             f"this model's (field: this model, table) {mismatched}: run experiments/calibrate_cpu.py "
                             "with this model")
        missing_scales = set(table.layer_seconds) - set(table.overhead["layer_scale"])
        if missing_scales:
            raise ValueError(f"the CPU op table has no fitted layer_scale for {sorted(missing_scales)}: run "
                             "experiments/calibrate_cpu.py again")
        self.table = table
        self.layer_scale = table.overhead["layer_scale"]

    def layer(self, num_tokens: int, precision: str) -> float:
        isolated = interpolate(self.table.layer_tokens, self.table.layer_seconds[precision], num_tokens)
        return self.layer_scale[precision] * isolated

    def prefill_attention(self, num_tokens: int, context_len: int) -> float:
        fit = self.table.prefill_attention
        prefix = context_len - num_tokens
        pairs = num_tokens * prefix + num_tokens * (num_tokens + 1) / 2
        gathered = context_len if prefix else 0
        return fit["per_call_s"] + fit["per_query_key_s"] * pairs + fit["per_context_token_s"] * gathered

    def decode_attention(self, context_lens: Sequence[int]) -> float:
        fit = self.table.decode_attention
        return (fit["per_call_s"] + fit["per_sequence_s"] * len(context_lens)
                + fit["per_context_token_s"] * sum(context_lens))

    def head(self, num_tokens: int, num_sampled: int) -> float:
        return interpolate(self.table.head_rows, self.table.head_seconds, max(num_sampled, 1))

    def overhead(self, num_sequences: int) -> float:
        return self.table.overhead["step_s"] + self.table.overhead["per_sequence_s"] * num_sequences
