"""Config schemas of the ``trace`` and ``dataset`` groups, and the two calls that turn them into a workload.

The dataclasses are OmegaConf/Hydra structured configs: an unknown key fails at merge time, a bad value
fails in ``__post_init__`` when the config is converted with ``OmegaConf.to_object``.
"""
from dataclasses import dataclass, field
from pathlib import Path

from experiments.workload.content import Tokenizer, WorkloadRequest, build_dataset_workload, build_random_workload
from experiments.workload.datasets import EVAL_SETS, load_eval_set
from experiments.workload.scaling import TraceShaping, shape_trace
from experiments.workload.synthetic import SyntheticTraceConfig, generate_synthetic_trace
from experiments.workload.traces import TraceRequest, load_trace

TRACE_KINDS = ("azure", "burstgpt", "synthetic")


@dataclass(slots=True)
class TraceConfig:
    """Where arrivals come from (a CSV of ``kind`` azure/burstgpt at ``path``, or the synthetic generator)
    and how they are shaped. Azure and BurstGPT CSVs are in ``../shared/traces`` of the workspace."""
    kind: str = "synthetic"
    path: str | None = None
    shaping: TraceShaping = field(default_factory=TraceShaping)
    synthetic: SyntheticTraceConfig = field(default_factory=SyntheticTraceConfig)

    def __post_init__(self):
        if self.kind not in TRACE_KINDS:
            raise ValueError(f"trace kind must be one of {TRACE_KINDS}, got {self.kind!r}")
        if self.kind != "synthetic" and not self.path:
            raise ValueError(f"trace kind {self.kind!r} needs trace.path (a CSV, e.g. ../shared/traces/...)")


@dataclass(slots=True)
class DatasetConfig:
    """``name`` is a key of ``EVAL_SETS`` (prompts from that eval set) or None (random-token prompts)."""
    name: str | None = None
    datasets_dir: str = "../shared/datasets"
    seed: int = 0            # random-token prompts

    def __post_init__(self):
        if self.name is not None and self.name not in EVAL_SETS:
            raise ValueError(f"dataset name must be one of {sorted(EVAL_SETS)} or null, got {self.name!r}")


def load_workload_trace(config: TraceConfig) -> list[TraceRequest]:
    """Load or generate the arrivals, then shape them; a ``ValueError`` when the shaped window holds no request."""
    if config.kind == "synthetic":
        raw = generate_synthetic_trace(config.synthetic)
    else:
        raw = load_trace(Path(config.path), config.kind)
    shaped = shape_trace(raw, config.shaping)
    if not shaped:
        shaping = config.shaping
        raise ValueError(f"the trace window holds no request: {len(raw)} requests over "
                         f"{raw[-1].arrival_s if raw else 0:.1f} s, window start_s={shaping.start_s} "
                         f"duration_s={shaping.duration_s}, keep_every={shaping.keep_every}")
    return shaped


def build_workload(trace: list[TraceRequest], config: DatasetConfig, tokenizer: Tokenizer, token_range: range,
                   chat_frame: tuple[str, str] = ("", "")) -> list[WorkloadRequest]:
    """Eval-set prompts (inside ``chat_frame`` = (prefix, suffix)) or random tokens from ``token_range``."""
    if config.name is None:
        return build_random_workload(trace, token_range, config.seed)
    spec = EVAL_SETS[config.name]
    samples = load_eval_set(config.name, config.datasets_dir)
    return build_dataset_workload(trace, samples, spec.template.wrapped(*chat_frame), tokenizer)
