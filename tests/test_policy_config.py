"""The policy schema: every field of the replay's ``policy`` group fails at start, named, on a typo or a bad value;
the presets build the monitor and controller configurations the paper describes."""
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from experiments.replay.config import ReplayConfig
from morph.layer_count import LayerCount
from morph.policy_config import PolicyConfig
from morph.policy_presets import load_policy, preset_names

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")
ConfigStore.instance().store(name="replay_schema", node=ReplayConfig)


def _compose(overrides: list[str]) -> ReplayConfig:
    with initialize_config_dir(config_dir=CONFIGS, version_base=None):
        return OmegaConf.to_object(compose(config_name="config", overrides=overrides))


BAD_VALUES = [
    ("name", "''"), ("kind", "turbo"), ("precision", "int4"),
    ("monitor.short_window_s", "0"), ("monitor.long_window_s", "0.5"), ("monitor.trend_bin_s", "4"),
    ("controller.kv_usage_trigger", "1.5"), ("controller.kv_usage_release", "0.97"),
    ("controller.queue_delay_trigger_s", "0"), ("controller.queue_delay_release_s", "0.5"),
    ("controller.cooldown_s", "0.5"), ("controller.layers_per_step", "0"), ("controller.layers_per_step", "3/2"),
    ("controller.max_quantized_layers", "many"), ("controller.ladder", "[fp,int3]"), ("controller.ladder", "[int4,fp]"),
    ("controller.forecast_horizon_s", "-1"), ("swap_order.source", "middle_out"), ("swap_order.profile_dir", "''"),
]


@pytest.mark.parametrize("field, value", BAD_VALUES)
def test_a_bad_value_in_any_policy_field_fails_at_start_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"policy.{field}"):
        _compose([f"policy.{field}={value}"])


def test_every_policy_field_is_covered_by_a_bad_value():
    leaves = OmegaConf.to_container(OmegaConf.structured(PolicyConfig))
    fields = {f"{section}.{name}" if isinstance(values, dict) else section
              for section, values in leaves.items() for name in (values if isinstance(values, dict) else [None])}
    assert fields - {"swap_order.seed"} == {field for field, _ in BAD_VALUES}     # any integer seed is valid


@pytest.mark.parametrize("field", ["kind", "controller.kv_usage_trigger", "monitor.short_window_s", "swap_order.source"])
def test_a_typo_in_a_policy_field_fails_at_start_naming_it(field):
    section, _, name = field.rpartition(".")
    typo = f"{section}.{name[:-1]}" if section else name[:-1]
    with pytest.raises(ConfigCompositionException, match=typo.rpartition(".")[2]):
        _compose([f"policy.{typo}=1"])


def test_the_sweep_overrides_compose_and_reach_the_built_controller():
    cfg = _compose(["policy=morph_performance", "policy.controller.kv_usage_trigger=0.9",
                    "policy.controller.layers_per_step=3", "policy.controller.max_quantized_layers=1/2"])
    controller = cfg.policy.morph_policy(30).controller
    assert (controller.kv_usage_trigger, controller.layers_per_step, controller.max_quantized_layers) == (0.9, 3, 15)


def test_presets_are_the_yaml_files_and_build_what_the_paper_describes():
    assert preset_names() == ["fp", "morph_accuracy", "morph_forecast", "morph_performance", "static_int4",
                              "static_int8"]
    accuracy, performance = (load_policy(n).morph_policy(30).controller for n in ("morph_accuracy", "morph_performance"))
    assert (accuracy.max_quantized_layers, accuracy.layers_per_step) == (8, 2)            # ceil(30/4), two per step
    assert (performance.max_quantized_layers, performance.layers_per_step) == (30, 4)     # all, ceil(30/8)
    assert load_policy("static_int4").precisions == ("fp", "int4") and load_policy("fp").precisions == ("fp",)
    with pytest.raises(ValueError, match="only kind 'morph' runs the controller"):
        load_policy("static_int4").morph_policy(30)


def test_a_preset_file_with_an_unknown_key_or_a_bad_value_names_it(tmp_path):
    (tmp_path / "typo.yaml").write_text("name: typo\nkind: morph\ncontroller:\n  kv_usage_triger: 0.9\n")
    (tmp_path / "bad.yaml").write_text("name: bad\nkind: morph\ncontroller:\n  kv_usage_trigger: 2\n")
    with pytest.raises(ValueError, match="kv_usage_triger"):
        load_policy("typo", tmp_path)
    with pytest.raises(ValueError, match="policy.controller.kv_usage_trigger"):
        load_policy("bad", tmp_path)


@pytest.mark.parametrize("text, layers", [("2", 2), ("0", 0), ("1/4", 8), ("1/8", 4), ("all", 30), (" 3 ", 3)])
def test_layer_counts_resolve_against_the_model(text, layers):
    assert LayerCount.parse(text).resolve(30) == layers


@pytest.mark.parametrize("text", ["", "-1", "0/4", "5/4", "1/0", "0.25", "half"])
def test_malformed_layer_counts_are_refused(text):
    with pytest.raises(ValueError, match="a count such as '2'"):
        LayerCount.parse(text)


def test_a_value_assigned_after_construction_is_checked_when_the_runtime_is_configured():
    from morph.runtime import MorphConfig
    policy = load_policy("morph_accuracy")
    policy.controller.kv_usage_release = 0.99
    with pytest.raises(ValueError, match="policy.controller.kv_usage_release"):
        MorphConfig(policy=policy, int4_method="rtn")
