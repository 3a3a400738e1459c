"""Which swap order a morph policy runs with: the LIS profile of this model and variant when one exists (fingerprints
checked), front to back otherwise (said why), or the order the config names."""
import json

import pytest

from morph.policy_config import SwapOrderSpec
from morph.policy_presets import load_policy
from morph.profiling import random_order
from morph.runtime import MorphConfig, attach_morph
from morph.swap_order_source import choose_swap_order
from swiftllm import EngineConfig, LLMEngine
from swiftllm.quant.variant_cache import model_fingerprint

VARIANT = "rtn-int4-g128"


def _profile(path, order, model_hash="a" * 64, variant=VARIANT, method="lis"):
    path.write_text(json.dumps({"model_hash": model_hash, "variant": variant, "method": method, "order": order}))
    return path


def _choose(profile_dir, source="lis", model_hash="a" * 64, **fields):
    return choose_swap_order(SwapOrderSpec(source=source, profile_dir=str(profile_dir), **fields), 4, VARIANT,
                             lambda: model_hash)


def test_lis_uses_the_profile_made_for_this_model_and_variant(tmp_path):
    _profile(tmp_path / "other-model.json", [3, 2, 1, 0], model_hash="b" * 64)
    _profile(tmp_path / "other-variant.json", [3, 2, 1, 0], variant="awq-int4-g128")
    _profile(tmp_path / "simple.json", [3, 2, 1, 0], method="back_to_front")
    mine = _profile(tmp_path / "mine.json", [2, 0, 3, 1])
    choice = _choose(tmp_path)
    assert choice.order == (2, 0, 3, 1) and choice.source == "lis" and str(mine) in choice.detail


@pytest.mark.parametrize("model_hash, reason", [("c" * 64, "no LIS profile for model cccccccccccc and variant "
                                                 "rtn-int4-g128"), (None, "simulated model")])
def test_without_a_matching_profile_lis_falls_back_to_front_to_back_and_says_why(tmp_path, model_hash, reason):
    _profile(tmp_path / "mine.json", [2, 0, 3, 1])
    choice = _choose(tmp_path, model_hash=model_hash)
    assert choice.order == (0, 1, 2, 3) and choice.source == "front_to_back" and reason in choice.detail


def test_two_matching_profiles_are_refused(tmp_path):
    _profile(tmp_path / "one.json", [2, 0, 3, 1])
    _profile(tmp_path / "two.json", [1, 0, 3, 2])
    with pytest.raises(ValueError, match="several LIS profiles"):
        _choose(tmp_path)


def test_a_named_profile_must_match_the_model_and_variant(tmp_path):
    path = _profile(tmp_path / "p.json", [2, 0, 3, 1])
    assert _choose(tmp_path, source=str(path)).order == (2, 0, 3, 1)
    with pytest.raises(ValueError, match="profiled on another model"):
        _choose(tmp_path, source=str(path), model_hash="d" * 64)
    _profile(path, [2, 0, 3, 1], variant="awq-int4-g64")
    with pytest.raises(ValueError, match="profiled for variant awq-int4-g64"):
        _choose(tmp_path, source=str(path))


def test_simple_orders_by_name(tmp_path):
    assert _choose(tmp_path, source="back_to_front").order == (3, 2, 1, 0)
    assert _choose(tmp_path, source="random", seed=7).order == random_order(4, 7)


def test_attach_morph_runs_the_lis_profile_of_the_engines_model(tiny_llama, tmp_path):
    engine = LLMEngine(EngineConfig(model=tiny_llama, num_kv_blocks=64, block_size=4, max_model_len=128))
    _profile(tmp_path / "tiny-lis.json", [2, 0, 1], model_hash=model_fingerprint(engine.model_weights))
    policy = load_policy("morph_performance")
    policy.swap_order.profile_dir = str(tmp_path)
    runtime = attach_morph(engine, MorphConfig(policy=policy, int4_method="rtn", variant_cache_dir=None))
    assert runtime.swap_order.source == "lis" and runtime.controller.config.swap_order == (2, 0, 1)
    runtime.close()
