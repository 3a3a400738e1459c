"""Policy presets by name: the YAML files of ``configs/policy/`` next to the package checkout, read into the schema.

The files are the only place a preset is defined; the replay's Hydra config group reads the same files. A package
installed without its checkout has no presets: build a ``PolicyConfig`` instead, or pass ``policy_dir``.
"""
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from morph.policy_config import PolicyConfig

POLICY_DIR = Path(__file__).resolve().parents[1] / "configs" / "policy"


def preset_names(policy_dir: str | Path = POLICY_DIR) -> list[str]:
    return sorted(path.stem for path in Path(policy_dir).glob("*.yaml"))


def load_policy(name: str, policy_dir: str | Path = POLICY_DIR) -> PolicyConfig:
    """The preset ``<policy_dir>/<name>.yaml``, checked (an unknown key or a bad value names the field)."""
    path = Path(policy_dir) / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown policy preset {name!r}: expected one of {preset_names(policy_dir)} "
                         f"(the YAML files of {policy_dir})")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(PolicyConfig), OmegaConf.load(path))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise ValueError(f"policy preset {path}: {error}") from None
