"""The LM head (and the embedding it is tied to) in INT8 per output channel: 4x fewer bytes than fp32 to read at
every decode step, and to hold. The embedded SmolLM2's table is itself Q8_0 (int8 in blocks of 32), so one scale
per vocabulary row costs little; ``experiments/perplexity.py`` measures it (docs/quality.md)."""
import dataclasses

from swiftllm.quant.int8_linear import Int8Linear
from swiftllm.worker.weight import ModelWeights

LM_HEAD_PRECISIONS = ("fp", "int8")


def with_int8_lm_head(weights: ModelWeights) -> ModelWeights:
    """``weights`` with the LM head as an ``Int8Linear``; a tied embedding shares it (its rows dequantized when looked
    up), so the full-precision table is no longer held."""
    head = Int8Linear.quantize(weights.lm_head)
    return dataclasses.replace(weights, lm_head=head, embed_tokens=head if weights.tied else weights.embed_tokens)
