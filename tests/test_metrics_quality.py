"""Quality metrics on known strings: Rouge-L (English and character-level Chinese), LongBench F1,
token agreement between runs and per-token provenance."""
import pytest

from experiments.metrics.agreement import common_prefix_len, token_agreement
from experiments.metrics.provenance import provenance_summary, quantized_layer_shares
from experiments.metrics.quality import normalize_answer, normalize_zh_answer, qa_f1, quality_scores, rouge_l


def test_rouge_l_is_the_lcs_f_measure():
    assert rouge_l("the cat sat", ["the cat sat down"]) == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert rouge_l("a b c d", ["a c b d"]) == pytest.approx(0.75)           # LCS 3 of 4 both ways
    assert rouge_l("a b c d", ["x y", "a b c d"]) == pytest.approx(1.0)     # best reference wins


def test_chinese_rouge_l_counts_characters():
    assert rouge_l("今天天气很好", ["今天天气不错"], language="zh") == pytest.approx(4 / 6)
    assert rouge_l("今天天气很好", ["今天天气不错"], language="en") == 0.0    # word tokenizer drops CJK


def test_longbench_f1():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert qa_f1("The Cat sat.", ["a cat sat on the mat"]) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert qa_f1("dog", ["cat", "Dog."]) == 1.0
    assert qa_f1("dog", ["cat"]) == 0.0
    assert normalize_zh_answer("今天，天气 好。") == "今天天气好"
    # chars 今天天气好 vs 天气很好: common 天, 气, 好 -> P 3/5, R 3/4
    assert qa_f1("今天，天气好", ["天气很好"], language="zh") == pytest.approx(2 * 0.6 * 0.75 / 1.35)


def test_quality_scores_average_over_requests():
    scores = quality_scores(["the cat sat", "dog"], [["the cat sat"], ["cat"]])
    assert scores == {"rouge_l": pytest.approx(0.5), "f1": pytest.approx(0.5), "num_scored": 2}
    with pytest.raises(ValueError, match="2 predictions but 1 reference lists"):
        quality_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        rouge_l("a", ["a"], language="fr")
    with pytest.raises(ValueError, match="at least one reference"):
        qa_f1("a", [])


def test_token_agreement_up_to_first_divergence():
    reference = [[1, 2, 3, 4], [5, 6], [7], []]
    candidate = [[1, 2, 9, 4], [5, 6], [], []]
    agreement = token_agreement(reference, candidate)
    assert agreement["mean_prefix_agreement"] == pytest.approx((0.5 + 1.0 + 0.0 + 1.0) / 4)
    assert agreement["exact_match_rate"] == pytest.approx(2 / 4)
    assert common_prefix_len([1, 2], [1, 2, 3]) == 2
    assert token_agreement([[1, 2]], [[1, 2, 3]])["mean_prefix_agreement"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="2 reference outputs but 1 candidates"):
        token_agreement([[1], [2]], [[1]])


def test_provenance_shares_tokens_by_quantized_layers():
    per_request = [[0, 0, 2], [2, 2, 4, 0]]
    assert quantized_layer_shares(per_request) == pytest.approx({0: 3 / 7, 2: 3 / 7, 4: 1 / 7})
    summary = provenance_summary(per_request)
    assert summary["mean_quantized_layers_per_token"] == pytest.approx(10 / 7)
    assert summary["share_tokens_quantized"] == pytest.approx(4 / 7)
    assert summary["max_quantized_layers"] == 4
    with pytest.raises(ValueError, match="no output tokens"):
        quantized_layer_shares([[], []])
