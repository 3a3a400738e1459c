"""Random-weights models: ``model="random:<preset>[:layers=<n>][:seed=<s>]"`` (presets in ``model_presets.py``).

The weights are built directly on the target device in the target dtype, so a 7B-shaped model on a GPU needs
no checkpoint and no host copy. Every element is a hash of (seed, tensor name, index) computed with 64-bit
integer operations, which every device evaluates identically: the same model string gives the same weights on
CPU and GPU (up to the final rounding to the dtype, identical too), and another seed gives other weights.

Values are uniform, scaled so activations keep their size through the layers: a linear's weight has standard
deviation 1 / sqrt(in_features), the embedding 1 / sqrt(3), the norm weights lie in [0.75, 1.25].
"""
import dataclasses
import math
import zlib
from dataclasses import dataclass

import torch

from swiftllm.model_config import LlamaModelConfig
from swiftllm.worker.layers.linear import DenseLinear
from swiftllm.model_presets import preset_config
from swiftllm.worker.weight import LayerWeights, ModelWeights

RANDOM_PREFIX = "random:"
CHUNK_ELEMENTS = 1 << 24        # elements hashed at a time: bounds the int64 temporaries (128 MiB each)
_MASK_24 = (1 << 24) - 1


@dataclass(frozen=True, slots=True)
class RandomModelSpec:
    preset: str
    num_layers: int | None = None
    seed: int = 0

    @staticmethod
    def parse(model: str) -> "RandomModelSpec":
        """``random:<preset>[:layers=<n>][:seed=<s>]`` -> the spec; ValueError naming what is wrong."""
        if not is_random_model(model):
            raise ValueError(f"{model!r} is not a random model (expected {RANDOM_PREFIX}<preset>)")
        preset, *options = model[len(RANDOM_PREFIX):].split(":")
        values = {}
        for option in options:
            key, _, value = option.partition("=")
            if key not in ("layers", "seed") or not value.isdigit():
                raise ValueError(f"bad option {option!r} in {model!r}: expected layers=<n> or seed=<s>")
            values[key] = int(value)
        return RandomModelSpec(preset, values.get("layers"), values.get("seed", 0))

    def config(self) -> LlamaModelConfig:
        return dataclasses.replace(preset_config(self.preset, self.num_layers), name=RANDOM_PREFIX + self.preset)


def is_random_model(model: str) -> bool:
    return model.startswith(RANDOM_PREFIX)


def random_model(model: str, dtype: torch.dtype, device: str | torch.device) -> tuple[LlamaModelConfig, ModelWeights]:
    """The config and weights of ``model`` (a ``random:`` string), in ``dtype`` on ``device``."""
    spec = RandomModelSpec.parse(model)
    cfg = spec.config()
    make = _TensorMaker(spec.seed, dtype, torch.device(device))
    layers = [_random_layer(cfg, make, f"layers.{i}") for i in range(cfg.num_layers)]
    embed = make.uniform("embed_tokens", (cfg.vocab_size, cfg.hidden_size), amplitude=1.0)
    lm_head = embed if cfg.tie_word_embeddings else make.linear("lm_head", cfg.vocab_size, cfg.hidden_size)
    return cfg, ModelWeights(embed_tokens=embed, final_norm=make.norm("final_norm", cfg.hidden_size), lm_head=lm_head,
                             layers=layers)


def _random_layer(cfg: LlamaModelConfig, make: "_TensorMaker", name: str) -> LayerWeights:
    """The fused projections are drawn whole (one tensor each), as the loader would have fused them."""
    qkv_rows = cfg.q_size + 2 * cfg.kv_size
    return LayerWeights(
        attn_norm=make.norm(f"{name}.attn_norm", cfg.hidden_size),
        qkv_proj=DenseLinear(make.linear(f"{name}.qkv_proj", qkv_rows, cfg.hidden_size)),
        o_proj=DenseLinear(make.linear(f"{name}.o_proj", cfg.hidden_size, cfg.q_size)),
        ffn_norm=make.norm(f"{name}.ffn_norm", cfg.hidden_size),
        gate_up_proj=DenseLinear(make.linear(f"{name}.gate_up_proj", 2 * cfg.intermediate_size, cfg.hidden_size)),
        down_proj=DenseLinear(make.linear(f"{name}.down_proj", cfg.hidden_size, cfg.intermediate_size)),
    )


class _TensorMaker:
    def __init__(self, seed: int, dtype: torch.dtype, device: torch.device):
        self.seed = seed
        self.dtype = dtype
        self.device = device

    def linear(self, name: str, out_features: int, in_features: int) -> torch.Tensor:
        """[out, in] with standard deviation 1 / sqrt(in)."""
        return self.uniform(name, (out_features, in_features), amplitude=math.sqrt(3.0 / in_features))

    def norm(self, name: str, size: int) -> torch.Tensor:
        """[size] in [0.75, 1.25]."""
        return self.uniform(name, (size,), amplitude=0.25, center=1.0)

    def uniform(self, name: str, shape: tuple[int, ...], amplitude: float, center: float = 0.0) -> torch.Tensor:
        """``shape`` of values uniform in [center - amplitude, center + amplitude), a pure function of
        (seed, name, index)."""
        out = torch.empty(shape, dtype=self.dtype, device=self.device)
        flat = out.view(-1)
        stream = _stream_key(self.seed, name)
        for start in range(0, flat.numel(), CHUNK_ELEMENTS):
            count = min(CHUNK_ELEMENTS, flat.numel() - start)
            unit = hashed_unit_floats(stream, start, count, self.device)                # [count] in [0, 1)
            flat[start:start + count] = (unit * 2.0 - 1.0) * amplitude + center
        return out


def _stream_key(seed: int, name: str) -> int:
    """A 62-bit key per (seed, tensor): the hash input's high bits, so streams never overlap."""
    return ((seed & 0xFFFFFFFF) << 30) ^ zlib.crc32(name.encode())


def hashed_unit_floats(stream: int, start: int, count: int, device: torch.device) -> torch.Tensor:
    """float32 [count] in [0, 1): splitmix64 of (stream, start + j) for j < count, top 24 bits.

    int64 arithmetic wraps identically on every device; right shifts are masked to act as logical shifts. The
    operations run in place on two buffers (on a CPU, fresh temporaries would cost more than the arithmetic)."""
    z = torch.arange(start, start + count, dtype=torch.int64, device=device)
    shifted = torch.empty_like(z)
    z.add_(_signed(stream * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019))
    for bits, multiplier in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None)):
        z.bitwise_xor_(_logical_shift(z, bits, out=shifted))
        if multiplier is not None:
            z.mul_(_signed(multiplier))
    return _logical_shift(z, 40, out=shifted).bitwise_and_(_MASK_24).to(torch.float32).mul_(1.0 / (1 << 24))


def _logical_shift(z: torch.Tensor, bits: int, out: torch.Tensor) -> torch.Tensor:
    """``z >> bits`` with zeros shifted in, written to ``out``."""
    return torch.bitwise_right_shift(z, bits, out=out).bitwise_and_((1 << (64 - bits)) - 1)


def _signed(value: int) -> int:
    """``value`` mod 2**64 as a signed 64-bit int (what an int64 tensor can hold)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value
