"""The worker interface: what the engine (control plane) asks of a data plane, and nothing more.

A worker owns the model's weights and the paged KV cache's memory; the engine owns the requests, the
scheduler and the block manager. Each step the engine hands the worker a ``WorkerBatch`` of plain sequence
chunks (token ids, start position, block table, sampling parameters) and gets back one token id per chunk
that samples. Between steps the engine may resize the KV cache (moving live blocks first) and install a
decoder layer (the morph runtime swapping precision). Two workers implement it: ``ModelRunner`` computes
(CPU or CUDA); the simulator's worker predicts how long the batch would take and advances a virtual clock.

Contract:
- ``execute(batch)``: run every chunk (prefill chunks of more than one token, decode rows of one) and return
  the sampled token of each chunk in ``batch.sampled``, in that order. K/V of every chunk's tokens is
  written to the cache slots its block table names. A failure raises; nothing of the engine's state has
  changed then, and re-running a chunk rewrites the same slots.
- ``release(seq_id)``: forget per-sequence state (seeded generators) once a sequence finished.
- ``resize_kv_cache(capacity, moves)``: copy the K/V of block ``old`` to block ``new`` for every
  ``(old, new)`` in ``moves``, then make blocks ``0 .. capacity - 1`` the cache. Block ids stay valid.
- ``install_layer(i, layer)``: run decoder layer ``i`` from ``layer`` from the next step on.
"""
from typing import Protocol

from swiftllm.worker.batch import WorkerBatch


class Worker(Protocol):
    max_kv_blocks: int          # the most blocks the cache can ever hold (address space reserved at start)

    def execute(self, batch: WorkerBatch) -> list[int]:
        """One token id per chunk of ``batch.sampled``, in that order."""

    def release(self, seq_id: str) -> None:
        """Drop per-sequence state of a finished sequence."""

    def resize_kv_cache(self, capacity: int, moves: list[tuple[int, int]]) -> None:
        """Move the listed blocks, then grow or shrink the cache to ``capacity`` blocks."""

    def install_layer(self, i: int, layer) -> None:
        """Decoder layer ``i`` runs from ``layer`` from the next step on."""
