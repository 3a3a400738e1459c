"""Llama-family model hyper-parameters, read from an HF ``config.json`` or from GGUF metadata."""
import json
import os
from dataclasses import dataclass, field


@dataclass(slots=True)
class RopeScaling:
    """Llama-3 style frequency-dependent RoPE scaling (``rope_type == "llama3"``)."""
    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int


@dataclass(slots=True)
class LlamaModelConfig:
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_q_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    tie_word_embeddings: bool = False
    bos_token_id: int | None = None
    eos_token_ids: list[int] = field(default_factory=list)
    name: str = "llama"
    torch_dtype: str | None = None      # the dtype the checkpoint was saved in ("float16", "bfloat16", ...), when known

    def __post_init__(self):
        if self.num_q_heads % self.num_kv_heads != 0:
            raise ValueError(f"num_q_heads ({self.num_q_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")
        if self.head_dim % 2 != 0:
            raise ValueError(f"head_dim must be even for rotary embeddings, got {self.head_dim}")

    @property
    def q_size(self) -> int:
        return self.num_q_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """Bytes of K and V for one token across all layers."""
        return self.num_layers * 2 * self.kv_size * dtype_bytes

    @staticmethod
    def from_hf_dict(cfg: dict) -> "LlamaModelConfig":
        archs = cfg.get("architectures") or ["LlamaForCausalLM"]
        if cfg.get("model_type", "llama") not in ("llama", "mistral") and "LlamaForCausalLM" not in archs:
            raise ValueError(f"unsupported model_type {cfg.get('model_type')!r}: only Llama-family decoders are supported")
        num_q_heads = cfg["num_attention_heads"]
        eos = cfg.get("eos_token_id")
        rope = cfg.get("rope_parameters") or {}   # newer HF configs nest rope_theta and the scaling here
        return LlamaModelConfig(
            num_layers=cfg["num_hidden_layers"],
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_q_heads=num_q_heads,
            num_kv_heads=cfg.get("num_key_value_heads") or num_q_heads,
            head_dim=cfg.get("head_dim") or cfg["hidden_size"] // num_q_heads,
            vocab_size=cfg["vocab_size"],
            max_position_embeddings=cfg.get("max_position_embeddings", 2048),
            rms_norm_eps=cfg.get("rms_norm_eps", 1e-5),
            rope_theta=rope.get("rope_theta", cfg.get("rope_theta", 10000.0)),
            rope_scaling=_rope_scaling_from_hf(cfg.get("rope_scaling") or rope),
            tie_word_embeddings=cfg.get("tie_word_embeddings", False),
            bos_token_id=cfg.get("bos_token_id"),
            eos_token_ids=[] if eos is None else ([eos] if isinstance(eos, int) else list(eos)),
            name=cfg.get("_name_or_path", "llama"),
            torch_dtype=cfg.get("torch_dtype") or cfg.get("dtype"),   # newer transformers write "dtype"
        )

    @staticmethod
    def from_hf_folder(path: str) -> "LlamaModelConfig":
        config_file = os.path.join(path, "config.json")
        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"{path!r} has no config.json: not a Hugging Face model folder")
        with open(config_file) as f:
            cfg = json.load(f)
        cfg.setdefault("_name_or_path", os.path.basename(os.path.normpath(path)))
        return LlamaModelConfig.from_hf_dict(cfg)

    @staticmethod
    def from_gguf_fields(fields: dict, has_output_tensor: bool) -> "LlamaModelConfig":
        """``fields``: GGUF key -> python value (``GGUFReader.fields[k].contents()``)."""
        arch = fields.get("general.architecture")
        if arch != "llama":
            raise ValueError(f"unsupported GGUF architecture {arch!r}: only 'llama' is supported")
        num_q_heads = fields["llama.attention.head_count"]
        hidden = fields["llama.embedding_length"]
        eos = fields.get("tokenizer.ggml.eos_token_id")
        return LlamaModelConfig(
            num_layers=fields["llama.block_count"],
            hidden_size=hidden,
            intermediate_size=fields["llama.feed_forward_length"],
            num_q_heads=num_q_heads,
            num_kv_heads=fields.get("llama.attention.head_count_kv", num_q_heads),
            head_dim=fields.get("llama.rope.dimension_count", hidden // num_q_heads),
            vocab_size=fields.get("llama.vocab_size") or len(fields["tokenizer.ggml.tokens"]),
            max_position_embeddings=fields.get("llama.context_length", 2048),
            rms_norm_eps=fields.get("llama.attention.layer_norm_rms_epsilon", 1e-5),
            rope_theta=fields.get("llama.rope.freq_base", 10000.0),
            tie_word_embeddings=not has_output_tensor,
            bos_token_id=fields.get("tokenizer.ggml.bos_token_id"),
            eos_token_ids=[] if eos is None else [eos],
            name=fields.get("general.name", "llama"),
        )


def _rope_scaling_from_hf(rs: dict | None) -> RopeScaling | None:
    if not rs:
        return None
    kind = rs.get("rope_type", rs.get("type"))
    if kind in (None, "default"):
        return None
    if kind != "llama3":
        raise ValueError(f"unsupported rope_scaling type {kind!r}: only 'llama3' is supported")
    return RopeScaling(
        factor=rs["factor"],
        low_freq_factor=rs["low_freq_factor"],
        high_freq_factor=rs["high_freq_factor"],
        original_max_position_embeddings=rs["original_max_position_embeddings"],
    )
