"""The computing worker (see ``swiftllm.worker.interface``): a ``WorkerBatch`` -> ``InferState`` -> model -> sampler."""
import torch

from swiftllm.model_config import LlamaModelConfig
from swiftllm.worker.batch import SequenceChunk, WorkerBatch
from swiftllm.worker.infer_state import InferState, PrefillSeq
from swiftllm.worker.kv_cache import PagedKVCache
from swiftllm.worker.model import LlamaModel
from swiftllm.worker.sampler import sample
from swiftllm.worker.warm_up import warm_up_chunks, warm_up_linears
from swiftllm.worker.weight import LayerWeights, ModelWeights


class ModelRunner:
    def __init__(self, cfg: LlamaModelConfig, weights: ModelWeights, kv_cache: PagedKVCache, max_positions: int, seed: int):
        self.cfg = cfg
        self.model = LlamaModel(cfg, weights, max_positions)
        self.kv_cache = kv_cache
        self.max_positions = max_positions
        self.device = weights.final_norm.device
        self.generator = torch.Generator().manual_seed(seed)
        self.sequence_generators: dict[str, torch.Generator] = {}

    @property
    def weights(self) -> ModelWeights:
        return self.model.weights

    @property
    def max_kv_blocks(self) -> int:
        return self.kv_cache.max_blocks

    def execute(self, batch: WorkerBatch) -> list[int]:
        """Run every chunk; return the next token of each chunk in ``batch.sampled``, in that order."""
        ordered = _prefill_first(batch.chunks)
        input_ids, state = self.prepare(ordered)
        logits = self.model.forward(input_ids, state, self.kv_cache.k, self.kv_cache.v)   # [S, vocab]
        sampled = [c for c in ordered if c.sampling is not None]
        tokens = sample(logits, [c.sampling for c in sampled], [self._generator(c) for c in sampled])
        by_sequence = {c.seq_id: token for c, token in zip(sampled, tokens)}
        return [by_sequence[c.seq_id] for c in batch.sampled]

    def warm_up(self, max_num_batched_tokens: int) -> None:
        """Run every kernel variant the model can pick (``swiftllm.worker.warm_up``) once; call before serving, while
        no sequence holds KV blocks (the warm-up writes the first ones)."""
        max_context = min(self.max_positions, self.kv_cache.num_blocks * self.kv_cache.block_size)
        for chunks in warm_up_chunks(max_num_batched_tokens, max_context, self.kv_cache.block_size):
            input_ids, state = self.prepare(chunks)
            self.model.forward(input_ids, state, self.kv_cache.k, self.kv_cache.v)
        warm_up_linears(self.weights.layers[0], max_num_batched_tokens, self.weights.final_norm.dtype, self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def release(self, seq_id: str) -> None:
        self.sequence_generators.pop(seq_id, None)

    def resize_kv_cache(self, capacity: int, moves: list[tuple[int, int]]) -> None:
        self.kv_cache.move_blocks(moves)
        self.kv_cache.resize(capacity)

    def install_layer(self, i: int, layer: LayerWeights) -> None:
        self.model.weights.layers[i] = layer

    def prepare(self, chunks: list[SequenceChunk]) -> tuple[torch.Tensor, InferState]:
        """Token ids [T] and the step metadata of ``chunks`` (prefill chunks first, then decode rows)."""
        bs = self.kv_cache.block_size
        ids, positions, slots, prefills, logit_rows = [], [], [], [], []
        decode = []
        row = 0
        for chunk in chunks:
            table = torch.tensor(chunk.block_table, dtype=torch.int64)
            pos = torch.arange(chunk.start, chunk.context_len)
            ids.extend(chunk.token_ids)
            positions.append(pos)
            slots.append(table[pos // bs] * bs + pos % bs)
            if chunk.is_prefill:
                context = None if chunk.start == 0 else _to(_slots_of(table, chunk.context_len, bs), self.device)
                prefills.append(PrefillSeq(row, row + chunk.num_tokens, context))
            else:
                decode.append(chunk)
            row += chunk.num_tokens
            if chunk.sampling is not None:
                logit_rows.append(row - 1)
        tables = lens = None
        decode_lens = [c.context_len for c in decode]
        if decode:
            tables = _padded_tables([c.block_table for c in decode])
            lens = torch.tensor(decode_lens)
        state = InferState(
            positions=_to(torch.cat(positions), self.device), slot_mapping=_to(torch.cat(slots), self.device),
            prefills=prefills, num_prefill_rows=row - len(decode),
            decode_block_tables=_to(tables, self.device), decode_seq_lens=_to(lens, self.device),
            decode_max_seq_len=max(decode_lens, default=0),
            logit_rows=torch.tensor(logit_rows, dtype=torch.int64, device=self.device),
        )
        return torch.tensor(ids, dtype=torch.int64, device=self.device), state

    def _generator(self, chunk: SequenceChunk) -> torch.Generator:
        seed = chunk.sampling.seed
        if seed is None:
            return self.generator
        if chunk.seq_id not in self.sequence_generators:
            self.sequence_generators[chunk.seq_id] = torch.Generator().manual_seed(seed)
        return self.sequence_generators[chunk.seq_id]


def _prefill_first(chunks: list[SequenceChunk]) -> list[SequenceChunk]:
    """The model's row order: every prefill chunk, then the decode rows (each group in batch order)."""
    return [c for c in chunks if c.is_prefill] + [c for c in chunks if not c.is_prefill]


def _slots_of(table: torch.Tensor, num_tokens: int, block_size: int) -> torch.Tensor:
    """Cache slots of positions [0, num_tokens) for one block table: [num_tokens]."""
    pos = torch.arange(num_tokens)
    return table[pos // block_size] * block_size + pos % block_size


def _to(t: torch.Tensor | None, device) -> torch.Tensor | None:
    return None if t is None else t.to(device, non_blocking=True)


def _padded_tables(tables: list[list[int]]) -> torch.Tensor:
    width = max(len(t) for t in tables)
    return torch.tensor([t + [0] * (width - len(t)) for t in tables], dtype=torch.int64)
