"""Defect 1 of issue 13 on the CPU: what a CUDA layer store holds outside host memory while it is prepared, and the
order in which the layers move into their slots.

A CUDA store keeps every variant in pinned host memory; here ``_pinned_copy`` (which needs a CUDA driver) is
replaced by a plain host copy, and every variant the quantizer makes (on the device, in a real run) is tracked by
weak references: at most one layer's variant may be alive outside the store when the next one is made. Cached
variants must be read into host memory without ever being put on the device. ``tests/gpu/test_swap_gpu.py``
measures the real peak with ``torch.cuda.max_memory_allocated``.
"""
import weakref

import pytest
import torch

import morph.layer_store
from morph.layer_store import LayerStore
from morph.layer_swapper import LayerSwapper
from morph.plan import Precision
from swiftllm.quant.awq_linear import AwqLinear
from swiftllm.quant.spec import VariantSpec
from swiftllm.worker.weight_loader import load_model
from swiftllm.worker.weight_slots import WeightSlots

FP, INT8, INT4 = Precision.FP, Precision.INT8, Precision.INT4
RTN = VariantSpec("rtn")


@pytest.fixture
def host_copies(monkeypatch) -> list:
    """Stand in for pinned copies on a machine without CUDA; returns the copies made."""
    copies = []

    def host_copy(tensor: torch.Tensor) -> torch.Tensor:
        if any(tensor is c for c in copies):
            return tensor
        copies.append(tensor.clone())
        return copies[-1]
    monkeypatch.setattr(morph.layer_store, "_pinned_copy", host_copy)
    return copies


def test_a_cuda_store_holds_at_most_one_new_layer_variant_outside_host_memory(tiny_llama, host_copies, monkeypatch):
    cfg, weights = load_model(tiny_llama)
    made, most_alive = [], [0]
    quantize = morph.layer_store.quantized_layers

    def tracked(*args, **kwargs):
        for variant in quantize(*args, **kwargs):
            most_alive[0] = max(most_alive[0], sum(any(ref() is not None for ref in refs) for refs in made))
            made.append([weakref.ref(t) for name, t in variant.tensors().items() if "." in name])   # the linears'
            yield variant
    monkeypatch.setattr(morph.layer_store, "quantized_layers", tracked)
    store = LayerStore.prepare(weights, cfg, (FP, INT8, INT4), RTN, device="cuda")
    assert len(made) == 2 * cfg.num_layers and most_alive[0] == 0
    assert all(ref() is None for refs in made for ref in refs)       # the store keeps host copies only
    kept = {id(t) for p in (INT8, INT4) for i in range(cfg.num_layers) for t in store.layer(i, p).tensors().values()}
    assert kept <= {id(c) for c in host_copies}


def test_cached_variants_are_read_into_host_memory_in_the_cuda_layout(tiny_llama, tmp_path, host_copies, monkeypatch):
    cfg, weights = load_model(tiny_llama)
    LayerStore.prepare(weights, cfg, (FP, INT4), RTN, cache_root=str(tmp_path))        # fills the cache
    monkeypatch.setattr(morph.layer_store, "quantized_layers", _no_quantizing)
    store = LayerStore.prepare(weights, cfg, (FP, INT4), RTN, cache_root=str(tmp_path), device="cuda")
    op = store.layer(1, INT4).gate_up_proj
    assert isinstance(op, AwqLinear) and all(t.device.type == "cpu" for t in op.tensors().values())
    assert any(op.qweight is copy for copy in host_copies)


def _no_quantizing(*args, **kwargs):
    raise AssertionError("the variant should have come from the cache")


class RecordingSlots(WeightSlots):
    def __init__(self, layers, log: list):
        super().__init__(layers, "cpu")
        self.log = log

    def commit(self, i, nbytes):
        self.log.append(("commit", i))
        super().commit(i, nbytes)

    def copy_in(self, i, variant):
        self.log.append(("copy", i))
        super().copy_in(i, variant)


def test_a_layer_runs_from_its_host_master_before_its_slot_takes_memory(tiny_llama):
    """On CUDA the model's loaded copy of a layer is dropped (and the allocator emptied) before the slot is committed,
    so moving the weights into slots never needs two device copies of a layer."""
    cfg, weights = load_model(tiny_llama)
    store = LayerStore({FP: list(weights.layers)})
    log = []

    def install(i, layer):
        log.append(("install", i, "master" if layer is store.layer(i, FP) else "slot"))
    slots = RecordingSlots([store.layer(i, FP) for i in range(cfg.num_layers)], log)
    LayerSwapper(install, store, slots, copier=None)
    assert log == [event for i in range(cfg.num_layers)
                   for event in (("install", i, "master"), ("commit", i), ("copy", i), ("install", i, "slot"))]
