"""Model shapes by name: hyper-parameters for the simulator (``model="llama-2-7b"``, no checkpoint needed) and for
the random-weights source (``model="random:<preset>"``).

The paper's models carry the values of their published ``config.json`` (the fields the engine reads); the two
``tiny-*`` presets are small models of the same families for CPU runs and tests: ``tiny-llama`` has Llama-2's
shape (multi-head attention, intermediate = 2.6875 x hidden), ``tiny-llama-gqa`` Llama-3's (4 query heads per
KV head, rope_theta 500000).
"""
from swiftllm.model_config import LlamaModelConfig

_LLAMA_2_7B = {
    "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
    "torch_dtype": "float16",
}

PRESETS: dict[str, dict] = {
    "llama-2-7b": _LLAMA_2_7B,                  # meta-llama/Llama-2-7b-hf
    "vicuna-7b-v1.5": _LLAMA_2_7B,              # lmsys/vicuna-7b-v1.5: Llama-2-7B's shape and dtype
    "llama-3-8b": {                             # meta-llama/Meta-Llama-3-8B
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192, "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0, "bos_token_id": 128000, "eos_token_id": 128001, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    "codellama-34b": {                          # codellama/CodeLlama-34b-hf
        "hidden_size": 8192, "intermediate_size": 22016, "num_hidden_layers": 48, "num_attention_heads": 64,
        "num_key_value_heads": 8, "vocab_size": 32000, "max_position_embeddings": 16384, "rms_norm_eps": 1e-05,
        "rope_theta": 1000000.0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    "tiny-llama": {
        "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 8,
        "num_key_value_heads": 8, "vocab_size": 512, "max_position_embeddings": 2048, "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
        "torch_dtype": "float16",
    },
    "tiny-llama-gqa": {
        "hidden_size": 256, "intermediate_size": 896, "num_hidden_layers": 4, "num_attention_heads": 8,
        "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 2048, "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
}
PRESETS["vicuna-7b"] = PRESETS["vicuna-7b-v1.5"]


def preset_config(name: str, num_layers: int | None = None) -> LlamaModelConfig:
    """The preset's model config, with ``num_layers`` decoder layers when given (e.g. a 7B-shaped model of 8 layers)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}")
    fields = dict(PRESETS[name], architectures=["LlamaForCausalLM"], _name_or_path=name)
    if num_layers is not None:
        if num_layers < 1:
            raise ValueError(f"a model needs at least one layer, got layers={num_layers}")
        fields["num_hidden_layers"] = num_layers
    return LlamaModelConfig.from_hf_dict(fields)
