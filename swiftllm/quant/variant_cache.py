"""On-disk cache of quantized layer variants, so a server starts without re-quantizing.

Layout of a cache folder:
- ``<variant name>.safetensors``: every layer's tensors in portable form (``portable.py``), keys
  ``layers.<i>.<tensor name>``;
- ``manifest.json``: the model fingerprint, and per variant its method, bits, group size, the
  description of each linear op, free-form metadata (e.g. the calibration used) and the sha256 of
  every tensor. Loading recomputes each sha256; a mismatch (a corrupted or edited file) is an error.

Everything read from the folder is checked before use: a manifest that is not valid JSON, lacks a field, has
a field of the wrong type or names a file outside its folder is a ``VariantCacheError`` like a corrupted
tensor, and ``save_variant`` replaces such a manifest with a fresh one (the variants it listed are rebuilt
when next needed).
"""
import hashlib
import json
import logging
import os

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from swiftllm.quant.portable import linear_from_portable, linear_to_portable
from swiftllm.quant.spec import VariantSpec
from swiftllm.worker.weight import LINEAR_NAMES, NORM_NAMES, LayerWeights, ModelWeights, vocab_tensors

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class VariantCacheError(RuntimeError):
    """The cache is missing, built for another model, or fails its checksums."""


def model_fingerprint(weights: ModelWeights) -> str:
    """sha256 over every weight tensor of the model (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    named = {}
    for name in ("embed_tokens", "final_norm", "lm_head"):
        matrix = getattr(weights, name)
        named.update({name: matrix} if isinstance(matrix, torch.Tensor)
                     else {f"{name}.{key}": t for key, t in vocab_tensors(matrix).items()})
    for i, layer in enumerate(weights.layers):
        named.update({f"layers.{i}.{key}": t for key, t in layer.tensors().items()})
    for name, tensor in named.items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def save_variant(cache_dir: str, spec: VariantSpec, layers: list[LayerWeights], model_hash: str,
                 metadata: dict | None = None) -> str:
    """Write one variant of all ``layers`` and record it in the manifest; returns the file path."""
    os.makedirs(cache_dir, exist_ok=True)
    linears, tensors = _portable_layers(layers)
    file_name = f"{spec.name}.safetensors"
    _atomic_save(tensors, os.path.join(cache_dir, file_name))
    manifest = _manifest_to_extend(cache_dir, model_hash)
    if manifest["model_hash"] != model_hash:
        raise VariantCacheError(f"{cache_dir} holds variants of another model ({manifest['model_hash'][:12]}...); "
                                "use a separate cache folder per model")
    manifest["variants"][spec.name] = {
        "method": spec.method, "bits": spec.bits, "group_size": spec.group_size, "file": file_name,
        "num_layers": len(layers), "linears": linears, "metadata": metadata or {},
        "sha256": {key: _sha256(t) for key, t in tensors.items()},
    }
    _atomic_write_json(manifest, os.path.join(cache_dir, MANIFEST))
    logger.info("saved variant %s (%d layers) to %s", spec.name, len(layers), cache_dir)
    return os.path.join(cache_dir, file_name)


def load_variant(cache_dir: str, spec: VariantSpec, model_hash: str, device: str | torch.device = "cpu",
                 num_layers: int | None = None, layout: str | torch.device | None = None) -> list[LayerWeights]:
    """Read, verify and rebuild one variant on ``device`` for the kernels of ``layout`` (default: ``device``; INT4
    re-packed for this CPU or for CUDA); ``num_layers``, when given, is the number of layers the variant must hold."""
    entry = _variant_entry(cache_dir, spec, model_hash)
    if num_layers is not None and entry["num_layers"] != num_layers:
        raise VariantCacheError(f"variant {spec.name!r} in {cache_dir!r} has {entry['num_layers']} layers, "
                                f"the model {num_layers}")
    path = os.path.join(cache_dir, entry["file"])
    tensors = _load_tensors(path)
    _verify(path, tensors, entry["sha256"])
    device = torch.device(device)
    layout = device if layout is None else torch.device(layout)
    try:
        return [_layer_from_portable(tensors, i, entry["linears"], device, layout) for i in range(entry["num_layers"])]
    except (KeyError, TypeError, ValueError) as error:
        raise VariantCacheError(f"{path}: the manifest's description of variant {spec.name!r} does not match its "
                                f"tensors: {error!r}") from error


def has_variant(cache_dir: str, spec: VariantSpec, model_hash: str) -> bool:
    """Whether the manifest lists ``spec`` for this model (the file itself is checked on load); a malformed
    manifest is a ``VariantCacheError``."""
    if not os.path.isfile(os.path.join(cache_dir, MANIFEST)):
        return False
    manifest = _read_manifest(cache_dir)
    return manifest["model_hash"] == model_hash and spec.name in manifest["variants"]


def _portable_layers(layers: list[LayerWeights]) -> tuple[dict, dict[str, torch.Tensor]]:
    linears, tensors = {}, {}
    for i, layer in enumerate(layers):
        for name in NORM_NAMES:
            tensors[f"layers.{i}.{name}"] = getattr(layer, name)
        for name in LINEAR_NAMES:
            meta, own = linear_to_portable(getattr(layer, name))
            if linears.setdefault(name, meta) != meta:
                raise ValueError(f"layer {i} {name} is {meta}, layer 0's is {linears[name]}: one variant, one op kind")
            tensors.update({f"layers.{i}.{name}.{key}": t for key, t in own.items()})
    return linears, {key: t.detach().cpu().contiguous() for key, t in tensors.items()}


def _layer_from_portable(tensors: dict[str, torch.Tensor], i: int, linears: dict, device: torch.device,
                         layout: torch.device) -> LayerWeights:
    prefix = f"layers.{i}."
    ops = {}
    for name, meta in linears.items():
        own = {key[len(prefix + name) + 1:]: t for key, t in tensors.items() if key.startswith(f"{prefix}{name}.")}
        ops[name] = linear_from_portable(meta, own, device, layout)
    norms = {name: tensors[prefix + name].to(device).contiguous() for name in NORM_NAMES}
    return LayerWeights(**norms, **ops)


def _variant_entry(cache_dir: str, spec: VariantSpec, model_hash: str) -> dict:
    if not os.path.isfile(os.path.join(cache_dir, MANIFEST)):
        raise VariantCacheError(f"no variant cache in {cache_dir!r} ({MANIFEST} missing)")
    manifest = _read_manifest(cache_dir)
    if manifest["model_hash"] != model_hash:
        raise VariantCacheError(f"the variant cache in {cache_dir!r} was built for another model "
                                f"({manifest['model_hash'][:12]}... != {model_hash[:12]}...)")
    if spec.name not in manifest["variants"]:
        raise VariantCacheError(f"variant {spec.name!r} is not in {cache_dir!r} (has {sorted(manifest['variants'])})")
    return manifest["variants"][spec.name]


def _load_tensors(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise VariantCacheError(f"variant file {path!r} is missing")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise VariantCacheError(f"variant file {path!r} is unreadable (corrupted?): {err}") from err


def _verify(path: str, tensors: dict[str, torch.Tensor], expected: dict[str, str]) -> None:
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise VariantCacheError(f"{path}: tensors differ from the manifest (missing {missing[:3]}, unexpected {extra[:3]})")
    for key, tensor in tensors.items():
        if _sha256(tensor) != expected[key]:
            raise VariantCacheError(f"{path}: tensor {key!r} fails its sha256 checksum (file corrupted or modified); "
                                    "delete the variant and quantize again")


def _read_manifest(cache_dir: str) -> dict:
    """The manifest, checked field by field; ``VariantCacheError`` for anything malformed."""
    path = os.path.join(cache_dir, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VariantCacheError(f"{path} is not valid JSON (corrupted?): {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise VariantCacheError(f"{path} has format version {version}, expected {FORMAT_VERSION}")
    _require(path, manifest, "model_hash", str)
    _require(path, manifest, "variants", dict)
    for name, entry in manifest["variants"].items():
        _check_entry(path, name, entry)
    return manifest


def _check_entry(path: str, name: str, entry) -> None:
    where = f"{path}: variant {name!r}"
    if not isinstance(entry, dict):
        raise VariantCacheError(f"{where} is not an object")
    for field, kind in (("file", str), ("num_layers", int), ("linears", dict), ("sha256", dict)):
        _require(where, entry, field, kind)
    file = entry["file"]
    if os.path.basename(file) != file or file in ("", ".", ".."):
        raise VariantCacheError(f"{where} names file {file!r}, not a file inside the cache folder")
    if entry["num_layers"] < 1:
        raise VariantCacheError(f"{where} has {entry['num_layers']} layers")


def _require(where: str, record: dict, field: str, kind: type) -> None:
    value = record.get(field)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise VariantCacheError(f"{where}: field {field!r} must be a {kind.__name__}, got {value!r}")


def _manifest_to_extend(cache_dir: str, model_hash: str) -> dict:
    """The folder's manifest, or a new one when there is none or it is malformed (which is logged)."""
    if not os.path.isfile(os.path.join(cache_dir, MANIFEST)):
        return _new_manifest(model_hash)
    try:
        return _read_manifest(cache_dir)
    except VariantCacheError as error:
        logger.warning("replacing the malformed variant cache manifest: %s", error)
        return _new_manifest(model_hash)


def _new_manifest(model_hash: str) -> dict:
    return {"format_version": FORMAT_VERSION, "model_hash": model_hash, "variants": {}}


def _sha256(tensor: torch.Tensor) -> str:
    return hashlib.sha256(_tensor_bytes(tensor)).hexdigest()


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().cpu().contiguous().view(-1).view(torch.uint8)
    return memoryview(flat.numpy())


def _atomic_save(tensors: dict[str, torch.Tensor], path: str) -> None:
    tmp = path + ".tmp"
    save_file(tensors, tmp)
    os.replace(tmp, path)


def _atomic_write_json(obj: dict, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
