"""Structured config of a replay run (Hydra): a typo or a bad value fails at start with a clear message."""
from dataclasses import dataclass, field

from experiments.workload import DatasetConfig, TraceConfig

POLICIES = ("fp", "static_int8", "static_int4", "morph_accuracy", "morph_performance", "morph_forecast")


@dataclass
class ModelSection:
    name: str = "smollm2-135m"
    path: str | None = "embedded"
    chat_template: bool = True
    prompt_len: int = 512
    output_len: int = 128

    def __post_init__(self):
        if not self.path:
            raise ValueError(f"model {self.name!r} needs model.path=/path/to/hf-folder (nothing is downloaded)")


@dataclass
class EngineSection:
    """Budget in MB: weights + workspace + KV must fit (the CPU default: see docs/experiments.md for how it was
    chosen); ``null`` on a GPU: the weights plus what the card has free after a profiling forward (less 10 %).
    ``device``: cpu, cuda or cuda:N; ``dtype``: auto (float32 on CPU, the checkpoint's half dtype on CUDA), float32,
    float16 or bfloat16."""
    memory_budget_mb: float | None = 720.0
    block_size: int = 16
    max_num_seqs: int = 16
    max_num_batched_tokens: int = 512
    max_model_len: int = 1024
    device: str = "cpu"
    dtype: str = "auto"

    def __post_init__(self):
        if self.memory_budget_mb is not None and not self.memory_budget_mb > 0:
            raise ValueError(f"engine.memory_budget_mb must be > 0 (or null on a GPU), got {self.memory_budget_mb}")


@dataclass
class PolicySection:
    """INT4 variants are RTN unless ``quant_method=awq``, which needs ``calibration_text`` (WikiText-2 valid,
    e.g. ../shared/datasets/wikitext2_tokens_valid.txt): the default run must work without shared files."""
    name: str = "fp"
    swap_order_path: str | None = None     # JSON from experiments/profile_layers.py; front-to-back when absent
    quant_method: str = "rtn"              # awq | rtn
    calibration_text: str | None = None
    group_size: int = 128
    variant_cache_dir: str | None = "~/.cache/morphserve/variants"   # root: one subfolder per model fingerprint

    def __post_init__(self):
        if self.name not in POLICIES:
            raise ValueError(f"policy.name must be one of {POLICIES}, got {self.name!r}")
        if self.quant_method not in ("awq", "rtn"):
            raise ValueError(f"policy.quant_method must be awq or rtn, got {self.quant_method!r}")
        if self.quant_method == "awq" and not self.calibration_text:
            raise ValueError("policy.quant_method=awq needs policy.calibration_text=<WikiText-2 valid text file>")


@dataclass
class SLOSection:
    ttft_ms: float = 2000.0
    tpot_ms: float | None = None


@dataclass
class HardwareSection:
    name: str = "cpu"
    num_threads: int = 2

    def __post_init__(self):
        if self.name != "cpu":
            raise ValueError(f"hardware.name {self.name!r}: only 'cpu' runs the real backend in this project")
        if self.num_threads < 1:
            raise ValueError(f"hardware.num_threads must be >= 1, got {self.num_threads}")


@dataclass
class BackendSection:
    kind: str = "real"

    def __post_init__(self):
        if self.kind != "real":
            raise ValueError(f"backend.kind {self.kind!r}: only the real backend exists so far")


@dataclass
class ReplayConfig:
    model: ModelSection = field(default_factory=ModelSection)
    engine: EngineSection = field(default_factory=EngineSection)
    trace: TraceConfig = field(default_factory=TraceConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    policy: PolicySection = field(default_factory=PolicySection)
    slo: SLOSection = field(default_factory=SLOSection)
    hardware: HardwareSection = field(default_factory=HardwareSection)
    backend: BackendSection = field(default_factory=BackendSection)
    ignore_eos: bool = True                 # trace replay: every request produces its trace's output length
    output_dir: str = "results/replay"
    plots: bool = True
