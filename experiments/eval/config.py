"""Structured configs (Hydra) of the quality tools: perplexity, layer profiling and Table 1.

An unknown key fails when Hydra merges the YAML into the schema, a value of the wrong type fails at
that merge too, and a bad value fails in ``__post_init__`` when ``OmegaConf.to_object`` builds the
dataclasses: every mistake stops the run before the model is loaded.
"""
import math
import os
from dataclasses import dataclass, field

from hydra.utils import to_absolute_path

from experiments.replay.config import ModelSection
from morph.profiling import SIMPLE_ORDERS
from swiftllm.quant.linear_path import LINEAR_PATHS
from swiftllm.quant.spec import VariantSpec

FULL_PRECISION = "fp"
PROFILE_METHODS = ("lis", *SIMPLE_ORDERS)
TABLE_ORDERS = (*SIMPLE_ORDERS, "lis")             # the paper's row order

LM_HEADS = (FULL_PRECISION, "int8")


def resolve_path(path: str) -> str:
    """``~`` expanded; a relative path is taken from the directory the (Hydra) command started in."""
    return to_absolute_path(os.path.expanduser(path))


def check_variant_name(name: str, what: str, allow_fp: bool = True) -> None:
    """``name`` is "fp" (when allowed) or a ``VariantSpec`` name such as "int8" or "awq-int4-g128"."""
    if allow_fp and name == FULL_PRECISION:
        return
    try:
        VariantSpec.from_name(name)
    except ValueError as error:
        choices = "'fp', " if allow_fp else ""
        raise ValueError(f"{what}: {error} ({choices}'int8', 'rtn-int4-g128', 'awq-int4-g64', ...)") from None


def check_int4_variant(name: str, what: str) -> None:
    check_variant_name(name, what, allow_fp=False)
    if VariantSpec.from_name(name).bits != 4:
        raise ValueError(f"{what} must be an INT4 variant (rtn-int4-g<N> or awq-int4-g<N>), got {name!r}")


@dataclass
class DataSection:
    """WikiText-2 files and the test windows. ``datasets_dir`` is resolved against the directory the
    command was started from; the default is the workspace's shared datasets beside the repository."""
    datasets_dir: str = "../shared/datasets"
    window_len: int = 512
    num_windows: int | None = 40        # null: the whole test split (595 windows of 512, ~15 min here)

    def __post_init__(self):
        if self.window_len < 2:
            raise ValueError(f"data.window_len must be >= 2, got {self.window_len}")
        if self.num_windows is not None and self.num_windows < 1:
            raise ValueError(f"data.num_windows must be >= 1 or null (whole split), got {self.num_windows}")


@dataclass
class QuantSection:
    """How quantized variants are made: AWQ calibrates on ``num_seqs`` windows of ``seq_len`` tokens of
    ``calibration_file`` (in ``data.datasets_dir``; the runtime's defaults, so a shared cache matches).
    ``cache_dir`` is the variant cache root of the morph layer store (one folder per model fingerprint
    inside, shared with the serving runtime); null quantizes every run."""
    calibration_file: str = "wikitext2_tokens_valid.txt"
    seq_len: int = 512
    num_seqs: int = 16
    cache_dir: str | None = None

    def __post_init__(self):
        if self.seq_len < 1 or self.num_seqs < 1:
            raise ValueError(f"quant.seq_len and quant.num_seqs must be >= 1, got {self.seq_len} and {self.num_seqs}")


@dataclass
class SwapSection:
    """Perplexity with the first ``counts`` layers of ``order`` swapped to ``int4_variant``.

    order: a simple order (front_to_back, back_to_front, random with ``seed``) or a profiling JSON file.
    """
    order: str = "front_to_back"
    counts: list[int] = field(default_factory=list)
    int4_variant: str = "awq-int4-g128"
    seed: int = 0

    def __post_init__(self):
        check_int4_variant(self.int4_variant, "swap.int4_variant")
        if any(k < 0 for k in self.counts):
            raise ValueError(f"swap.counts must be >= 0, got {list(self.counts)}")


@dataclass
class PerplexityConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    quant: QuantSection = field(default_factory=QuantSection)
    variants: list[str] = field(default_factory=lambda: ["fp", "int8", "awq-int4-g128", "rtn-int4-g128"])
    swap: SwapSection = field(default_factory=SwapSection)
    cross_check_hf: str | None = "awq-int4-g128"    # a variant also run through transformers; null: none
    lm_head: str = "fp"         # "int8": score every row with the LM head in INT8, as EngineConfig(lm_head="int8")
    linear_path: str = "auto"   # the CPU path of the quantized linears: auto, kernel (decode's int16 activations), float

    def __post_init__(self):
        if self.linear_path not in LINEAR_PATHS:
            raise ValueError(f"linear_path must be one of {LINEAR_PATHS}, got {self.linear_path!r}")
        for name in self.variants:
            check_variant_name(name, "variants")
        if self.cross_check_hf is not None:
            check_variant_name(self.cross_check_hf, "cross_check_hf")
        if self.lm_head not in LM_HEADS:
            raise ValueError(f"lm_head must be one of {LM_HEADS}, got {self.lm_head!r}")
        if self.lm_head != FULL_PRECISION and self.cross_check_hf is not None:
            raise ValueError("the transformers cross-check rebuilds a full-precision LM head: with lm_head=int8 set "
                             "cross_check_hf=null")


@dataclass
class CoefficientsSection:
    """LIS = lts * LTS + lrs * LRS + mds * MDS (the paper's a1, a2, b)."""
    lts: float = 1.0
    lrs: float = 1.0
    mds: float = 1.0

    def __post_init__(self):
        if not all(math.isfinite(c) for c in (self.lts, self.lrs, self.mds)):
            raise ValueError(f"coefficients must be finite, got {self}")


@dataclass
class CalibrationSection:
    """Profiling calibration: ``num_seqs`` windows of ``seq_len`` tokens of ``file`` (in data.datasets_dir)."""
    file: str = "wikitext2_tokens_valid.txt"
    seq_len: int = 256
    num_seqs: int = 2

    def __post_init__(self):
        if self.seq_len < 2 or self.num_seqs < 1:
            raise ValueError(f"calibration.seq_len must be >= 2 and num_seqs >= 1, got {self.seq_len}, {self.num_seqs}")


@dataclass
class ProfileConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    quant: QuantSection = field(default_factory=QuantSection)
    method: str = "lis"
    int4_variant: str = "awq-int4-g128"
    coefficients: CoefficientsSection = field(default_factory=CoefficientsSection)
    calibration: CalibrationSection = field(default_factory=CalibrationSection)
    seed: int = 0                                   # the random order's seed
    output_path: str = "results/swap_orders/order.json"

    def __post_init__(self):
        if self.method not in PROFILE_METHODS:
            raise ValueError(f"method must be one of {PROFILE_METHODS}, got {self.method!r}")
        check_int4_variant(self.int4_variant, "int4_variant")


@dataclass
class Table1Config:
    """Perplexity as the number of INT4 layers grows: 0 and all are always included, ``counts`` are the
    points between. ``orders``: simple orders, ``lis`` (reads ``lis_order_file``) or paths of other
    profiling JSON files; ``random`` is averaged over ``random_seeds``. Every measured point is kept in
    ``points_file`` (null: not kept), so an interrupted or extended run measures only what is new."""
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    quant: QuantSection = field(default_factory=QuantSection)
    int4_variant: str = "awq-int4-g128"
    counts: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    orders: list[str] = field(default_factory=lambda: list(TABLE_ORDERS))
    random_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    lis_order_file: str = "results/swap_orders/lis.json"
    points_file: str | None = None

    def __post_init__(self):
        check_int4_variant(self.int4_variant, "int4_variant")
        unknown = [name for name in self.orders if name not in TABLE_ORDERS and not name.endswith(".json")]
        if unknown or not self.orders:
            raise ValueError(f"orders must be a non-empty list of {TABLE_ORDERS} or profiling .json files, "
                             f"got {list(self.orders)}")
        if any(k < 1 for k in self.counts):
            raise ValueError(f"counts are the points between 0 and all layers, each >= 1; got {list(self.counts)}")
        if "random" in self.orders and not self.random_seeds:
            raise ValueError("the random order needs at least one seed in random_seeds")


SCHEMAS = {"perplexity_schema": PerplexityConfig, "profile_schema": ProfileConfig, "table1_schema": Table1Config}


def register_schemas() -> None:
    """Make the schemas available to the configs' defaults lists (``- perplexity_schema`` etc.)."""
    from hydra.core.config_store import ConfigStore
    for name, node in SCHEMAS.items():
        ConfigStore.instance().store(name=name, node=node)
