"""Per-step metadata of one forward pass, built once by the runner and passed down explicitly."""
from dataclasses import dataclass

import torch


@dataclass(slots=True)
class PrefillSeq:
    """A prompt chunk of one sequence: batch rows [start, end) are context positions [context_len - (end - start), context_len)."""
    start: int
    end: int
    context_slots: torch.Tensor | None  # [context_len] cache slots when a cached prefix exists, else None


@dataclass(slots=True)
class InferState:
    """Batch rows are ordered: all prefill chunks first, then one row per decoding sequence."""
    positions: torch.Tensor            # [T] int64, position of each row in its sequence
    slot_mapping: torch.Tensor         # [T] int64, cache slot each row's K/V is written to
    prefills: list[PrefillSeq]
    num_prefill_rows: int
    decode_block_tables: torch.Tensor | None  # [D, max_blocks] block tables of the decoding sequences (None: no decode)
    decode_seq_lens: torch.Tensor | None      # [D] context length of each, the new token included
    decode_max_seq_len: int                   # max(decode_seq_lens), known on the host (0: no decode)
    logit_rows: torch.Tensor           # [S] rows whose next-token logits are needed
