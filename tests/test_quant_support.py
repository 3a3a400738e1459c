"""Tiny random Llama layers and models shared by the ``test_quant_*`` files (no tests here)."""
import torch

from swiftllm.model_config import LlamaModelConfig
from swiftllm.worker.weight import LayerWeights, ModelWeights, dense_layer


def tiny_config(num_layers: int = 2, hidden: int = 96, intermediate: int = 160, num_q_heads: int = 6,
                num_kv_heads: int = 2, head_dim: int = 16) -> LlamaModelConfig:
    """hidden 96 and intermediate 160 are not multiples of 64 or 128: the padding path is exercised."""
    return LlamaModelConfig(num_layers=num_layers, hidden_size=hidden, intermediate_size=intermediate,
                            num_q_heads=num_q_heads, num_kv_heads=num_kv_heads, head_dim=head_dim,
                            vocab_size=128, max_position_embeddings=256)


def random_layer(cfg: LlamaModelConfig, generator: torch.Generator) -> LayerWeights:
    def w(out: int, inp: int) -> torch.Tensor:
        return torch.randn(out, inp, generator=generator) * inp ** -0.5

    def norm() -> torch.Tensor:
        return 1 + 0.1 * torch.randn(cfg.hidden_size, generator=generator)

    h, i = cfg.hidden_size, cfg.intermediate_size
    return dense_layer(norm(), w(cfg.q_size, h), w(cfg.kv_size, h), w(cfg.kv_size, h), w(h, cfg.q_size),
                       norm(), w(i, h), w(i, h), w(h, i))


def random_model(cfg: LlamaModelConfig, seed: int = 0) -> ModelWeights:
    generator = torch.Generator().manual_seed(seed)
    embed = torch.randn(cfg.vocab_size, cfg.hidden_size, generator=generator)
    return ModelWeights(embed_tokens=embed, final_norm=torch.ones(cfg.hidden_size), lm_head=embed,
                        layers=[random_layer(cfg, generator) for _ in range(cfg.num_layers)])


def outlier_inputs(num_tokens: int, width: int, generator: torch.Generator, num_outliers: int = 4) -> torch.Tensor:
    """[num_tokens, width] activations with a few large channels, the situation AWQ is built for."""
    x = torch.randn(num_tokens, width, generator=generator)
    x[:, :num_outliers] *= 20
    return x
