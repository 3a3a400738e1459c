"""The worker's step: turn a scheduled batch into an ``InferState``, run the model, sample."""
import torch

from swiftllm.model_config import LlamaModelConfig
from swiftllm.server.structs import Request
from swiftllm.worker.infer_state import InferState, PrefillSeq
from swiftllm.worker.kv_cache import PagedKVCache
from swiftllm.worker.model import LlamaModel
from swiftllm.worker.sampler import sample
from swiftllm.worker.weight import ModelWeights


class ModelRunner:
    def __init__(self, cfg: LlamaModelConfig, weights: ModelWeights, kv_cache: PagedKVCache, max_positions: int, seed: int):
        self.cfg = cfg
        self.model = LlamaModel(cfg, weights, max_positions)
        self.kv_cache = kv_cache
        self.device = weights.embed_tokens.device
        self.generator = torch.Generator().manual_seed(seed)
        self.request_generators: dict[str, torch.Generator] = {}

    def run(self, chunks: list[tuple[Request, int]]) -> list[tuple[Request, int]]:
        """Compute ``n`` new tokens of each (request, n); return (request, next token) for requests whose
        chunk reaches the end of their known tokens. Prefill chunks (n > 1) must precede decodes (n == 1)."""
        input_ids, state, sampled = self.prepare(chunks)
        logits = self.model.forward(input_ids, state, self.kv_cache.k, self.kv_cache.v)   # [S, vocab]
        params = [req.params for req in sampled]
        tokens = sample(logits, params, [self._generator(req) for req in sampled])
        return list(zip(sampled, tokens))

    def release(self, req: Request) -> None:
        self.request_generators.pop(req.request_id, None)

    def prepare(self, chunks: list[tuple[Request, int]]) -> tuple[torch.Tensor, InferState, list[Request]]:
        bs = self.kv_cache.block_size
        prefill = [(r, n) for r, n in chunks if n > 1]
        decode = [(r, n) for r, n in chunks if n == 1]
        ids, positions, slots, prefills, logit_rows, sampled = [], [], [], [], [], []
        row = 0
        for req, n in prefill + decode:
            start = req.num_computed
            table = torch.tensor(req.block_table, dtype=torch.int64)
            pos = torch.arange(start, start + n)
            ids.extend(req.token_ids[start:start + n])
            positions.append(pos)
            slots.append(table[pos // bs] * bs + pos % bs)
            if n > 1:
                context = None if start == 0 else _to(_slots_of(table, start + n, bs), self.device)
                prefills.append(PrefillSeq(row, row + n, context))
            row += n
            if start + n == req.num_tokens:
                logit_rows.append(row - 1)
                sampled.append(req)
        tables = lens = None
        if decode:
            tables = _padded_tables([r.block_table for r, _ in decode])
            lens = torch.tensor([r.num_computed + 1 for r, _ in decode])
        state = InferState(
            positions=_to(torch.cat(positions), self.device), slot_mapping=_to(torch.cat(slots), self.device),
            prefills=prefills, num_prefill_rows=sum(n for _, n in prefill),
            decode_block_tables=_to(tables, self.device), decode_seq_lens=_to(lens, self.device),
            logit_rows=torch.tensor(logit_rows, dtype=torch.int64, device=self.device),
        )
        return torch.tensor(ids, dtype=torch.int64, device=self.device), state, sampled

    def _generator(self, req: Request) -> torch.Generator:
        if req.params.seed is None:
            return self.generator
        if req.request_id not in self.request_generators:
            self.request_generators[req.request_id] = torch.Generator().manual_seed(req.params.seed)
        return self.request_generators[req.request_id]


def _slots_of(table: torch.Tensor, num_tokens: int, block_size: int) -> torch.Tensor:
    """Cache slots of positions [0, num_tokens) for one block table: [num_tokens]."""
    pos = torch.arange(num_tokens)
    return table[pos // block_size] * block_size + pos % block_size


def _to(t: torch.Tensor | None, device) -> torch.Tensor | None:
    return None if t is None else t.to(device, non_blocking=True)


def _padded_tables(tables: list[list[int]]) -> torch.Tensor:
    width = max(len(t) for t in tables)
    return torch.tensor([t + [0] * (width - len(t)) for t in tables], dtype=torch.int64)
