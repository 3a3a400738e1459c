"""Structured config of a replay run (Hydra): a typo or a bad value fails at start with a clear message."""
from dataclasses import asdict, dataclass, field

from experiments.workload import DatasetConfig, TraceConfig
from morph.policy_config import PolicyConfig
from morph.policy_presets import load_policy
from morph.runtime import DEFAULT_VARIANT_CACHE, INT4_METHODS
from swiftllm.sim.hardware import HardwareSpec
from swiftllm.sim.hardware_config import load_hardware


@dataclass
class ModelSection:
    """``path``: a local checkpoint (GGUF, HF folder, or ``embedded``); ``preset``: the architecture by name
    (``swiftllm.model_presets``), which is all the simulator needs for the paper's models."""
    name: str = "smollm2-135m"
    path: str | None = "embedded"
    preset: str | None = None
    chat_template: bool = True
    prompt_len: int = 512
    output_len: int = 128

    def checkpoint_or_preset(self, simulated: bool) -> str:
        if self.path:
            return self.path
        if simulated and self.preset:
            return self.preset
        raise ValueError(f"model {self.name!r} needs model.path=/path/to/hf-folder (nothing is downloaded)"
                         + ("" if simulated else "; without a checkpoint, simulate it: backend=sim hardware=l4"))


@dataclass
class EngineSection:
    """Budget in MB: weights + workspace + KV must fit (the CPU default: see docs/experiments.md for how it was
    chosen); ``null`` on a real GPU: the weights plus what the card has free after a profiling forward (less 10 %);
    ``null`` on a simulated GPU (``backend=sim``): the hardware's memory less its reserve. ``device`` (real backend):
    cpu, cuda or cuda:N; ``dtype``: auto (float32 on CPU, the checkpoint's half dtype on CUDA), float32, float16 or
    bfloat16."""
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
class QuantSection:
    """How the quantized variants the policies run are made. INT4 is RTN unless ``method=awq``, which needs
    ``calibration_text`` (WikiText-2 valid, e.g. ../shared/datasets/wikitext2_tokens_valid.txt): the default run
    must work without shared files."""
    method: str = "rtn"
    calibration_text: str | None = None
    group_size: int = 128
    variant_cache_dir: str | None = DEFAULT_VARIANT_CACHE   # root: one subfolder per model fingerprint

    def __post_init__(self):
        if self.method not in INT4_METHODS:
            raise ValueError(f"quant.method must be one of {INT4_METHODS}, got {self.method!r}")
        if self.method == "awq" and not self.calibration_text:
            raise ValueError("quant.method=awq needs quant.calibration_text=<WikiText-2 valid text file>")


@dataclass
class SLOSection:
    ttft_ms: float = 2000.0
    tpot_ms: float | None = None


@dataclass
class SpeedupSection:
    tokens: list[int] = field(default_factory=list)
    speedup: list[float] = field(default_factory=list)
    source: str = ""


@dataclass
class LayerTimeScales:
    """A decoder layer's predicted time at each precision x this, on top of ``time_scale`` (that precision's kernels
    faster or slower than profiled; ``experiments/validate_sim.py`` sets them from speeds probed beside real runs)."""
    fp: float = 1.0
    int8: float = 1.0
    int4: float = 1.0


@dataclass
class HardwareSection:
    """The machine (``configs/hardware/*.yaml``): the real backend runs on ``cpu``; the simulator takes any of them.
    Fields as ``swiftllm.sim.hardware.HardwareSpec``, each config stating its sources."""
    name: str = "cpu"
    num_threads: int = 2
    memory_gib: float = 24.0
    memory_fraction: float = 1.0
    dtype: str = "float32"
    peak_tflops: float = 0.19
    memory_bandwidth_gbs: float = 20.0
    compute_efficiency: float = 1.0
    memory_efficiency: float = 1.0
    host_link_gbs: float = 5.0
    checksum_gbs: float = 1.0
    step_overhead_s: float = 0.0
    sequence_overhead_s: float = 0.0
    time_scale: float = 1.0
    layer_time_scales: LayerTimeScales = field(default_factory=LayerTimeScales)
    int8_speedup: SpeedupSection | None = None
    int4_speedup: SpeedupSection | None = None
    profile_dir: str | None = None
    profile_gpu: str | None = None
    op_table: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.num_threads < 1:
            raise ValueError(f"hardware.num_threads must be >= 1, got {self.num_threads}")

    def spec(self) -> HardwareSpec:
        """The simulator's ``HardwareSpec`` of this machine (checked field by field)."""
        return load_hardware({k: v for k, v in asdict(self).items() if k != "num_threads"})


BACKENDS = ("real", "sim")


@dataclass
class BackendSection:
    """``real`` runs the engine; ``sim`` runs the same engine, scheduler and morph loop over the simulator's worker
    on a virtual clock (``swiftllm/sim``), on ``hardware``."""
    kind: str = "real"

    def __post_init__(self):
        if self.kind not in BACKENDS:
            raise ValueError(f"backend.kind must be one of {BACKENDS}, got {self.kind!r}")

    @property
    def simulated(self) -> bool:
        return self.kind == "sim"


@dataclass
class ReplayConfig:
    """``policy``: the schema of ``morph.policy_config`` (presets in configs/policy/). ``baseline``: a policy preset
    replayed on the same workload first (a saved run of the same config and code is reused, from ``runs_dir``), to
    print side by side with ``policy`` and compare against; ``null``: none. ``output_dir``: ``null`` is Hydra's
    output folder of the run (of each job, in a multirun)."""
    model: ModelSection = field(default_factory=ModelSection)
    engine: EngineSection = field(default_factory=EngineSection)
    trace: TraceConfig = field(default_factory=TraceConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    quant: QuantSection = field(default_factory=QuantSection)
    slo: SLOSection = field(default_factory=SLOSection)
    hardware: HardwareSection = field(default_factory=HardwareSection)
    backend: BackendSection = field(default_factory=BackendSection)
    ignore_eos: bool = True                 # trace replay: every request produces its trace's output length
    baseline: str | None = None
    runs_dir: str = "results/runs"
    output_dir: str | None = "results/replay"
    plots: bool = True

    def __post_init__(self):
        if self.baseline is not None:
            load_policy(self.baseline)
        self.model.checkpoint_or_preset(self.backend.simulated)
        if self.backend.simulated:
            self.hardware.spec()
        elif self.hardware.name != "cpu" and self.engine.device == "cpu":
            raise ValueError(f"hardware={self.hardware.name} is a GPU: run it with engine.device=cuda, or simulate it "
                             "on this machine with backend=sim")
