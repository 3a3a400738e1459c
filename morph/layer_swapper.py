"""LayerSwapper: moves decoder layers between precisions in place, between two decode steps.

Every layer lives in a weight slot sized for full precision (``WeightSlots``); the model runs layer ``i``
from a set of views into it, so nothing else in the model is remapped by a swap. What the model runs is
changed only through the ``install(i, layer)`` callable it is given (``LLMEngine.install_layer``). A swap of layer ``i``
to ``target`` goes through these phases, each entered at a step boundary (``begin`` / ``poll``):

1. **verify** (``begin``, CUDA): the slot is committed up to the target's size if that is larger (the
   caller has made room in the budget first) and the target's checksum is verified on the background
   thread. The layer keeps running from its slot.
2. **copy**: the layer switches to the copier's *interim* form of the target, so nothing reads the slot
   any more, and the target is copied into the slot start in the background. The layer's precision
   changes here. A copier that ``checks_copies`` (CPU) starts here at ``begin``, after the commit: the
   copy itself checks the target's bytes, so the layer runs its *source*'s host variant meanwhile and
   keeps its precision until the copy settles.
3. **settle**: the layer switches to views of the slot and the slot's tail after the target is
   released (its bytes count as freed from then on).

A variant that fails its checksum is *refused*: in phase 1 the slot was never written; in a checked copy
the source is copied back into the slot. Either way the layer stays as it was. A copy that fails in
phase 2 is *rolled back*: the layer returns to the interim form of its previous precision, which is
copied back into the slot (on CPU; a CUDA copy that fails to enqueue raises, as the device context is
unusable then). Swaps never touch the KV cache or any request state.
"""
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from morph.cpu_swap_copy import DEFAULT_STEP_SHARE, CpuSwapCopier
from morph.layer_store import CorruptVariantError, LayerStore
from morph.plan import Precision
from morph.swap_copy import CudaSwapCopier, SwapCopier, Ticket
from swiftllm.worker.weight import LayerWeights
from swiftllm.worker.weight_slots import SlotLayout, WeightSlots

InstallLayer = Callable[[int, LayerWeights], None]

logger = logging.getLogger(__name__)

DONE, REFUSED, ROLLED_BACK = "done", "refused", "rolled_back"


@dataclass(frozen=True, slots=True)
class SwapOutcome:
    """How one layer's swap ended. ``precision`` is the layer's precision afterwards."""
    layer: int
    source: Precision
    target: Precision
    status: str                  # DONE | REFUSED | ROLLED_BACK
    bytes_copied: int
    verify_seconds: float
    copy_seconds: float
    error: str | None = None

    @property
    def precision(self) -> Precision:
        return self.target if self.status == DONE else self.source


@dataclass(slots=True)
class _Swap:
    layer: int
    source: Precision
    target: Precision
    ticket: Ticket
    phase: str = "verify"                  # verify | copy | rollback
    verify_seconds: float = 0.0
    bytes_copied: int = 0
    failure: BaseException | None = None   # the copy error being rolled back
    refused: bool = False                  # the failure was the target's checksum: the rollback ends REFUSED


class LayerSwapper:
    """Swaps a model's decoder layers among the precisions held by ``store``; ``install(i, layer)`` makes the
    model run layer ``i`` from ``layer``."""

    def __init__(self, install: InstallLayer, store: LayerStore, slots: WeightSlots, copier: SwapCopier):
        if slots.num_slots != store.num_layers:
            raise ValueError(f"the store has {store.num_layers} layers but the slots {slots.num_slots}")
        self.install = install
        self.store = store
        self.slots = slots
        self.copier = copier
        self.precisions = [Precision.FP] * store.num_layers
        self.version = 0                       # bumped whenever a layer's precision changes
        self._layouts: dict[tuple[int, Precision], SlotLayout] = {}
        self._slot_views: dict[tuple[int, Precision], LayerWeights] = {}
        self._fp_bytes = [self.variant_bytes(i, Precision.FP) for i in range(store.num_layers)]
        self.reserved_bytes = list(self._fp_bytes)   # slot bytes each layer holds in the budget
        self._swaps: dict[int, _Swap] = {}
        for i in range(store.num_layers):
            self._move_into_slot(i)

    @staticmethod
    def into_slots(install: InstallLayer, store: LayerStore, device: str | torch.device,
                   step_share: float = DEFAULT_STEP_SHARE) -> "LayerSwapper":
        """Move the store's full-precision layers into fresh slots on ``device`` and run the model from there
        (``step_share``: on a CPU, the share of each step the swaps' work may take)."""
        slots = WeightSlots([store.layer(i, Precision.FP) for i in range(store.num_layers)], device)
        copier = CudaSwapCopier(slots) if slots.arena.device.type == "cuda" else CpuSwapCopier(slots, step_share)
        return LayerSwapper(install, store, slots, copier)

    @property
    def in_flight(self) -> bool:
        return bool(self._swaps)

    def _move_into_slot(self, i: int) -> None:
        """Place layer ``i``'s full-precision master in its slot and run it from there. The model first runs the
        layer from the host master (on CPU the loaded layer itself), so on CUDA the loaded device copy goes back to
        the driver before the slot takes its memory: the layer is never on the device twice."""
        master = self.store.layer(i, Precision.FP)
        self.install(i, master)
        if self.slots.arena.device.type == "cuda":
            torch.cuda.empty_cache()
        self.slots.commit(i, self._fp_bytes[i])
        self.slots.copy_in(i, master)
        self.install(i, self._views(i, Precision.FP))

    def variant_bytes(self, i: int, precision: Precision) -> int:
        """Slot bytes layer ``i`` needs at ``precision``."""
        return self._layout(i, precision).nbytes

    def _layout(self, i: int, precision: Precision) -> SlotLayout:
        """Where layer ``i``'s tensors at ``precision`` lie in its slot, worked out once (a swap asks several times,
        and each time walks the layer's tensors)."""
        key = (i, precision)
        if key not in self._layouts:
            self._layouts[key] = SlotLayout.of(self.store.layer(i, precision))
        return self._layouts[key]

    def _views(self, i: int, precision: Precision) -> LayerWeights:
        """Layer ``i`` at ``precision`` over the bytes of its slot, made once: a slot's addresses never change (its
        memory is released and committed in place), so the views stay valid, whatever the slot holds meanwhile."""
        key = (i, precision)
        if key not in self._slot_views:
            self._slot_views[key] = self.slots.views(i, self.store.layer(i, precision))
        return self._slot_views[key]

    def freed_bytes(self) -> int:
        """Bytes of full-precision slots not held by any layer now (the KV pool's credit)."""
        return sum(fp - held for fp, held in zip(self._fp_bytes, self.reserved_bytes))

    def extra_bytes_for(self, i: int, target: Precision) -> int:
        """Bytes ``begin(i, target)`` will take from the budget (0 when the target is not larger)."""
        return max(0, self.variant_bytes(i, target) - self.reserved_bytes[i])

    def begin(self, i: int, target: Precision) -> None:
        """Start swapping layer ``i`` to ``target`` (phase 1). Call between two steps, after making room for
        ``extra_bytes_for(i, target)`` bytes."""
        if i in self._swaps:
            raise RuntimeError(f"layer {i} is already being swapped")
        source = self.precisions[i]
        if target == source:
            raise ValueError(f"layer {i} is already at {target.value}")
        self.copier.claim_slot(i)
        needed = self.variant_bytes(i, target)
        if needed > self.reserved_bytes[i]:
            self.slots.commit(i, needed)
            self.reserved_bytes[i] = needed
        if self.copier.checks_copies:
            self._swaps[i] = self._start_checked_copy(i, source, target)
        else:
            self._swaps[i] = _Swap(i, source, target, self.copier.run(lambda: self.store.verify_slices(i, target)))

    def poll(self, paced: bool = False) -> list[SwapOutcome]:
        """At a step boundary: advance the swaps whose work finished, do the boundary's share of the work (``paced``: a
        step just ran, the work takes a share of it; else all of it), advance again; return the swaps that ended."""
        ended = self._advance_all()
        self.copier.advance(paced)
        return ended + self._advance_all()

    def wait_for_work(self) -> None:
        """Block until the work of every swap's current phase has finished (``poll`` advances them)."""
        self.copier.finish()
        for swap in list(self._swaps.values()):
            swap.ticket.wait()

    def close(self) -> None:
        """Stop the background thread; swaps still in flight must have been polled to their end first."""
        if self._swaps:
            raise RuntimeError(f"layers {sorted(self._swaps)} are still being swapped")
        self.copier.close()

    def _advance_all(self) -> list[SwapOutcome]:
        ended = []
        for swap in list(self._swaps.values()):
            outcome = self._advance(swap)
            if outcome is not None:
                del self._swaps[swap.layer]
                ended.append(outcome)
        return ended

    def _advance(self, swap: _Swap) -> SwapOutcome | None:
        """Move ``swap`` through as many phases as its finished work allows."""
        while swap.ticket.done():
            error = swap.ticket.error()
            if swap.phase == "verify":
                if error is not None:
                    return self._refuse(swap, error)
                swap.verify_seconds = swap.ticket.seconds()
                self._start_copy(swap, swap.target, "copy")
            elif swap.phase == "copy" and error is not None:
                self._roll_back(swap, error)
            else:
                return self._settle(swap, error)
        return None

    def _start_copy(self, swap: _Swap, precision: Precision, phase: str) -> None:
        """Run layer ``swap.layer`` on the interim form of ``precision`` while it is copied into the slot."""
        i, variant = swap.layer, self.store.layer(swap.layer, precision)
        swap.phase = phase
        swap.bytes_copied += self.variant_bytes(i, precision)
        swap.ticket = self.copier.copy(i, variant, self.store.checksums(i, precision))
        self.install(i, self.copier.interim(i, variant, swap.ticket))
        self._set_precision(i, precision)

    def _start_checked_copy(self, i: int, source: Precision, target: Precision) -> _Swap:
        """Copy ``target`` into slot ``i``, checking its bytes, while the layer runs its source's interim form."""
        ticket = self.copier.copy(i, self.store.layer(i, target), self.store.checksums(i, target))
        self.install(i, self.copier.interim(i, self.store.layer(i, source), ticket))
        return _Swap(i, source, target, ticket, phase="copy", bytes_copied=self.variant_bytes(i, target))

    def _roll_back(self, swap: _Swap, error: BaseException) -> None:
        """The copy failed (a checked copy: the target's checksum; it then ends REFUSED): copy the source back."""
        swap.failure, swap.refused = error, isinstance(error, CorruptVariantError)
        if swap.refused:
            _log_refusal(swap, error)
        else:
            logger.error("copy of layer %d to %s failed, rolling back: %s", swap.layer, swap.target.value, error)
        self._start_copy(swap, swap.source, "rollback")

    def _refuse(self, swap: _Swap, error: BaseException) -> SwapOutcome:
        _log_refusal(swap, error)
        self._hold(swap.layer, swap.source)
        return self._outcome(swap, REFUSED, 0.0, str(error))

    def _settle(self, swap: _Swap, error: BaseException | None) -> SwapOutcome:
        """The copy of phase ``swap.phase`` ended: the layer runs from its slot again (unless the rollback
        copy failed too: then it stays on its interim form, at its previous precision)."""
        final = swap.target if swap.phase == "copy" else swap.source
        if error is None:
            self.install(swap.layer, self._views(swap.layer, final))
            self._set_precision(swap.layer, final)
            self._hold(swap.layer, final)
        else:
            logger.error("rollback copy of layer %d failed too; it keeps running from the host store: %s",
                         swap.layer, error)
        copy_seconds = swap.ticket.seconds() if error is None else 0.0
        if swap.phase == "copy":
            return self._outcome(swap, DONE, copy_seconds, None)
        return self._outcome(swap, REFUSED if swap.refused else ROLLED_BACK, copy_seconds, str(swap.failure))

    def _hold(self, i: int, precision: Precision) -> None:
        """Layer ``i`` keeps only ``precision``'s bytes of its slot; the tail goes back to the OS / device."""
        self.reserved_bytes[i] = self.variant_bytes(i, precision)
        self.copier.release_tail(i, self.reserved_bytes[i])

    def _set_precision(self, i: int, precision: Precision) -> None:
        if self.precisions[i] != precision:
            self.precisions[i] = precision
            self.version += 1

    @staticmethod
    def _outcome(swap: _Swap, status: str, copy_seconds: float, error: str | None) -> SwapOutcome:
        return SwapOutcome(swap.layer, swap.source, swap.target, status, swap.bytes_copied, swap.verify_seconds,
                           copy_seconds, error)


def _log_refusal(swap: _Swap, error: BaseException) -> None:
    logger.warning("swap of layer %d to %s refused: %s", swap.layer, swap.target.value, error)
