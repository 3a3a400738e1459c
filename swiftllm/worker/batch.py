"""What the control plane hands the worker each step: plain sequence chunks, no request objects.

The engine builds a ``WorkerBatch`` from the scheduler's output; every worker (the model runner, the
simulator's cost-model worker) takes exactly this and returns one token id per chunk that samples.
"""
from dataclasses import dataclass

from swiftllm.sampling_params import SamplingParams


@dataclass(frozen=True, slots=True)
class SequenceChunk:
    """The next tokens of one sequence: positions ``[start, start + len(token_ids))``.

    ``block_table`` (read-only for the worker) covers at least ``start + len(token_ids)`` tokens; its first
    ``start`` tokens already have K/V in the cache. ``sampling`` is set when the chunk reaches the end of the
    sequence's known tokens, so the token after it is sampled; ``None`` for a prompt chunk that stops short.
    """
    seq_id: str
    token_ids: list[int]
    start: int
    block_table: list[int]
    sampling: SamplingParams | None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def context_len(self) -> int:
        """Tokens with K/V in the cache once the chunk has run."""
        return self.start + len(self.token_ids)

    @property
    def is_prefill(self) -> bool:
        """Chunks of more than one token run as prefill; one-token chunks as decode rows."""
        return len(self.token_ids) > 1


@dataclass(frozen=True, slots=True)
class WorkerBatch:
    chunks: list[SequenceChunk]

    @property
    def num_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.chunks)

    @property
    def sampled(self) -> list[SequenceChunk]:
        """The chunks that sample a token, in batch order: the order of the worker's returned tokens."""
        return [c for c in self.chunks if c.sampling is not None]
