"""The policy of a replay, attached to its engine: full precision attaches nothing; a static or a morph policy
attaches the morph runtime (``morph.runtime``) with the run's quantized variants."""
import os
from pathlib import Path

from experiments.replay.config import QuantSection
from morph.policy_config import PolicyConfig
from morph.runtime import MorphConfig, MorphRuntime, attach_morph
from swiftllm import LLMEngine


def attach_policy(engine: LLMEngine, policy: PolicyConfig, quant: QuantSection, out_dir: Path) -> MorphRuntime | None:
    if policy.kind == "fp":
        return None
    return attach_morph(engine, MorphConfig(
        policy=policy,
        int4_method=quant.method,
        group_size=quant.group_size,
        variant_cache_dir=None if quant.variant_cache_dir is None else os.path.expanduser(quant.variant_cache_dir),
        calibration_text_path=quant.calibration_text,
        event_log_path=str(out_dir / "morph_events.jsonl"),
    ))
