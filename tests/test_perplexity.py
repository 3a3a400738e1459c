"""Perplexity tool: windows, NLL by hand, the WikiText-2 text, the transformers cross-check (tiny random model
and the embedded SmolLM2 with quantized layers), the whole tool on a tiny model, and config validation."""
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError

from experiments.eval.config import (DataSection, PerplexityConfig, ProfileConfig, QuantSection, SwapSection,
                                     Table1Config, register_schemas)
from experiments.eval.hf_reference import hf_llama, hf_logits_fn
from experiments.eval.perplexity import WIKITEXT2_TEST, perplexity, read_wikitext2_test, token_windows
from experiments.eval.perplexity_table import perplexity_rows
from experiments.eval.session import EvalSession
from experiments.replay.config import ModelSection
from swiftllm.quant.int8_linear import Int8Linear
from swiftllm.quant.linear_path import forced_linear_path
from swiftllm.quant.variants import quantize_layer_rtn
from swiftllm.server.tokenization import LlamaTokenizer
from swiftllm.worker.model import dense_logits
from swiftllm.worker.weight_loader import load_model
from tests.eval_support import NUM_WINDOWS, WINDOW_LEN, tiny_eval_session

PASSAGE = (
    "The river rises in the hills north of the town and flows south through farmland before it reaches the sea. "
    "In the nineteenth century the valley was known for its mills, which used the water to grind grain and to "
    "power looms. Most of the mills closed after the railway arrived, because goods could then be brought "
    "cheaply from the larger factories in the cities. Today the old buildings are used as houses, shops and a "
    "small museum that describes the history of the valley, its people and the work they did. Visitors can walk "
    "along a path beside the water from the museum to the harbour, where boats leave for the islands every "
    "morning during the summer months.")
CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def test_token_windows_are_consecutive_and_non_overlapping():
    windows = token_windows(list(range(23)), window_len=5, num_windows=3)
    assert [w.tolist() for w in windows] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
    assert len(token_windows(list(range(23)), window_len=5)) == 4          # None: every whole window
    with pytest.raises(ValueError, match=r"num_windows must be in \[1, 4\]"):
        token_windows(list(range(23)), window_len=5, num_windows=5)
    with pytest.raises(ValueError, match="window_len must be >= 2"):
        token_windows(list(range(23)), window_len=1)


def test_perplexity_is_exp_of_mean_nll_by_hand(tiny_llama):
    cfg, weights = load_model(tiny_llama)
    windows = token_windows(torch.randint(0, 256, (70,), generator=torch.Generator().manual_seed(2)).tolist(), 32)
    result = perplexity(lambda ids: dense_logits(weights, cfg, ids), windows, progress=False)
    nlls = []
    for ids in windows:
        logits = dense_logits(weights, cfg, ids)
        for t in range(1, len(ids)):
            probs = torch.softmax(logits[t - 1].double(), dim=-1)
            nlls.append(-math.log(probs[ids[t]].item()))
    assert result.num_tokens == len(nlls) == 2 * 31 and result.num_windows == 2
    assert result.ppl == pytest.approx(math.exp(sum(nlls) / len(nlls)), rel=1e-5)
    with pytest.raises(ValueError, match="at least one window"):
        perplexity(lambda ids: dense_logits(weights, cfg, ids), [], progress=False)


def test_wikitext2_text_is_the_double_newline_join_of_rows(tmp_path):
    (tmp_path / WIKITEXT2_TEST).write_text(" = Title = \n \n Body line .\n")
    assert read_wikitext2_test(tmp_path) == " = Title = \n" + "\n\n" + "" + "\n\n" + " Body line .\n"
    with pytest.raises(FileNotFoundError, match=f"{WIKITEXT2_TEST}.*wiki.test.raw"):
        read_wikitext2_test(tmp_path / "missing")


@pytest.mark.skipif(not (SHARED_DATASETS / WIKITEXT2_TEST).is_file(), reason="shared WikiText-2 not present")
def test_shared_wikitext2_has_the_canonical_length():
    assert len(read_wikitext2_test(SHARED_DATASETS)) == 1_294_336


def test_transformers_reproduces_tiny_model_perplexity(tiny_llama):
    """The HF-folder (true full precision) path: our forward and transformers' agree to float rounding. Our INT4
    layer takes its float path here, as transformers does: the decode kernel's int16 activations (1e-4 of this random
    model's ppl) are tested against their own reference in test_quant_linear_ops.py."""
    cfg, weights = load_model(tiny_llama)
    layers = [quantize_layer_rtn(weights.layers[0], 4, 32)] + weights.layers[1:]
    windows = token_windows(torch.randint(0, 256, (100,), generator=torch.Generator().manual_seed(1)).tolist(), 50)
    with forced_linear_path("float"):
        ours = perplexity(lambda ids: dense_logits(weights, cfg, ids, layers), windows, progress=False)
    theirs = perplexity(hf_logits_fn(hf_llama(weights, cfg, layers)), windows, progress=False)
    assert theirs.ppl == pytest.approx(ours.ppl, rel=1e-5)


def test_transformers_cross_check_on_embedded_model_with_int4_layers():
    """SmolLM2 with 4 layers RTN INT4 through transformers (same dequantized weights): ppl within 0.5%."""
    cfg, weights = load_model("embedded")
    layers = [quantize_layer_rtn(layer, 4, 128) if i in (0, 9, 18, 29) else layer
              for i, layer in enumerate(weights.layers)]
    windows = token_windows(LlamaTokenizer.load("embedded").encode(PASSAGE), 64, num_windows=2)
    ours = perplexity(lambda x: dense_logits(weights, cfg, x, layers), windows, progress=False)
    theirs = perplexity(hf_logits_fn(hf_llama(weights, cfg, layers)), windows, progress=False)
    assert abs(theirs.ppl / ours.ppl - 1) < 0.005
    assert 2 < ours.ppl < 100                        # real text: a sane perplexity, not a degenerate model
    fp = perplexity(lambda x: dense_logits(weights, cfg, x), windows, progress=False)
    assert abs(fp.ppl / ours.ppl - 1) > 1e-4         # the quantized layers are really in the compared model


@pytest.fixture(scope="module")
def tiny_session(tiny_llama, tmp_path_factory) -> EvalSession:
    return tiny_eval_session(tiny_llama, tmp_path_factory.mktemp("eval"))


def test_perplexity_rows_are_consistent(tiny_session):
    cfg = PerplexityConfig(variants=["fp", "int8", "rtn-int4-g32"], cross_check_hf="rtn-int4-g32",
                           swap=SwapSection(order="back_to_front", counts=[0, 1, 3], int4_variant="rtn-int4-g32"))
    with forced_linear_path("float"):      # the tiny windows would take the decode kernels (int16 activations)
        rows = {row["configuration"]: row for row in perplexity_rows(tiny_session, cfg)}
    fp, rtn = rows["fp"]["ppl"], rows["rtn-int4-g32"]["ppl"]
    assert rows["rtn-int4-g32 x0 back_to_front"]["ppl"] == pytest.approx(fp, rel=1e-9)
    assert rows["rtn-int4-g32 x3 back_to_front"]["ppl"] == pytest.approx(rtn, rel=1e-9)
    assert rows["rtn-int4-g32 x1 back_to_front"]["quantized_layers"] == [2]
    assert rtn != pytest.approx(fp, rel=1e-4) and rows["int8"]["ppl"] != pytest.approx(fp, rel=1e-6)
    assert abs(rows["rtn-int4-g32 (transformers)"]["rel_diff"]) < 1e-5
    assert all(row["num_tokens"] == NUM_WINDOWS * (WINDOW_LEN - 1) for row in rows.values())


def test_the_int8_lm_head_scores_every_row_with_its_own_head(tiny_llama, tmp_path):
    fp_session = tiny_eval_session(tiny_llama, tmp_path / "fp")
    int8_session = tiny_eval_session(tiny_llama, tmp_path / "int8", lm_head="int8")
    assert isinstance(int8_session.scoring_weights.lm_head, Int8Linear)
    assert not isinstance(int8_session.weights.lm_head, Int8Linear)          # variants are made from the fp weights
    cfg = PerplexityConfig(variants=["fp", "int8"], cross_check_hf=None, lm_head="int8")
    fp_rows = {row["configuration"]: row["ppl"] for row in perplexity_rows(fp_session, cfg)}
    int8_rows = {row["configuration"]: row["ppl"] for row in perplexity_rows(int8_session, cfg)}
    for name in ("fp", "int8"):
        assert int8_rows[name] == pytest.approx(fp_rows[name], rel=1e-2) and int8_rows[name] != fp_rows[name]


def test_missing_wikitext_names_the_file(tiny_llama, tmp_path):
    session = EvalSession(ModelSection(name="tiny", path=tiny_llama), DataSection(str(tmp_path)), QuantSection())
    with pytest.raises(FileNotFoundError, match=WIKITEXT2_TEST):
        session.test_windows


def test_swap_counts_beyond_the_model_are_rejected(tiny_session):
    cfg = PerplexityConfig(variants=[], cross_check_hf=None, swap=SwapSection(counts=[4], int4_variant="rtn-int4-g32"))
    with pytest.raises(ValueError, match="the model has 3 layers"):
        perplexity_rows(tiny_session, cfg)


@pytest.mark.parametrize("config_name, overrides, error, match", [
    ("perplexity", ["data.window_len=1"], ValueError, "window_len must be >= 2"),
    ("perplexity", ["variants=[fp,int3]"], ValueError, "variants: bad variant name 'int3'"),
    ("perplexity", ["swap.int4_variant=int8"], ValueError, "must be an INT4 variant"),
    ("perplexity", ["quant.num_seqs=0"], ValueError, "quant.seq_len and quant.num_seqs must be >= 1"),
    ("perplexity", ["lm_head=int4"], ValueError, "lm_head must be one of"),
    ("perplexity", ["lm_head=int8"], ValueError, "with lm_head=int8 set cross_check_hf=null"),
    ("perplexity", ["linear_path=fast"], ValueError, "linear_path must be one of"),
    ("profile", ["method=best"], ValueError, "method must be one of"),
    ("profile", ["calibration.seq_len=1"], ValueError, "calibration.seq_len must be >= 2"),
    ("profile", ["coefficients.mds=nan"], ValueError, "coefficients must be finite"),
    ("table1", ["orders=[lis,middle_out]"], ValueError, "orders must be a non-empty list"),
    ("table1", ["counts=[0,4]"], ValueError, "each >= 1"),
    ("table1", ["random_seeds=[]"], ValueError, "at least one seed"),
])
def test_bad_config_values_fail_at_start(config_name, overrides, error, match):
    with pytest.raises(error, match=match):
        OmegaConf.to_object(compose_config(config_name, overrides))


@pytest.mark.parametrize("config_name", ["perplexity", "profile", "table1"])
def test_config_typos_and_wrong_types_fail_at_start(config_name):
    with pytest.raises(Exception, match="windw_len"):
        compose_config(config_name, ["data.windw_len=3"])
    with pytest.raises(Exception, match="num_windows"):
        compose_config(config_name, ["data.num_windows=many"])


@pytest.mark.parametrize("config_name, schema", [
    ("perplexity", PerplexityConfig), ("profile", ProfileConfig), ("table1", Table1Config)])
def test_default_configs_build(config_name, schema):
    cfg = OmegaConf.to_object(compose_config(config_name, []))
    assert isinstance(cfg, schema) and cfg.model.path == "embedded" and cfg.data.datasets_dir == "../shared/datasets"
    assert cfg.quant.cache_dir == "~/.cache/morphserve/variants"


def test_schema_rejects_unknown_key_in_yaml_content():
    with pytest.raises(ConfigKeyError):
        OmegaConf.merge(OmegaConf.structured(DataSection), {"windows": 3})


def compose_config(config_name: str, overrides: list[str]):
    register_schemas()
    with initialize_config_dir(config_dir=CONFIGS, version_base=None):
        return compose(config_name=config_name, overrides=overrides)
