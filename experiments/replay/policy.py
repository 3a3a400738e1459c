"""Policies of the replay: full precision, static quantization (every layer swapped once, before serving),
or the MorphServe loop (accuracy, performance, forecast presets)."""
import os
from pathlib import Path

from experiments.replay.config import PolicySection
from morph.runtime import MorphConfig, MorphRuntime, attach_morph
from swiftllm import LLMEngine

STATIC = {"static_int8": "int8", "static_int4": "int4"}


def attach_policy(engine: LLMEngine, policy: PolicySection, out_dir: Path) -> MorphRuntime | None:
    """Full precision leaves the engine as it is; every other policy attaches the morph runtime."""
    if policy.name == "fp":
        return None
    static = STATIC.get(policy.name)
    runtime = attach_morph(engine, MorphConfig(
        policy=None if static else policy.name,
        precisions=("fp", static) if static else None,
        swap_order_path=policy.swap_order_path,
        int4_method=policy.quant_method,
        group_size=policy.group_size,
        variant_cache_dir=None if policy.variant_cache_dir is None else os.path.expanduser(policy.variant_cache_dir),
        calibration_text_path=policy.calibration_text,
        event_log_path=str(out_dir / "morph_events.jsonl"),
    ))
    if static:
        runtime.apply([static] * engine.model_config.num_layers)
    return runtime
