"""Host store of every decoder layer in every precision: the source of all swap copies.

Prepared once at start: the full-precision masters are the loaded layers themselves (never written
to afterwards), the quantized variants come from the variant cache when it holds them and are
quantized (and then cached) otherwise. Every tensor of every (layer, precision) gets checksums of its bytes, one per
256 KiB chunk (``csrc/checksum.cpp``: CRC-32C lanes, about 10x zlib's CRC-32 here); a swap checks a variant's bytes
against them, so a variant corrupted in memory is refused instead of served: on CUDA before the copy, tensor by tensor
(``verify_slices``), on CPU as it copies them (``WeightSlots.copy_slices``). On CUDA the store lives in pinned host
memory, so copies to the device run asynchronously.

Device memory while a CUDA store is prepared (the KV pool already holds most of the card): the variants are
quantized on the device one layer at a time and each goes to pinned host memory before the next is made;
cached variants are read into host memory without touching the device. So the device holds at most the
loaded weights + the KV pool + one layer's variants (plus AWQ's calibration activations).
"""
import logging
import os
from collections.abc import Iterable, Iterator, Sequence

import torch

from morph.plan import Precision
from swiftllm.model_config import LlamaModelConfig
from swiftllm.quant.model_quantizer import quantized_layers
from swiftllm.quant.spec import VariantSpec
from swiftllm.quant.variant_cache import (VariantCacheError, has_variant, load_variant, model_fingerprint,
                                          save_variant)
from swiftllm.worker.kernels.cpu_kernels import tensor_checksums
from swiftllm.worker.weight import LayerWeights, ModelWeights

logger = logging.getLogger(__name__)


class CorruptVariantError(RuntimeError):
    """A stored variant no longer matches the checksum taken when it was prepared."""


def variant_spec(precision: Precision, int4_spec: VariantSpec) -> VariantSpec:
    """The quantization recipe behind a quantized precision."""
    if precision == Precision.INT8:
        return VariantSpec("int8")
    if precision == Precision.INT4:
        if int4_spec.bits != 4:
            raise ValueError(f"the INT4 variant needs a 4-bit method (rtn or awq), got {int4_spec.name!r}")
        return int4_spec
    raise ValueError(f"{precision.value} is not a quantized precision")


Checksums = dict[str, tuple[int, ...]]     # a layer's tensors by name: the checksums of their chunks


def checksums(layer: LayerWeights) -> Checksums:
    """The chunk checksums of every tensor of ``layer``."""
    return {name: tensor_checksums(tensor) for name, tensor in layer.tensors().items()}


class LayerStore:
    """``layer(i, precision)``: layer ``i``'s variant in host memory, with its checksums."""

    def __init__(self, variants: dict[Precision, list[LayerWeights]], device: str | torch.device = "cpu"):
        if Precision.FP not in variants:
            raise ValueError("the layer store needs the full-precision layers (the masters restores copy from)")
        counts = {len(layers) for layers in variants.values()}
        if len(counts) != 1:
            raise ValueError(f"every precision needs one variant per layer, got {({p.value: len(v) for p, v in variants.items()})}")
        pinned = torch.device(device).type == "cuda"
        self._variants = {p: _to_host(layers, pinned) for p, layers in variants.items()}
        self._checksums = {p: [checksums(layer) for layer in layers] for p, layers in self._variants.items()}

    @staticmethod
    def prepare(weights: ModelWeights, cfg: LlamaModelConfig, precisions: Sequence[Precision], int4_spec: VariantSpec,
                cache_root: str | None = None, calibration: list[torch.Tensor] | None = None,
                device: str | torch.device = "cpu") -> "LayerStore":
        """Every layer of ``weights`` in each of ``precisions`` (FP always included).

        Quantized variants are read from the variant cache ``<cache_root>/<model fingerprint>`` (one
        folder per model, so one root serves every model) when it holds them, else quantized (AWQ needs
        ``calibration`` token sequences) and written there; ``cache_root=None`` disables the cache. A
        cached variant that fails its checksums is refused with a warning and quantized again.
        """
        model_hash = model_fingerprint(weights) if cache_root else ""
        cache_dir = os.path.join(os.path.expanduser(cache_root), model_hash[:16]) if cache_root else None
        pinned = torch.device(device).type == "cuda"
        variants = {Precision.FP: _to_host(weights.layers, pinned)}
        for precision in precisions:
            if precision != Precision.FP:
                spec = variant_spec(precision, int4_spec)
                variants[precision] = _cached_or_quantized(weights, cfg, spec, cache_dir, model_hash, calibration,
                                                           torch.device(device))
        return LayerStore(variants, device)

    @property
    def precisions(self) -> tuple[Precision, ...]:
        return tuple(p for p in Precision if p in self._variants)

    @property
    def num_layers(self) -> int:
        return len(self._variants[Precision.FP])

    @property
    def nbytes(self) -> int:
        """Host memory the store holds: every layer in every precision, the full-precision masters included."""
        return sum(layer.nbytes() for layers in self._variants.values() for layer in layers)

    def layer(self, i: int, precision: Precision) -> LayerWeights:
        self._check(i, precision)
        return self._variants[precision][i]

    def verify(self, i: int, precision: Precision) -> None:
        """Raise ``CorruptVariantError`` unless the variant's bytes still match their checksums."""
        for _ in self.verify_slices(i, precision):
            pass

    def checksums(self, i: int, precision: Precision) -> Checksums:
        """The checksums taken of layer ``i``'s variant when the store was prepared."""
        self._check(i, precision)
        return self._checksums[precision][i]

    def verify_slices(self, i: int, precision: Precision) -> Iterator[int]:
        """Verify the variant tensor by tensor, yielding the bytes checked after each (so the work can be spread over
        step boundaries); ``CorruptVariantError`` at the first tensor that no longer matches."""
        expected = self.checksums(i, precision)
        for name, tensor in self.layer(i, precision).tensors().items():
            if tensor_checksums(tensor) != expected[name]:
                raise CorruptVariantError(f"layer {i} {precision.value} variant fails its checksum in {name} "
                                          "(memory corrupted); refused")
            yield tensor.nbytes

    def _check(self, i: int, precision: Precision) -> None:
        if precision not in self._variants:
            raise KeyError(f"the layer store holds no {precision.value} variants (has {[p.value for p in self.precisions]})")
        if not 0 <= i < self.num_layers:
            raise IndexError(f"layer {i} does not exist ({self.num_layers} layers)")


def _cached_or_quantized(weights: ModelWeights, cfg: LlamaModelConfig, spec: VariantSpec, cache_dir: str | None,
                         model_hash: str, calibration: list[torch.Tensor] | None, device: torch.device
                         ) -> list[LayerWeights]:
    """The variant's layers in host memory, laid out for ``device``'s kernels."""
    pinned = device.type == "cuda"
    if cache_dir:
        try:
            if has_variant(cache_dir, spec, model_hash):
                return _to_host(load_variant(cache_dir, spec, model_hash, "cpu", num_layers=len(weights.layers),
                                             layout=device), pinned)
        except VariantCacheError as error:
            logger.warning("refusing cached variant %s: %s; quantizing it again", spec.name, error)
    layers = _to_host(quantized_layers(weights, cfg, spec, calibration), pinned)
    if cache_dir:
        save_variant(cache_dir, spec, layers, model_hash, metadata={"source": "morph layer store"})
    return layers


def _to_host(layers: Iterable[LayerWeights], pinned: bool) -> list[LayerWeights]:
    """Each layer over host memory, taken one at a time (a layer on the device is dropped once it is copied, before
    the next is made): pinned copies for CUDA, the layers themselves on CPU."""
    if not pinned:
        return list(layers)
    return list(map(_pinned_layer, layers))


def _pinned_layer(layer: LayerWeights) -> LayerWeights:
    return layer.with_tensors({name: _pinned_copy(t) for name, t in layer.tensors().items()})


def _pinned_copy(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in pinned host memory (itself when it is pinned already): one copy, straight into pinned pages."""
    if tensor.is_pinned():
        return tensor
    return torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True).copy_(tensor.detach())

