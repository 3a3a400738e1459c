"""Hyper-parameters of the paper's models, as their Hugging Face ``config.json`` files give them.

They let the simulator (and random-weight models) stand in for checkpoints this project's machines do not have.
"""
from swiftllm.model_config import LlamaModelConfig

_LLAMA_2_7B = {
    "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
}

# name -> config.json fields (meta-llama/Llama-2-7b-hf, lmsys/vicuna-7b-v1.5, meta-llama/Meta-Llama-3-8B,
# codellama/CodeLlama-34b-Instruct-hf)
PRESETS: dict[str, dict] = {
    "llama-2-7b": _LLAMA_2_7B,
    "vicuna-7b-v1.5": _LLAMA_2_7B,
    "llama-3-8b": {
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0, "bos_token_id": 128000, "eos_token_id": 128001, "tie_word_embeddings": False,
    },
    "codellama-34b": {
        "hidden_size": 8192, "intermediate_size": 22016, "num_hidden_layers": 48, "num_attention_heads": 64,
        "num_key_value_heads": 8, "vocab_size": 32000, "max_position_embeddings": 16384, "rms_norm_eps": 1e-5,
        "rope_theta": 1000000.0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
    },
}


def preset_config(name: str) -> LlamaModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}")
    return LlamaModelConfig.from_hf_dict({**PRESETS[name], "_name_or_path": name})
