"""One replay run: build the engine under a policy, replay the workload, score it, write records and metrics."""
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from experiments.metrics import (
    SLO, RequestRecord, latency_metrics, load_records, print_report, provenance_summary, request_quality,
    save_records, timeline_from_steps,
)
from experiments.metrics.kv_usage import kv_usage_metrics
from experiments.replay.code_version import code_version
from experiments.replay.config import ReplayConfig
from experiments.replay.driver import replay
from experiments.replay.sim_driver import replay_simulated
from experiments.replay.policy import attach_policy
from experiments.workload import EVAL_SETS, WorkloadRequest, build_workload, load_workload_trace
from morph.runtime import MorphRuntime
from swiftllm import EngineConfig, LLMEngine
from swiftllm.server.async_engine import AsyncLLMEngine
from swiftllm.server.structs import RequestOutput, StepStats
from swiftllm.server.tokenization import LlamaTokenizer
from swiftllm.sim.engine import simulated_engine

MB = 1 << 20


@dataclass
class ReplayResult:
    row: dict                      # metrics with vLLM names (+ quality, provenance)
    records: list[RequestRecord]   # per request, workload order
    steps: list[StepStats]         # per engine step
    fp_kv_blocks: int              # KV capacity the budget gives at full precision
    start_time: float              # engine clock at the replay's start
    metadata: dict = field(default_factory=dict)   # code, policy, swap order, layer store, per-request quality

    @property
    def timeline(self):
        return timeline_from_steps(self.steps, start_time=self.start_time)

    def save(self, out_dir: Path) -> None:
        save_records(self.records, out_dir / "requests.jsonl")
        with open(out_dir / "steps.jsonl", "w") as f:
            for s in self.steps:
                f.write(json.dumps(asdict(s)) + "\n")
        with open(out_dir / "result.json", "w") as f:
            json.dump({"row": self.row, "fp_kv_blocks": self.fp_kv_blocks, "start_time": self.start_time,
                       "metadata": self.metadata}, f, indent=1)

    @staticmethod
    def load(out_dir: Path) -> "ReplayResult":
        """A saved run (``save``); raises FileNotFoundError when ``out_dir`` holds none."""
        with open(out_dir / "result.json") as f:
            meta = json.load(f)
        with open(out_dir / "steps.jsonl") as f:
            steps = [StepStats(**json.loads(line)) for line in f]
        return ReplayResult(meta["row"], load_records(out_dir / "requests.jsonl"), steps, meta["fp_kv_blocks"],
                            meta["start_time"], meta.get("metadata", {}))


def run_replay(cfg: ReplayConfig) -> ReplayResult:
    """Replay ``cfg.trace`` on ``cfg.model`` under ``cfg.policy``; metrics, records and steps go to ``output_dir``."""
    torch.set_num_threads(cfg.hardware.num_threads)
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trace = load_workload_trace(cfg.trace)          # a bad or empty trace fails before the model loads
    engine = build_engine(cfg)
    fp_kv_blocks, fp_weight_bytes = engine.memory.num_kv_blocks, engine.memory.weight_bytes   # before any swap
    runtime = attach_policy(engine, cfg.policy, cfg.quant, out_dir)
    metadata = run_metadata(cfg, runtime)
    workload = build_workload(trace, cfg.dataset, engine.tokenizer, random_token_range(engine),
                              chat_frame(engine.tokenizer, cfg.model.chat_template))
    steps: list[StepStats] = []
    engine.add_step_hook(steps.append)
    try:
        outputs = _replay(engine, cfg, workload)
        transitions = len(runtime.events) if runtime is not None else 0     # the restore at close is not counted
    finally:
        if runtime is not None:
            runtime.close()
    records = [RequestRecord.from_output(out, i, w.dataset_id, w.reference_answers)
               for i, (out, w) in enumerate(zip(outputs, workload))]
    metadata["request_quality"] = scored_quality(cfg, records)
    row = {**score(cfg, records, metadata["request_quality"]), "morph_transitions": transitions,
           "peak_kv_blocks": max((s.kv_blocks_capacity for s in steps), default=fp_kv_blocks),
           **kv_usage_metrics(steps, fp_kv_blocks), "swap_order": metadata["swap_order"]["source"],
           "layer_store_bytes": metadata["layer_store_bytes"],
           "layer_store_vs_weights": metadata["layer_store_bytes"] / fp_weight_bytes}
    result = ReplayResult(row, records, steps, fp_kv_blocks, min(r.arrival_time for r in records), metadata)
    result.save(out_dir)
    print_report([result.row], out_dir)
    return result


def run_metadata(cfg: ReplayConfig, runtime: MorphRuntime | None) -> dict:
    """What made the run: the code, the policy, the swap order it used (and why) and the host memory of its layer
    store (0 without a runtime)."""
    choice = runtime.swap_order if runtime is not None else None
    swap_order = ({"source": "none", "detail": "no controller", "order": []} if choice is None else
                  {"source": choice.source, "detail": choice.detail, "order": list(choice.order)})
    return {"code_version": asdict(code_version()), "policy": asdict(cfg.policy), "swap_order": swap_order,
            "layer_store_bytes": runtime.swapper.store.nbytes if runtime is not None else 0}


def build_engine(cfg: ReplayConfig) -> LLMEngine:
    """The real engine, or (``backend=sim``) the same engine over the simulator's worker on ``cfg.hardware``."""
    e, simulated = cfg.engine, cfg.backend.simulated
    config = EngineConfig(
        model=cfg.model.checkpoint_or_preset(simulated), device=e.device, dtype=e.dtype, block_size=e.block_size,
        max_num_seqs=e.max_num_seqs,
        memory_budget_bytes=None if e.memory_budget_mb is None else int(e.memory_budget_mb * MB),
        max_num_batched_tokens=e.max_num_batched_tokens, max_model_len=e.max_model_len)
    return simulated_engine(config, cfg.hardware.spec()) if simulated else LLMEngine(config)


def _replay(engine: LLMEngine, cfg: ReplayConfig, workload: list[WorkloadRequest]) -> list[RequestOutput]:
    """Open-loop replay: through the online engine in real time, or event-driven on the simulator's clock."""
    if cfg.backend.simulated:
        return _replay_simulated(engine, workload, cfg.ignore_eos)
    online = AsyncLLMEngine(engine)
    online.start()
    try:
        return asyncio.run(replay(online, workload, ignore_eos=cfg.ignore_eos))
    finally:
        online.shutdown()


def chat_frame(tokenizer: LlamaTokenizer, use_template: bool) -> tuple[str, str]:
    """(prefix, suffix) the chat template puts around one user message."""
    if not use_template or tokenizer.chat_template is None:
        return "", ""
    marker = "\x00MESSAGE\x00"
    prefix, suffix = tokenizer.apply_chat_template([{"role": "user", "content": marker}]).split(marker)
    return prefix, suffix


def score(cfg: ReplayConfig, records: list[RequestRecord], request_scores: dict[str, list[float]]) -> dict:
    """Latency, provenance and (``request_scores`` of ``scored_quality``) the mean quality of the run."""
    slo = SLO(ttft_ms=cfg.slo.ttft_ms, tpot_ms=cfg.slo.tpot_ms)
    row = {"policy": cfg.policy.name, **latency_metrics(records, slo=slo)}
    row.update(provenance_summary([r.token_quantized_layers for r in records]))
    if request_scores:
        row.update({name: float(np.mean(values)) for name, values in request_scores.items()})
        row["num_scored"] = len(request_scores["rouge_l"])
    return row


def scored_quality(cfg: ReplayConfig, records: list[RequestRecord]) -> dict[str, list[float]]:
    """Each scored request's Rouge-L and F1 against its references (``request_quality``); ``{}`` without an eval set
    or on the simulator, whose model writes no real text."""
    scored = [r for r in records if r.reference_answers]
    if not scored or cfg.backend.simulated:
        return {}
    language = EVAL_SETS[cfg.dataset.name].language
    return request_quality([r.output_text for r in scored], [r.reference_answers for r in scored], language)


def random_token_range(engine: LLMEngine) -> range:
    vocab = engine.model_config.vocab_size
    return range(min(1000, vocab // 2), vocab)


def tpots_ms(records: list[RequestRecord]) -> list[float]:
    return [r.tpot_s * 1e3 for r in records if r.tpot_s is not None]


def _replay_simulated(engine: LLMEngine, workload: list[WorkloadRequest], ignore_eos: bool) -> list[RequestOutput]:
    """The event-driven replay on the simulator's clock; says how fast it simulated."""
    wall_start, simulated_start = time.perf_counter(), engine.clock()
    outputs = replay_simulated(engine, engine.clock, workload, ignore_eos=ignore_eos)
    wall, simulated = time.perf_counter() - wall_start, engine.clock() - simulated_start
    print(f"simulated {simulated:.1f} s in {wall:.2f} s of wall time ({simulated / wall:.1f} simulated s per wall s)",
          file=sys.stderr)
    return outputs
