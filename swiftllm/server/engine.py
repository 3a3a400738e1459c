"""The step loop shared by the offline ``LLM`` API and the online async engine.

The engine owns the control-plane state: requests, scheduler, block manager, memory plan, the precision each
decoder layer runs at, and the clock every control-plane component reads. The worker (data plane) sees only
``WorkerBatch``es. Extensions such as the morph runtime change the engine only through its named hooks:
``add_step_hook`` (called at every step boundary with the step's ``StepStats``), ``resize_kv_pool``,
``install_layer`` and ``publish_precisions``; they read it through ``memory``, ``kv_capacity``,
``kv_blocks_used``, ``max_kv_blocks``, ``model_weights`` and ``clock``.
"""
import dataclasses
import logging
import time
from typing import Callable

from swiftllm.engine_config import EngineConfig
from swiftllm.sampling_params import SamplingParams
from swiftllm.server.block_manager import BlockManager
from swiftllm.server.detokenizer import IncrementalDetokenizer
from swiftllm.server.memory import MemoryPlan, plan_memory
from swiftllm.server.model_source import ModelSource, load_model_source
from swiftllm.server.scheduler import ScheduledBatch, Scheduler, SchedulerConfig
from swiftllm.server.structs import KVResize, Request, RequestOutput, RequestStatus, StepStats, TokenRecord
from swiftllm.server.validation import check_arrival_time, check_request_id, check_sampling_params, prompt_token_ids
from swiftllm.worker.batch import SequenceChunk, WorkerBatch
from swiftllm.worker.kv_cache import PagedKVCache
from swiftllm.worker.weight import ModelWeights

logger = logging.getLogger(__name__)

StepHook = Callable[[StepStats], None]
Clock = Callable[[], float]
FULL_PRECISION = "fp"
LAYER_PRECISIONS = (FULL_PRECISION, "int8", "int4")    # what a decoder layer can run at, most to least precise


class LLMEngine:
    def __init__(self, config: EngineConfig, clock: Clock = time.perf_counter, source: ModelSource | None = None):
        """``source``: the model and its worker; by default ``config.model`` loaded and served by the computing
        worker (the simulator passes one whose worker predicts time on ``clock``)."""
        self.config = config
        self.clock = clock
        source = source or load_model_source(config)
        self.model_config, self.tokenizer = source.model_config, source.tokenizer
        self.max_model_len = config.max_model_len or min(self.model_config.max_position_embeddings, 4096)
        block_bytes = PagedKVCache.block_bytes(self.model_config, config.block_size, source.dtype)
        self._memory = plan_memory(self.model_config, config, source.weights, block_bytes, self.max_model_len)
        self._memory.log()
        self.block_manager = BlockManager(self._memory.num_kv_blocks, config.block_size, config.watermark)
        self.scheduler = Scheduler(SchedulerConfig(config.max_num_seqs, config.max_num_batched_tokens), self.block_manager)
        self.worker = source.make_worker(self._memory, self.max_model_len)
        self.requests: dict[str, Request] = {}
        self._detokenizers: dict[str, IncrementalDetokenizer] = {}
        self._step_hooks: list[StepHook] = []
        self._layer_precisions = (FULL_PRECISION,) * self.model_config.num_layers
        self._precision_version = 0
        self._num_quantized_layers = 0
        self._num_arrivals = 0    # since the last step boundary
        self._num_finished = 0
        self._next_request_id = 0

    # ---- what extensions read ----------------------------------------------------------------------

    @property
    def memory(self) -> MemoryPlan:
        """The memory plan as it stands now (weights at their current precisions, the current KV capacity)."""
        return self._memory

    @property
    def kv_capacity(self) -> int:
        return self.block_manager.capacity

    @property
    def kv_blocks_used(self) -> int:
        return self.block_manager.num_used

    @property
    def max_kv_blocks(self) -> int:
        return self.worker.max_kv_blocks

    @property
    def min_kv_capacity(self) -> int:
        """The smallest capacity the pool may shrink to now: the live blocks, and the whole need of every accepted
        request (prompt + max_tokens, within the context), so that no accepted request can become unrunnable."""
        needs = (self._blocks_needed(len(r.prompt_token_ids), r.params) for r in self.requests.values())
        return max(self.block_manager.num_used, max(needs, default=1))

    @property
    def model_weights(self) -> ModelWeights:
        """The worker's weights (read-only: change a layer with ``install_layer``)."""
        return self.worker.weights

    @property
    def layer_precisions(self) -> tuple[str, ...]:
        return self._layer_precisions

    @property
    def precision_version(self) -> int:
        return self._precision_version

    @property
    def num_quantized_layers(self) -> int:
        return self._num_quantized_layers

    @property
    def step_hooks(self) -> tuple[StepHook, ...]:
        return tuple(self._step_hooks)

    @property
    def eos_token_ids(self) -> set[int]:
        ids = set(self.model_config.eos_token_ids)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    # ---- named hooks ---------------------------------------------------------------------------------

    def add_step_hook(self, hook: StepHook) -> None:
        """Call ``hook(stats)`` at every step boundary, after the step's tokens were appended."""
        self._step_hooks.append(hook)

    def remove_step_hook(self, hook: StepHook) -> None:
        self._step_hooks.remove(hook)

    def resize_kv_pool(self, new_capacity: int) -> KVResize | None:
        """Grow or shrink the KV pool to ``new_capacity`` blocks: block manager, the worker's cache and the memory
        plan together. A shrink moves live blocks above the new capacity below it first. Returns ``None``, changing
        nothing, for a shrink below ``min_kv_capacity`` (live blocks, or an accepted request's whole need, would not
        fit). Call between two steps."""
        before = self.block_manager.capacity
        if not 1 <= new_capacity <= self.max_kv_blocks:
            raise ValueError(f"KV capacity must lie in [1, {self.max_kv_blocks}] blocks, got {new_capacity}")
        if new_capacity < before and new_capacity < self.min_kv_capacity:
            return None
        start = self.clock()
        moves = []
        if new_capacity > before:
            self.worker.resize_kv_cache(new_capacity, [])
            self.block_manager.grow(new_capacity)
        elif new_capacity < before:
            moves = self.block_manager.shrink(new_capacity)
            self.worker.resize_kv_cache(new_capacity, moves)
        self._memory = dataclasses.replace(self._memory, num_kv_blocks=new_capacity)
        resize = KVResize(before, new_capacity, len(moves), self.clock() - start)
        logger.debug("KV capacity %d -> %d blocks (%d live blocks moved) in %.2f ms", before, new_capacity,
                     len(moves), resize.seconds * 1e3)
        return resize

    def install_layer(self, i: int, layer) -> None:
        """Decoder layer ``i`` runs from ``layer`` from the next step on (call between two steps)."""
        if not 0 <= i < self.model_config.num_layers:
            raise IndexError(f"layer {i} does not exist ({self.model_config.num_layers} layers)")
        self.worker.install_layer(i, layer)

    def publish_precisions(self, version: int, precisions: tuple[str, ...], weight_bytes: int) -> None:
        """Record what the decoder layers run at from now on: ``precisions[i]`` of layer ``i`` (``"fp"`` = full
        precision) under provenance ``version`` (stamped on every token), holding ``weight_bytes`` of memory."""
        if len(precisions) != self.model_config.num_layers:
            raise ValueError(f"{len(precisions)} precisions for {self.model_config.num_layers} layers")
        self._layer_precisions = tuple(precisions)
        self._precision_version = version
        self._num_quantized_layers = sum(p != FULL_PRECISION for p in precisions)
        self._memory = dataclasses.replace(self._memory, weight_bytes=weight_bytes)

    # ---- requests ------------------------------------------------------------------------------------

    def add_request(self, prompt: str | list[int], params: SamplingParams, arrival_time: float | None = None,
                    request_id: str | None = None) -> Request:
        """Queue a request, or raise ``TypeError`` / ``ValueError`` naming what is wrong (nothing is queued then).
        ``arrival_time`` (engine clock) lets a replay stamp the trace's arrival time. A request that could never
        run (longer than the context, or needing more KV blocks than the pool holds) is refused here."""
        check_sampling_params(params)
        check_request_id(request_id)
        check_arrival_time(arrival_time)
        token_ids = prompt_token_ids(prompt, self.model_config.vocab_size)
        if token_ids is None:
            token_ids = self.tokenizer.encode(prompt)
        self._check_fits(token_ids, params)
        if request_id is not None and request_id in self.requests:
            raise ValueError(f"request id {request_id!r} is already in use")
        req = Request(prompt_token_ids=token_ids, params=params,
                      arrival_time=self.clock() if arrival_time is None else float(arrival_time),
                      request_id=self._new_request_id() if request_id is None else request_id,
                      prompt=prompt if isinstance(prompt, str) else None)
        self.requests[req.request_id] = req
        if params.detokenize:
            self._detokenizers[req.request_id] = IncrementalDetokenizer(self.tokenizer.decode, len(token_ids))
        self.scheduler.add(req)
        self._num_arrivals += 1
        return req

    def abort(self, request_id: str) -> RequestOutput | None:
        req = self.scheduler.abort(request_id)
        if req is None:
            return None
        self._finish(req, "abort", remove_from_scheduler=False)
        return RequestOutput.of(req)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    # ---- the step --------------------------------------------------------------------------------------

    def step(self) -> list[RequestOutput]:
        """One iteration (``step_requests``); a snapshot of every request that advanced."""
        return [RequestOutput.of(req) for req in self.step_requests()]

    def step_requests(self) -> list[Request]:
        """One iteration: schedule, run, sample, stop checks, step hooks. Returns the requests that advanced (the
        engine's own records: read them, change nothing), for callers that need no snapshot per step.

        A failure while running the batch is contained: the chunks are run again one by one and only the requests
        whose own chunk fails end, with ``finish_reason == "error"``; the others go on. A failing step hook raises
        out of the step (the step's tokens are already appended)."""
        start = self.clock()
        batch = self.scheduler.schedule()
        worker_batch = self._worker_batch(batch)
        tokens, failures = self._execute(worker_batch)
        now = self.clock()
        advanced, ttfts, tpots = [], [], []
        for (req, n), chunk in zip(batch.chunks, worker_batch.chunks):
            if req.request_id in failures:
                self._fail(req, failures[req.request_id])
                advanced.append(req)
                continue
            req.num_computed += n
            if req.first_scheduled_time is None:
                req.first_scheduled_time = start
            if chunk.sampling is not None:
                self._append_token_or_fail(req, tokens[req.request_id], now, ttfts, tpots)
                advanced.append(req)
        self._run_hooks(batch, start, now, ttfts, tpots)
        return advanced

    def _execute(self, batch: WorkerBatch) -> tuple[dict[str, int], dict[str, Exception]]:
        """Sampled token per sequence id, and the failure of every sequence whose chunk cannot run."""
        if not batch.chunks:
            return {}, {}
        try:
            return dict(zip((c.seq_id for c in batch.sampled), self.worker.execute(batch))), {}
        except Exception as failure:
            if len(batch.chunks) == 1:
                return {}, {batch.chunks[0].seq_id: failure}
            logger.warning("a batch of %d chunks failed (%r); running them one by one", len(batch.chunks), failure)
        tokens, failures = {}, {}
        for chunk in batch.chunks:
            try:
                sampled = self.worker.execute(WorkerBatch([chunk]))
            except Exception as failure:
                failures[chunk.seq_id] = failure
                continue
            if sampled:
                tokens[chunk.seq_id] = sampled[0]
        return tokens, failures

    def _fail(self, req: Request, failure: Exception) -> None:
        logger.error("request %s failed and was ended: %r", req.request_id, failure)
        req.error = f"{type(failure).__name__}: {failure}"
        self._finish(req, "error")

    @staticmethod
    def _worker_batch(batch: ScheduledBatch) -> WorkerBatch:
        chunks = []
        for req, n in batch.chunks:
            end = req.num_computed + n
            sampling = req.params if end == req.num_tokens else None
            chunks.append(SequenceChunk(req.request_id, req.token_ids[req.num_computed:end], req.num_computed,
                                        req.block_table, sampling))
        return WorkerBatch(chunks)

    def _append_token_or_fail(self, req: Request, token: int, now: float, ttfts: list, tpots: list) -> None:
        try:
            self._append_token(req, token, now, ttfts, tpots)
        except Exception as failure:
            if not req.is_finished:
                self._fail(req, failure)

    def _append_token(self, req: Request, token: int, now: float, ttfts: list, tpots: list) -> None:
        """Append the sampled token, record when and under which precisions it was made, check the stop conditions."""
        req.record_token(token, TokenRecord(now, self._num_quantized_layers, self._precision_version))
        if req.num_output_tokens == 1:
            ttfts.append(now - req.arrival_time)
        detokenizer = self._detokenizers.get(req.request_id)
        new_text = detokenizer.update(req.token_ids) if detokenizer else ""
        reason = self._stop_reason(req, token, new_text)
        if detokenizer:
            req.output_text = detokenizer.text
        if reason is not None:
            self._finish(req, reason)
            if req.num_output_tokens > 1:
                tpots.append((now - req.first_token_time) / (req.num_output_tokens - 1))

    def _stop_reason(self, req: Request, token: int, new_text: str) -> str | None:
        p = req.params
        if not p.ignore_eos and token in self.eos_token_ids:
            return "stop"
        if token in p.stop_token_ids:
            return "stop"
        if p.stop and new_text and self._cut_at_stop_string(req, len(new_text)):
            return "stop"
        if req.num_output_tokens >= p.max_tokens or req.num_tokens >= self.max_model_len:
            return "length"
        return None

    def _cut_at_stop_string(self, req: Request, num_new_chars: int) -> bool:
        """Whether a stop string ends in the newest text; if so the output text ends before it."""
        detokenizer = self._detokenizers[req.request_id]
        text = detokenizer.text
        longest = max(len(stop) for stop in req.params.stop)
        search_from = max(0, len(text) - num_new_chars - longest + 1)
        cuts = [cut for cut in (text.find(stop, search_from) for stop in req.params.stop) if cut >= 0]
        if not cuts:
            return False
        detokenizer.cut(min(cuts))
        return True

    def _finish(self, req: Request, reason: str, remove_from_scheduler: bool = True) -> None:
        if remove_from_scheduler:
            self.scheduler.finish(req)
        detokenizer = self._detokenizers.pop(req.request_id, None)
        if detokenizer:
            detokenizer.update(req.token_ids, final=True)
            req.output_text = detokenizer.text
        req.status = RequestStatus.FINISHED
        req.finish_reason = reason
        req.finish_time = self.clock()
        self.worker.release(req.request_id)
        del self.requests[req.request_id]
        self._num_finished += 1

    def _run_hooks(self, batch: ScheduledBatch, start: float, now: float, ttfts: list, tpots: list) -> None:
        """Report the step to the hooks (e.g. the morph loop), which may change the model between two steps."""
        arrivals, finished = self._num_arrivals, self._num_finished
        self._num_arrivals = self._num_finished = 0
        if not self._step_hooks:
            return
        waiting = self.scheduler.waiting
        memory = self._memory
        stats = StepStats(
            time=now, duration=now - start, num_running=len(self.scheduler.running), num_waiting=len(waiting),
            num_prefill_tokens=sum(n for _, n in batch.chunks if n > 1),
            num_decode_tokens=sum(1 for _, n in batch.chunks if n == 1),
            kv_blocks_used=self.block_manager.num_used, kv_blocks_capacity=self.block_manager.capacity,
            oldest_waiting_time=now - waiting[0].arrival_time if waiting else 0.0,
            blocked_on_kv=batch.blocked_on_kv, num_preemptions=len(batch.preempted),
            num_quantized_layers=self._num_quantized_layers, num_arrivals=arrivals, num_finished=finished,
            ttfts=ttfts, tpots=tpots, weight_bytes=memory.weight_bytes, kv_bytes=memory.kv_bytes,
            workspace_bytes=memory.workspace_bytes,
        )
        for hook in list(self._step_hooks):
            hook(stats)

    def _check_fits(self, token_ids: list[int], params: SamplingParams) -> None:
        if not token_ids:
            raise ValueError("the prompt is empty")
        if len(token_ids) >= self.max_model_len:
            raise ValueError(f"prompt of {len(token_ids)} tokens does not fit the context of {self.max_model_len} tokens")
        needed = self._blocks_needed(len(token_ids), params)
        if needed > self.block_manager.capacity:
            raise ValueError(f"a request of {len(token_ids)} prompt + {params.max_tokens} output tokens needs {needed} "
                             f"KV blocks, more KV blocks than the cache holds ({self.block_manager.capacity} blocks of "
                             f"{self.block_manager.block_size} tokens)")

    def _blocks_needed(self, prompt_len: int, params: SamplingParams) -> int:
        """KV blocks a request holds at its longest (prompt + max_tokens, within the context)."""
        return self.block_manager.blocks_for(min(prompt_len + params.max_tokens, self.max_model_len))

    def _new_request_id(self) -> str:
        """The next automatic id that no live request holds (a caller may have chosen the same one)."""
        while str(self._next_request_id) in self.requests:
            self._next_request_id += 1
        self._next_request_id += 1
        return str(self._next_request_id - 1)


class LLM:
    """Offline batch API: ``LLM(config).generate(prompts, params)``."""

    def __init__(self, config: EngineConfig | None = None, **kwargs):
        self.engine = LLMEngine(config or EngineConfig(**kwargs))

    def generate(self, prompts: list[str | list[int]], params: SamplingParams | list[SamplingParams],
                 use_tqdm: bool = False) -> list[RequestOutput]:
        params_list = params if isinstance(params, list) else [params] * len(prompts)
        if len(params_list) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(params_list)} sampling params")
        reqs = self._add_all(prompts, params_list)
        progress = _progress(len(reqs), use_tqdm)
        while self.engine.has_unfinished():
            progress.update(sum(req.is_finished for req in self.engine.step_requests()))
        progress.close()
        return [RequestOutput.of(r) for r in reqs]


    def _add_all(self, prompts: list, params_list: list[SamplingParams]) -> list[Request]:
        """Queue every prompt, or none: a bad one withdraws those already queued before its error is raised."""
        reqs = []
        try:
            for prompt, params in zip(prompts, params_list):
                reqs.append(self.engine.add_request(prompt, params))
        except (TypeError, ValueError) as refused:
            for req in reqs:
                self.engine.abort(req.request_id)
            raise type(refused)(f"prompt {len(reqs)}: {refused}") from refused
        return reqs


def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc="generate", disable=not enabled)
