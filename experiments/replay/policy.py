"""Policies of the replay: full precision, static quantization, or the MorphServe loop."""
from pathlib import Path

from experiments.replay.config import PolicySection
from swiftllm import LLMEngine


def attach_policy(engine: LLMEngine, policy: PolicySection, out_dir: Path) -> None:
    """Full precision leaves the engine as it is."""
    if policy.name != "fp":
        raise NotImplementedError(policy.name)
