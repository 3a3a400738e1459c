"""Per-layer weight slots: each decoder layer's weights live in its own slot of a ``MemoryArena``.

A slot is sized for the layer's full-precision form. Any variant of the layer (FP, INT8, INT4) is
placed at the slot start: its tensors are copied there back to back (each ``SLOT_ALIGNMENT``-aligned)
and the layer is rebuilt as views of those bytes (``LayerWeights.with_tensors``). The bytes after
the variant, the slot's tail, can be released (CPU: pages returned to the OS; CUDA: unmapped) and
committed again before a larger variant is copied in (on CPU a commit is bookkeeping: the copy's
first writes fault the pages back in, on the thread that copies). Slots start on page boundaries,
so releasing one slot's tail never touches another slot.

This module moves bytes only; deciding when a copy is safe (nothing reads the slot) is the caller's job.
"""
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from swiftllm.worker.kernels.cpu_kernels import CHECKSUM_CHUNK_BYTES, CopyPiece, copy_checksummed
from swiftllm.worker.kv_cache import REGION_ALIGNMENT, make_usable, round_up
from swiftllm.worker.memory_arena import MemoryArena, copy_into
from swiftllm.worker.weight import LayerWeights

# Every tensor starts 64-byte aligned: cache-line aligned.
SLOT_ALIGNMENT = 64
COPY_SLICE_BYTES = 1 << 20     # ``copy_slices`` copies at most this much at a time
assert COPY_SLICE_BYTES % CHECKSUM_CHUNK_BYTES == 0, "a copy slice must end where a checksum chunk does"


@dataclass(frozen=True, slots=True)
class CopiedSlice:
    """Tensors or pieces of one copied into a slot by ``copy_slices``, with their checksums."""
    nbytes: int
    checksums: dict[str, list[int]]    # tensor name (``LayerWeights.tensors()``) -> its pieces' chunk checksums


@dataclass(frozen=True, slots=True)
class TensorPlacement:
    name: str
    offset: int               # bytes from the slot start
    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass(frozen=True, slots=True)
class SlotLayout:
    """Where each tensor of one layer variant lies in a slot; ``nbytes`` = end of the last tensor."""
    placements: tuple[TensorPlacement, ...]
    nbytes: int

    @staticmethod
    def of(layer: LayerWeights) -> "SlotLayout":
        placements, offset = [], 0
        for name, tensor in layer.tensors().items():
            offset = round_up(offset, SLOT_ALIGNMENT)
            placements.append(TensorPlacement(name, offset, tuple(tensor.shape), tensor.dtype))
            offset += tensor.numel() * tensor.element_size()
        return SlotLayout(tuple(placements), offset)


class WeightSlots:
    """One slot per decoder layer, holding at most ``full_precision[i]``'s bytes; nothing is committed yet."""

    def __init__(self, full_precision: list[LayerWeights], device: str | torch.device):
        self.slot_bytes = [SlotLayout.of(layer).nbytes for layer in full_precision]   # what a slot may hold
        strides = [round_up(nbytes, REGION_ALIGNMENT) for nbytes in self.slot_bytes]
        self.offsets = [sum(strides[:i]) for i in range(len(strides))]
        self._strides = strides
        self.arena = MemoryArena(sum(strides), device)
        self.committed_bytes = [0] * len(strides)               # bytes backed by memory, from the slot start

    @property
    def num_slots(self) -> int:
        return len(self.slot_bytes)

    def views(self, i: int, variant: LayerWeights) -> LayerWeights:
        """``variant`` (same op kinds, shapes, dtypes) rebuilt over the bytes of slot ``i``."""
        layout = self._checked_layout(i, variant)
        base = self.offsets[i]
        tensors = {p.name: self.arena.view(base + p.offset, p.shape, p.dtype) for p in layout.placements}
        return variant.with_tensors(tensors)

    def copy_in(self, i: int, variant: LayerWeights) -> None:
        """Copy every tensor of ``variant`` to its place in slot ``i`` (CPU: GIL released; CUDA: on the
        current stream). Nothing may read the slot meanwhile."""
        for _, destination, source in self._copies(i, variant):
            copy_into(destination, source)

    def copy_slices(self, i: int, variant: LayerWeights) -> Iterator[CopiedSlice]:
        """CPU: ``copy_in`` a slice at a time, checksumming the bytes as they are copied (one pass over them): yields a
        ``CopiedSlice`` after every ``COPY_SLICE_BYTES`` or less (small tensors together, a larger one in pieces of
        its own; the slot is whole once the iterator is exhausted). A tensor's checksums, in order, are its
        ``tensor_checksums``."""
        if self.arena.device.type != "cpu":
            raise ValueError(f"copy_slices copies into a CPU arena, this one is on {self.arena.device}")
        for names, pieces in self._slices(i, variant):
            checksums = copy_checksummed(pieces)
            yield CopiedSlice(sum(end - begin for _, _, begin, end in pieces), dict(zip(names, checksums)))

    def _slices(self, i: int, variant: LayerWeights) -> Iterator[tuple[list[str], list[CopyPiece]]]:
        """The pieces of ``variant``'s tensors, grouped into slices of at most ``COPY_SLICE_BYTES``: (tensor names,
        pieces); a tensor appears at most once in a slice."""
        names: list[str] = []
        pieces: list[CopyPiece] = []
        size = 0
        for name, destination, source in self._copies(i, variant):
            for begin in range(0, source.nbytes, COPY_SLICE_BYTES):
                end = min(begin + COPY_SLICE_BYTES, source.nbytes)
                if pieces and size + end - begin > COPY_SLICE_BYTES:
                    yield names, pieces
                    names, pieces, size = [], [], 0
                names.append(name)
                pieces.append((destination, source, begin, end))
                size += end - begin
        if pieces:
            yield names, pieces

    def _copies(self, i: int, variant: LayerWeights) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """(name, its place in slot ``i``, the variant's tensor) for each tensor of ``variant``, contiguous; the slot
        must be committed."""
        layout = self._checked_layout(i, variant)
        if layout.nbytes > self.committed_bytes[i]:
            raise RuntimeError(f"slot {i} has {self.committed_bytes[i]} committed bytes, the variant needs "
                               f"{layout.nbytes}: commit first")
        sources = variant.tensors()
        for p in layout.placements:
            yield p.name, self.arena.view(self.offsets[i] + p.offset, p.shape, p.dtype), sources[p.name].contiguous()

    def commit(self, i: int, nbytes: int) -> None:
        """Count the first ``nbytes`` of slot ``i`` as held, and make them usable (kept contents)."""
        self._check_size(i, nbytes)
        make_usable(self.arena, self.offsets[i], nbytes)
        self.committed_bytes[i] = max(self.committed_bytes[i], nbytes)

    def release_tail(self, i: int, keep_bytes: int) -> int:
        """Release slot ``i`` after its first ``keep_bytes``; returns the bytes the OS / device got back (none when
        no more than ``keep_bytes`` are committed)."""
        self._check_size(i, keep_bytes)
        if self.committed_bytes[i] <= keep_bytes:
            return 0
        released = self.arena.release(self.offsets[i] + keep_bytes, self._strides[i] - keep_bytes)
        self.committed_bytes[i] = keep_bytes
        return released

    def _checked_layout(self, i: int, variant: LayerWeights) -> SlotLayout:
        layout = SlotLayout.of(variant)
        self._check_size(i, layout.nbytes)
        return layout

    def _check_size(self, i: int, nbytes: int) -> None:
        if not 0 <= i < self.num_slots:
            raise IndexError(f"slot {i} does not exist ({self.num_slots} slots)")
        if not 0 <= nbytes <= self.slot_bytes[i]:
            raise ValueError(f"{nbytes} bytes do not fit slot {i} of {self.slot_bytes[i]} bytes")
