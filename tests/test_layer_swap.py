"""Weight slots, the layer store and the LayerSwapper: in-place swaps, released tails, refusals and rollbacks."""
import logging
import os
import threading
import time

import pytest
import torch

from morph.layer_store import CorruptVariantError, LayerStore, checksums
from morph.layer_swapper import DONE, REFUSED, ROLLED_BACK, LayerSwapper
from morph.plan import Precision
from morph.cpu_swap_copy import CpuSwapCopier
from swiftllm.quant.model_quantizer import quantize_model
from swiftllm.quant.spec import VariantSpec
from swiftllm.quant.variants import quantize_layer_rtn
from swiftllm.quant.variant_cache import load_variant, model_fingerprint
from swiftllm.worker.weight import dense_layer
from swiftllm.worker.weight_loader import load_model
from swiftllm.worker.weight_slots import COPY_SLICE_BYTES, SLOT_ALIGNMENT, SlotLayout, WeightSlots
from tests.test_memory_arena import rss_bytes

FP, INT8, INT4 = Precision.FP, Precision.INT8, Precision.INT4
RTN = VariantSpec("rtn")


@pytest.fixture(scope="module")
def tiny_variants(tiny_llama):
    cfg, weights = load_model(tiny_llama)
    return {INT8: quantize_model(weights, cfg, VariantSpec("int8")), INT4: quantize_model(weights, cfg, RTN)}


@pytest.fixture
def model(tiny_llama, tiny_variants):
    """(weights, store, originals): a fresh tiny model, its store, and clones of its FP tensors."""
    cfg, weights = load_model(tiny_llama)
    originals = [_clone(layer).tensors() for layer in weights.layers]
    variants = {p: [_clone(layer) for layer in layers] for p, layers in tiny_variants.items()}
    store = LayerStore({FP: list(weights.layers), **variants})
    return weights, store, originals


def _clone(layer):
    return layer.with_tensors({k: t.clone() for k, t in layer.tensors().items()})


def _layer_tensors_equal(layer, expected: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(t, expected[k]) for k, t in layer.tensors().items())


def _in_slot(layer, slots: WeightSlots, i: int) -> bool:
    base = slots.arena.view(slots.offsets[i], (1,), torch.uint8).data_ptr()
    return all(base <= t.data_ptr() < base + slots.slot_bytes[i] for t in layer.tensors().values())


def _settle(swapper: LayerSwapper):
    """Run every swap to its end, and the slot releases they leave to the background thread."""
    outcomes = []
    while swapper.in_flight:
        swapper.wait_for_work()
        outcomes += swapper.poll()
    swapper.wait_for_work()
    return outcomes


def _big_layer(hidden=512, intermediate=2048):
    """A 16 MB float32 layer: large enough for its released tail to show in the RSS."""
    g = torch.Generator().manual_seed(0)
    w = lambda rows, cols: torch.randn(rows, cols, generator=g)
    return dense_layer(torch.ones(hidden), w(hidden, hidden), w(hidden, hidden), w(hidden, hidden), w(hidden, hidden),
                       torch.ones(hidden), w(intermediate, hidden), w(intermediate, hidden), w(hidden, intermediate))


def test_slot_views_hold_the_variant_bytes_at_aligned_offsets(model):
    weights, store, _ = model
    slots = WeightSlots([store.layer(i, FP) for i in range(3)], "cpu")
    slots.commit(1, slots.slot_bytes[1])
    for precision in (FP, INT8, INT4):
        variant = store.layer(1, precision)
        slots.copy_in(1, variant)
        views = slots.views(1, variant)
        assert _in_slot(views, slots, 1) and _layer_tensors_equal(views, variant.tensors())
        assert all(p.offset % SLOT_ALIGNMENT == 0 for p in SlotLayout.of(variant).placements)
        x = torch.randn(5, 64)
        assert torch.equal(views.qkv_proj(x), variant.qkv_proj(x))


@pytest.mark.parametrize("which", ["big fp32", "tiny int4"])
def test_copy_slices_group_small_tensors_split_large_ones_and_give_each_tensors_checksums(model, which):
    layer = _big_layer() if which == "big fp32" else model[1].layer(0, INT4)
    slots = WeightSlots([layer], "cpu")
    slots.commit(0, slots.slot_bytes[0])
    pieces = list(slots.copy_slices(0, layer))
    assert all(0 < piece.nbytes <= COPY_SLICE_BYTES for piece in pieces)
    assert sum(piece.nbytes for piece in pieces) == layer.nbytes()
    if which == "tiny int4":
        assert len(pieces) == 1 and len(pieces[0].checksums) == len(layer.tensors())   # every tensor in one slice
    copied = {name: [] for name in layer.tensors()}
    for piece in pieces:
        for name, chunks in piece.checksums.items():
            copied[name] += chunks
    assert {name: tuple(chunks) for name, chunks in copied.items()} == checksums(layer)
    assert _layer_tensors_equal(slots.views(0, layer), layer.tensors())


def test_a_released_tail_returns_memory_and_must_be_committed_before_reuse():
    fp = _big_layer()
    int4 = quantize_layer_rtn(fp)
    slots = WeightSlots([fp], "cpu")
    with pytest.raises(RuntimeError, match="commit first"):
        slots.copy_in(0, fp)
    slots.commit(0, slots.slot_bytes[0])
    slots.copy_in(0, fp)
    int4_bytes = SlotLayout.of(int4).nbytes
    before = rss_bytes()
    slots.copy_in(0, int4)
    released = slots.release_tail(0, int4_bytes)
    assert released > 0.8 * fp.nbytes() and before - rss_bytes() > 0.8 * released, (before - rss_bytes(), released)
    assert slots.release_tail(0, int4_bytes) == 0                       # nothing committed past it any more
    with pytest.raises(RuntimeError, match="commit first"):
        slots.copy_in(0, fp)
    slots.commit(0, SlotLayout.of(fp).nbytes)
    slots.copy_in(0, fp)
    assert _layer_tensors_equal(slots.views(0, fp), fp.tensors())


def test_slots_refuse_variants_that_do_not_fit(model):
    _, store, _ = model
    small = WeightSlots([store.layer(0, INT4)], "cpu")
    with pytest.raises(ValueError, match="do not fit slot 0"):
        small.views(0, store.layer(0, FP))
    with pytest.raises(IndexError, match="slot 3 does not exist"):
        small.commit(3, 8)


def test_store_checksums_catch_a_flipped_byte(model):
    _, store, _ = model
    store.verify(2, INT4)
    weight = store.layer(2, INT4).down_proj.weight
    weight.view(-1)[7] ^= 0x10
    with pytest.raises(CorruptVariantError, match="layer 2 int4 variant fails its checksum"):
        store.verify(2, INT4)
    store.verify(2, INT8)


def test_store_prepare_reads_its_cache_and_requantizes_a_corrupted_one(tiny_llama, tmp_path, monkeypatch, caplog):
    cfg, weights = load_model(tiny_llama)
    first = LayerStore.prepare(weights, cfg, (FP, INT4), RTN, cache_root=str(tmp_path))
    monkeypatch.setattr("morph.layer_store.quantized_layers", _fail_quantize)
    cached = LayerStore.prepare(weights, cfg, (FP, INT4), RTN, cache_root=str(tmp_path))
    assert [checksums(cached.layer(i, INT4)) for i in range(3)] == [checksums(first.layer(i, INT4)) for i in range(3)]
    [variant_file] = tmp_path.glob(f"*/{RTN.name}.safetensors")              # one folder per model
    _flip_last_byte(variant_file)
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="morph.layer_store"):
        again = LayerStore.prepare(weights, cfg, (FP, INT4), RTN, cache_root=str(tmp_path))
    assert "refusing cached variant" in caplog.text
    assert checksums(again.layer(0, INT4)) == checksums(first.layer(0, INT4))
    load_variant(str(variant_file.parent), RTN, model_fingerprint(weights))    # the cache was rewritten whole


def _fail_quantize(*args, **kwargs):
    raise AssertionError("the variant should have come from the cache")


def _flip_last_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


class GatedCopier(CpuSwapCopier):
    """Holds every copy until ``gate`` is set (its slices find nothing to do); fails the copies of ``failing``
    precisions."""

    def __init__(self, slots, store, failing=()):
        super().__init__(slots)
        self.gate = threading.Event()
        self.failing = {id(store.layer(i, p)) for i in range(store.num_layers) for p in failing}

    def copy(self, i, variant, checksums):
        def gated_copy():
            while not self.gate.is_set():
                yield 0
            if id(variant) in self.failing:
                raise OSError("injected copy failure")
            yield from self._checked_copy(i, variant, checksums)
        return self.run(gated_copy)


def _swapper(weights, store, failing=()) -> LayerSwapper:
    slots = WeightSlots([store.layer(i, FP) for i in range(store.num_layers)], "cpu")
    return LayerSwapper(weights.layers.__setitem__, store, slots, GatedCopier(slots, store, failing))


def test_swap_runs_the_source_host_variant_until_the_checked_copy_is_done(model):
    weights, store, _ = model
    swapper = _swapper(weights, store)
    assert all(_in_slot(layer, swapper.slots, i) for i, layer in enumerate(weights.layers))
    swapper.begin(1, INT4)
    for _ in range(3):                                                # the copy is held: nothing ends
        assert swapper.poll(paced=True) == []
    assert swapper.precisions[1] == FP and swapper.version == 0       # INT4 runs only once its bytes are checked
    assert weights.layers[1] is store.layer(1, FP)                    # not a view of the slot being written
    assert swapper.slots.committed_bytes[1] == swapper.variant_bytes(1, FP) and swapper.freed_bytes() == 0
    swapper.copier.gate.set()
    [outcome] = _settle(swapper)
    assert (outcome.status, outcome.precision, outcome.bytes_copied) == (DONE, INT4, swapper.variant_bytes(1, INT4))
    assert swapper.precisions[1] == INT4 and swapper.version == 1 and outcome.verify_seconds == 0.0
    assert _in_slot(weights.layers[1], swapper.slots, 1)
    assert _layer_tensors_equal(weights.layers[1], store.layer(1, INT4).tensors())
    freed = swapper.variant_bytes(1, FP) - swapper.variant_bytes(1, INT4)
    assert swapper.freed_bytes() == freed and swapper.slots.committed_bytes[1] == swapper.variant_bytes(1, INT4)
    swapper.close()


def test_ladder_down_and_back_restores_the_full_precision_bytes(model):
    weights, store, originals = model
    swapper = _swapper(weights, store)
    swapper.copier.gate.set()
    for precision in (INT8, INT4, INT8, FP):
        for i in range(3):
            swapper.begin(i, precision)
        assert {o.status for o in _settle(swapper)} == {DONE}
        assert swapper.precisions == [precision] * 3
        for i, layer in enumerate(weights.layers):          # INT8 again: its slot views are made once, reused
            assert _in_slot(layer, swapper.slots, i)
            assert _layer_tensors_equal(layer, store.layer(i, precision).tensors())
    assert all(_layer_tensors_equal(layer, originals[i]) for i, layer in enumerate(weights.layers))
    assert all(_in_slot(layer, swapper.slots, i) for i, layer in enumerate(weights.layers))
    assert swapper.freed_bytes() == 0
    for i in range(3):
        store.verify(i, FP)                                          # the masters were never written to
    with pytest.raises(ValueError, match="already at fp"):
        swapper.begin(0, FP)
    swapper.close()


def test_a_corrupted_variant_is_refused_and_the_layer_keeps_its_slot(model):
    weights, store, originals = model
    swapper = _swapper(weights, store)
    swapper.copier.gate.set()
    store.layer(0, INT4).qkv_proj.weight.view(-1)[-1] ^= 0x01          # the last byte: found after the whole copy
    swapper.begin(0, INT4)
    [outcome] = _settle(swapper)
    assert outcome.status == REFUSED and "fails its checksum in qkv_proj" in outcome.error and outcome.precision == FP
    assert swapper.precisions[0] == FP and swapper.version == 0 and swapper.freed_bytes() == 0
    assert _in_slot(weights.layers[0], swapper.slots, 0) and _layer_tensors_equal(weights.layers[0], originals[0])
    swapper.close()


class VerifyFirstCopier(CpuSwapCopier):
    """A copier that does not check its copies (as CUDA's): the swapper verifies each variant before copying it."""
    checks_copies = False

    def copy(self, i, variant, checksums):
        return self.run(lambda: self.slots.copy_slices(i, variant))


def test_without_checked_copies_a_variant_is_verified_first_and_runs_from_the_host_during_its_copy(model):
    weights, store, originals = model
    slots = WeightSlots([store.layer(i, FP) for i in range(store.num_layers)], "cpu")
    swapper = LayerSwapper(weights.layers.__setitem__, store, slots, VerifyFirstCopier(slots))
    store.layer(0, INT4).o_proj.weight.view(-1)[0] ^= 0x01
    swapper.begin(0, INT4)
    swapper.begin(1, INT4)
    outcomes = {o.layer: o for o in swapper.poll()}                    # the verifications: the copies start after
    assert swapper.precisions[1] == INT4 and weights.layers[1] is store.layer(1, INT4)
    outcomes.update({o.layer: o for o in _settle(swapper)})
    assert outcomes[0].status == REFUSED and "fails its checksum in o_proj" in outcomes[0].error
    assert outcomes[0].bytes_copied == 0 and _layer_tensors_equal(weights.layers[0], originals[0])
    assert outcomes[1].status == DONE and outcomes[1].verify_seconds > 0 and _in_slot(weights.layers[1], slots, 1)
    swapper.close()


def test_a_failed_copy_rolls_back_to_the_previous_precision(model):
    weights, store, _ = model
    swapper = _swapper(weights, store, failing=(INT4,))
    swapper.copier.gate.set()
    swapper.begin(2, INT8)
    _settle(swapper)
    swapper.begin(2, INT4)
    [outcome] = _settle(swapper)
    assert outcome.status == ROLLED_BACK and "injected copy failure" in outcome.error and outcome.precision == INT8
    assert swapper.precisions[2] == INT8 and swapper.reserved_bytes[2] == swapper.variant_bytes(2, INT8)
    assert _in_slot(weights.layers[2], swapper.slots, 2)
    assert _layer_tensors_equal(weights.layers[2], store.layer(2, INT8).tensors())
    swapper.close()


def test_a_raise_commits_the_slot_before_copying_and_gives_it_back_when_refused(model):
    weights, store, _ = model
    swapper = _swapper(weights, store)
    swapper.copier.gate.set()
    swapper.begin(0, INT4)
    _settle(swapper)
    extra = swapper.extra_bytes_for(0, FP)
    assert extra == swapper.variant_bytes(0, FP) - swapper.variant_bytes(0, INT4) > 0
    store.layer(0, FP).o_proj.weight.view(-1)[3] += 1.0
    swapper.begin(0, FP)
    assert swapper.slots.committed_bytes[0] == swapper.variant_bytes(0, FP) and swapper.extra_bytes_for(0, FP) == 0
    [outcome] = _settle(swapper)
    assert outcome.status == REFUSED and swapper.precisions[0] == INT4
    assert _layer_tensors_equal(weights.layers[0], store.layer(0, INT4).tensors())   # copied back over the bad FP
    assert swapper.slots.committed_bytes[0] == swapper.variant_bytes(0, INT4)
    swapper.close()


def test_slot_releases_run_on_a_thread_at_the_lowest_cpu_priority_and_the_step_loop_keeps_its_own():
    """Giving pages back interrupts every core; it must not take a core from the decode's threads."""
    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = []

    class RecordingSlots:
        def release_tail(self, i, keep_bytes):
            seen.append((i, keep_bytes, priority()))
    before = priority()
    copier = CpuSwapCopier(RecordingSlots())
    copier.release_tail(3, 64)
    copier.finish()
    copier.close()
    assert seen == [(3, 64, 19)] and priority() == before


def test_the_swap_work_takes_its_share_of_each_step_and_all_of_an_idle_boundary():
    copier = CpuSwapCopier(slots=None, step_share=0.01)
    ran = []

    def job(name):
        for slice_number in range(3):
            time.sleep(0.002)
            ran.append((name, slice_number))
            yield 1
    first, second = copier.run(lambda: job("a")), copier.run(lambda: job("b"))
    time.sleep(0.1)                                  # a step of 0.1 s: a budget of 1 ms, one slice, then it ends
    copier.advance(paced=True)
    assert ran == [("a", 0)] and not first.done()
    copier.advance(paced=False)                      # after an idle step: everything, oldest job first
    assert ran == [("a", i) for i in range(3)] + [("b", i) for i in range(3)]
    assert first.done() and second.done() and first.error() is None and first.seconds() >= 0.006
    copier.close()


def test_a_pending_slot_release_is_cancelled_before_the_slot_is_used_again():
    gate = threading.Event()
    released = []

    class SlowSlots:
        def release_tail(self, i, keep_bytes):
            gate.wait()
            released.append(i)
    copier = CpuSwapCopier(SlowSlots())
    copier.release_tail(0, 8)                        # the thread blocks in this one
    copier.release_tail(1, 8)                        # queued behind it
    copier.claim_slot(1)                             # slot 1 is about to be written: its release is cancelled
    gate.set()
    copier.finish()
    copier.close()
    assert released == [0]
