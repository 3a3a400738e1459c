"""The step loop shared by the offline ``LLM`` API and the online async engine."""
import logging
import time
from typing import Callable

from swiftllm.engine_config import EngineConfig
from swiftllm.sampling_params import SamplingParams
from swiftllm.server.block_manager import BlockManager
from swiftllm.server.memory import plan_memory
from swiftllm.server.scheduler import ScheduledBatch, Scheduler, SchedulerConfig
from swiftllm.server.structs import Request, RequestOutput, RequestStatus, StepStats, TokenRecord
from swiftllm.server.tokenization import LlamaTokenizer
from swiftllm.worker.kv_cache import PagedKVCache
from swiftllm.worker.runner import ModelRunner
from swiftllm.worker.weight_loader import load_model

logger = logging.getLogger(__name__)

StepHook = Callable[[StepStats], None]


class LLMEngine:
    def __init__(self, config: EngineConfig, clock: Callable[[], float] = time.perf_counter):
        self.config = config
        self.clock = clock
        dtype = config.torch_dtype()
        self.model_config, weights = load_model(config.model, dtype, config.device)
        self.tokenizer = LlamaTokenizer.load(config.model)
        self.max_model_len = config.max_model_len or min(self.model_config.max_position_embeddings, 4096)
        block_bytes = PagedKVCache.block_bytes(self.model_config, config.block_size, dtype)
        self.memory = plan_memory(self.model_config, config, weights.nbytes(), block_bytes, self.max_model_len)
        self.memory.log()
        kv_cache = PagedKVCache(self.model_config, self.memory.num_kv_blocks, config.block_size, dtype, config.device,
                                max_blocks=self.memory.budget_bytes // block_bytes)   # room to grow within the budget
        self.block_manager = BlockManager(self.memory.num_kv_blocks, config.block_size, config.watermark)
        self.scheduler = Scheduler(SchedulerConfig(config.max_num_seqs, config.max_num_batched_tokens), self.block_manager)
        self.runner = ModelRunner(self.model_config, weights, kv_cache, self.max_model_len, config.seed)
        self.requests: dict[str, Request] = {}
        self.step_hooks: list[StepHook] = []
        self.num_quantized_layers = 0
        self.precision_version = 0   # which layers are quantized: a version the morph runtime maps to precisions
        self.num_arrivals = 0    # since the last step boundary
        self.num_finished = 0

    @property
    def eos_token_ids(self) -> set[int]:
        ids = set(self.model_config.eos_token_ids)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def add_request(self, prompt: str | list[int], params: SamplingParams, arrival_time: float | None = None,
                    request_id: str | None = None) -> Request:
        """Queue a request. ``arrival_time`` (engine clock) lets a replay stamp the trace's arrival time."""
        token_ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        self._validate(token_ids, params, request_id)
        req = Request(prompt_token_ids=token_ids, params=params,
                      arrival_time=self.clock() if arrival_time is None else arrival_time,
                      prompt=prompt if isinstance(prompt, str) else None)
        if request_id is not None:
            req.request_id = request_id
        self.requests[req.request_id] = req
        self.scheduler.add(req)
        self.num_arrivals += 1
        return req

    def abort(self, request_id: str) -> RequestOutput | None:
        req = self.scheduler.abort(request_id)
        if req is None:
            return None
        self._finish(req, "abort", remove_from_scheduler=False)
        return RequestOutput.of(req)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def step(self) -> list[RequestOutput]:
        """One iteration: schedule, run, sample, stop checks, step hooks. Returns the requests that advanced."""
        start = self.clock()
        batch = self.scheduler.schedule()
        sampled = self.runner.run(batch.chunks) if batch.chunks else []
        now = self.clock()
        for req, n in batch.chunks:
            req.num_computed += n
            if req.first_scheduled_time is None:
                req.first_scheduled_time = start
        ttfts, tpots = [], []
        for req, token in sampled:
            self._append_token(req, token, now, ttfts, tpots)
        self._run_hooks(batch, start, now, ttfts, tpots)
        return [RequestOutput.of(req) for req, _ in sampled]

    def _append_token(self, req: Request, token: int, now: float, ttfts: list, tpots: list) -> None:
        req.output_token_ids.append(token)
        req.token_records.append(TokenRecord(now, self.num_quantized_layers, self.precision_version))
        if len(req.output_token_ids) == 1:
            ttfts.append(now - req.arrival_time)
        reason = self._stop_reason(req, token)
        if reason is not None:
            self._finish(req, reason)
            if len(req.output_token_ids) > 1:
                tpots.append((now - req.first_token_time) / (len(req.output_token_ids) - 1))

    def _stop_reason(self, req: Request, token: int) -> str | None:
        p = req.params
        if not p.ignore_eos and token in self.eos_token_ids:
            return "stop"
        if token in p.stop_token_ids:
            return "stop"
        if p.stop and self._hit_stop_string(req):
            return "stop"
        if len(req.output_token_ids) >= p.max_tokens or req.num_tokens >= self.max_model_len:
            return "length"
        return None

    def _hit_stop_string(self, req: Request) -> bool:
        text = self.tokenizer.decode(req.output_token_ids)
        for stop in req.params.stop:
            cut = text.find(stop)
            if cut >= 0:
                req.output_text = text[:cut]
                return True
        return False

    def _finish(self, req: Request, reason: str, remove_from_scheduler: bool = True) -> None:
        if remove_from_scheduler:
            self.scheduler.finish(req)
        if reason != "stop" or not req.params.stop or not req.output_text:
            req.output_text = self.tokenizer.decode(req.output_token_ids)
        req.status = RequestStatus.FINISHED
        req.finish_reason = reason
        req.finish_time = self.clock()
        self.runner.release(req)
        del self.requests[req.request_id]
        self.num_finished += 1

    def _run_hooks(self, batch: ScheduledBatch, start: float, now: float, ttfts: list, tpots: list) -> None:
        """Report the step to the hooks (e.g. the morph loop), which may change the model between two steps."""
        arrivals, finished = self.num_arrivals, self.num_finished
        self.num_arrivals = self.num_finished = 0
        if not self.step_hooks:
            return
        waiting = self.scheduler.waiting
        stats = StepStats(
            time=now, duration=now - start, num_running=len(self.scheduler.running), num_waiting=len(waiting),
            num_prefill_tokens=sum(n for _, n in batch.chunks if n > 1),
            num_decode_tokens=sum(1 for _, n in batch.chunks if n == 1),
            kv_blocks_used=self.block_manager.num_used, kv_blocks_capacity=self.block_manager.capacity,
            oldest_waiting_time=now - waiting[0].arrival_time if waiting else 0.0,
            blocked_on_kv=batch.blocked_on_kv, num_preemptions=len(batch.preempted),
            num_quantized_layers=self.num_quantized_layers, num_arrivals=arrivals, num_finished=finished, ttfts=ttfts, tpots=tpots,
            weight_bytes=self.memory.weight_bytes, kv_bytes=self.memory.kv_bytes,
            workspace_bytes=self.memory.workspace_bytes,
        )
        for hook in self.step_hooks:
            hook(stats)

    def _validate(self, token_ids: list[int], params: SamplingParams, request_id: str | None) -> None:
        if not isinstance(params, SamplingParams):
            raise TypeError(f"params must be SamplingParams, got {type(params).__name__}")
        if not token_ids:
            raise ValueError("the prompt is empty")
        if len(token_ids) >= self.max_model_len:
            raise ValueError(f"prompt of {len(token_ids)} tokens does not fit the context of {self.max_model_len} tokens")
        if any(t < 0 or t >= self.model_config.vocab_size for t in token_ids):
            raise ValueError(f"prompt token ids must be in [0, {self.model_config.vocab_size})")
        if request_id is not None and request_id in self.requests:
            raise ValueError(f"request id {request_id!r} is already in use")
        total = min(len(token_ids) + params.max_tokens, self.max_model_len)
        if self.block_manager.blocks_for(total) > self.block_manager.capacity:
            raise ValueError(f"a request of {total} tokens needs more KV blocks than the cache holds "
                             f"({self.block_manager.capacity} blocks of {self.block_manager.block_size} tokens)")


class LLM:
    """Offline batch API: ``LLM(config).generate(prompts, params)``."""

    def __init__(self, config: EngineConfig | None = None, **kwargs):
        self.engine = LLMEngine(config or EngineConfig(**kwargs))

    def generate(self, prompts: list[str | list[int]], params: SamplingParams | list[SamplingParams],
                 use_tqdm: bool = False) -> list[RequestOutput]:
        params_list = params if isinstance(params, list) else [params] * len(prompts)
        if len(params_list) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(params_list)} sampling params")
        reqs = [self.engine.add_request(p, sp) for p, sp in zip(prompts, params_list)]
        progress = _progress(len(reqs), use_tqdm)
        while self.engine.has_unfinished():
            finished = sum(o.finished for o in self.engine.step())
            progress.update(finished)
        progress.close()
        return [RequestOutput.of(r) for r in reqs]


def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc="generate", disable=not enabled)
