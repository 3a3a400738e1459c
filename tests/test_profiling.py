"""Layer profiling: LTS / LRS / MDS on tiny models with known answers, greedy LIS against a from-scratch
reference of Algorithm 1, simple orders, determinism and bad inputs."""
import dataclasses

import pytest
import torch

from morph.profiling import (LisCoefficients, back_to_front, front_to_back, profile_lis, random_order, simple_order,
                             token_cosine)
from swiftllm.quant.variants import quantize_layer_rtn
from swiftllm.worker.kernels.rotary import rotary_cos_sin
from swiftllm.worker.layers.linear import DenseLinear
from swiftllm.worker.model import causal_attend, decoder_layer, dense_hidden_states
from swiftllm.worker.weight import LayerWeights
from tests.test_quant_support import random_model, tiny_config

NUM_LAYERS = 5


@pytest.fixture(scope="module")
def model():
    cfg = tiny_config(num_layers=NUM_LAYERS)
    weights = random_model(cfg, seed=3)
    quantized = [quantize_layer_rtn(layer, bits=4, group_size=32) for layer in weights.layers]
    return cfg, weights, quantized


@pytest.fixture(scope="module")
def sequences(model):
    cfg, _, _ = model
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, cfg.vocab_size, (n,), generator=generator) for n in (24, 17)]


@pytest.fixture(scope="module")
def profile(model, sequences):
    cfg, weights, quantized = model
    return profile_lis(weights, cfg, quantized, sequences, progress=False)


def identity_layer(layer: LayerWeights) -> LayerWeights:
    """Zero output projections: attention and MLP add nothing, so the layer returns its input."""
    return dataclasses.replace(layer, o_proj=DenseLinear(torch.zeros_like(layer.o_proj.weight)),
                               down_proj=DenseLinear(torch.zeros_like(layer.down_proj.weight)))


def test_token_cosine_averages_per_token_cosines():
    a = [torch.tensor([[1.0, 0.0], [0.0, 2.0]])]
    b = [torch.tensor([[3.0, 0.0], [2.0, 0.0]])]          # per-token cosines 1 and 0
    assert token_cosine(a, b) == pytest.approx(0.5)
    assert token_cosine([torch.ones(3, 4)], [-torch.ones(3, 4)]) == pytest.approx(-1.0)


def test_identity_layer_has_lts_one(model, sequences):
    cfg, weights, quantized = model
    layers = list(weights.layers)
    layers[2] = identity_layer(layers[2])
    profile = profile_lis(dataclasses.replace(weights, layers=layers), cfg, quantized, sequences, progress=False)
    assert profile.lts[2] == pytest.approx(1.0, abs=1e-6)
    assert all(lts < 0.99 for i, lts in enumerate(profile.lts) if i != 2)


def test_identical_quantized_layers_give_lrs_and_mds_one(model, sequences):
    cfg, weights, _ = model
    profile = profile_lis(weights, cfg, list(weights.layers), sequences, progress=False)
    assert profile.lrs == pytest.approx([1.0] * NUM_LAYERS, abs=1e-6)
    assert [s.mds for s in profile.steps] == pytest.approx([1.0] * NUM_LAYERS, abs=1e-6)


def test_quantized_layers_lower_lrs_and_mds(profile):
    assert all(0.5 < lrs < 0.99999 for lrs in profile.lrs)
    assert all(0.5 < step.mds < 0.99999 for step in profile.steps)


def test_lrs_compares_full_precision_and_quantized_layer_on_the_same_input(model, sequences, profile):
    cfg, weights, quantized = model
    p = 3
    inputs = [dense_hidden_states_before(weights, cfg, ids, p) for ids in sequences]
    fp_out = [dense_hidden_states_before(weights, cfg, ids, p + 1) for ids in sequences]
    q_layers = weights.layers[:p] + [quantized[p]]
    q_out = [dense_hidden_states_before(dataclasses.replace(weights, layers=q_layers), cfg, ids, p + 1)
             for ids in sequences]
    assert profile.lts[p] == pytest.approx(token_cosine(inputs, fp_out), abs=1e-9)
    assert profile.lrs[p] == pytest.approx(token_cosine(fp_out, q_out), abs=1e-9)


def test_greedy_matches_algorithm_1_recomputed_from_scratch(model, sequences, profile):
    """The cached-activation greedy equals Algorithm 1 with every candidate run through the whole model."""
    cfg, weights, quantized = model
    coefficients = LisCoefficients()
    chosen: list[int] = []
    for step in profile.steps:
        reference = model_output(weights, cfg, quantized, chosen, sequences)
        scores = {}
        for p in sorted(set(range(NUM_LAYERS)) - set(chosen)):
            mds = token_cosine(reference, model_output(weights, cfg, quantized, chosen + [p], sequences))
            scores[p] = (coefficients.score(profile.lts[p], profile.lrs[p], mds), mds)
        best = max(scores, key=lambda p: scores[p][0])
        assert step.layer == best
        assert step.mds == pytest.approx(scores[best][1], abs=1e-6)
        assert step.lis == pytest.approx(scores[best][0], abs=1e-6)
        chosen.append(best)
    assert list(profile.order) == chosen


def test_greedy_order_is_a_permutation_with_consistent_scores(profile):
    assert sorted(profile.order) == list(range(NUM_LAYERS))
    assert [s.layer for s in profile.steps] == list(profile.order)
    for s in profile.steps:
        assert s.lts == profile.lts[s.layer] and s.lrs == profile.lrs[s.layer]
        assert s.lis == pytest.approx(s.lts + s.lrs + s.mds)


def test_coefficients_steer_the_argmax(model, sequences):
    """With only LTS weighted, layers go from the weakest transformation (highest LTS) down."""
    cfg, weights, quantized = model
    profile = profile_lis(weights, cfg, quantized, sequences, LisCoefficients(lts=1, lrs=0, mds=0), progress=False)
    assert list(profile.order) == sorted(range(NUM_LAYERS), key=lambda p: -profile.lts[p])
    by_lrs = profile_lis(weights, cfg, quantized, sequences, LisCoefficients(lts=0, lrs=1, mds=0), progress=False)
    assert list(by_lrs.order) == sorted(range(NUM_LAYERS), key=lambda p: -by_lrs.lrs[p])


def test_profiling_is_deterministic(model, sequences, profile):
    cfg, weights, quantized = model
    assert profile_lis(weights, cfg, quantized, sequences, progress=False) == profile


def test_simple_orders():
    assert front_to_back(4) == (0, 1, 2, 3)
    assert back_to_front(4) == (3, 2, 1, 0)
    assert simple_order("back_to_front", 3) == (2, 1, 0)
    assert sorted(random_order(30, seed=5)) == list(range(30))
    assert random_order(30, seed=5) == random_order(30, seed=5) == simple_order("random", 30, seed=5)
    assert random_order(30, seed=5) != random_order(30, seed=6)


def test_bad_inputs_are_rejected(model, sequences):
    cfg, weights, quantized = model
    with pytest.raises(ValueError, match="one quantized variant per layer"):
        profile_lis(weights, cfg, quantized[:-1], sequences, progress=False)
    with pytest.raises(ValueError, match="non-empty 1-D calibration"):
        profile_lis(weights, cfg, quantized, [], progress=False)
    with pytest.raises(ValueError, match="unknown layer order 'middle_out'"):
        simple_order("middle_out", 4)


def test_progress_bar_counts_every_candidate(model, sequences, capsys):
    cfg, weights, quantized = model
    profile_lis(weights, cfg, quantized, sequences)
    assert f"{NUM_LAYERS * (NUM_LAYERS + 1) // 2}/{NUM_LAYERS * (NUM_LAYERS + 1) // 2}" in capsys.readouterr().err


def dense_hidden_states_before(weights, cfg, ids: torch.Tensor, p: int) -> torch.Tensor:
    """The hidden state entering layer ``p`` (p = num layers: the last layer's output), no final norm."""
    x = weights.embed_tokens[ids]
    cos, sin = rotary_cos_sin(cfg, len(ids), x.dtype, x.device)
    for layer in weights.layers[:p]:
        x = decoder_layer(x, layer, cfg, cos, sin, causal_attend(cfg))
    return x


def model_output(weights, cfg, quantized, chosen: list[int], sequences) -> list[torch.Tensor]:
    """Final-normed hidden states with the layers ``chosen`` quantized, computed from scratch."""
    layers = [quantized[i] if i in chosen else layer for i, layer in enumerate(weights.layers)]
    return [dense_hidden_states(weights, cfg, ids, layers) for ids in sequences]
