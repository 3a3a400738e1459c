"""Output quality against references: Rouge-L F (rouge-score) and LongBench's token F1.

A prediction scores the maximum over its references (LongBench). For Chinese (``language="zh"``) both
metrics use characters as tokens, since whitespace does not separate words. rouge-score is imported when the
first Rouge-L is scored: it pulls in nltk and scipy, seconds of start-up that runs without quality do not need.
"""
import functools
import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

LANGUAGES = ("en", "zh")
CHINESE_PUNCTUATION = "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."


class CharacterTokenizer:
    """Every non-space character is a token (lower-cased), for Rouge on Chinese text (rouge-score's tokenizer
    interface)."""

    def tokenize(self, text: str) -> list[str]:
        return [c for c in text.lower() if not c.isspace()]


def quality_scores(predictions: Sequence[str], references: Sequence[Sequence[str]],
                   language: str = "en") -> dict[str, float]:
    """Mean Rouge-L F and token F1 over requests, each in [0, 1]."""
    scores = request_quality(predictions, references, language)
    return {"rouge_l": float(np.mean(scores["rouge_l"])), "f1": float(np.mean(scores["f1"])),
            "num_scored": len(predictions)}


def request_quality(predictions: Sequence[str], references: Sequence[Sequence[str]],
                    language: str = "en") -> dict[str, list[float]]:
    """Each request's Rouge-L F and token F1 (``{"rouge_l": [...], "f1": [...]}``, request order)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    if not predictions:
        raise ValueError("quality_scores needs at least one prediction")
    pairs = list(zip(predictions, references))
    return {"rouge_l": [rouge_l(p, refs, language) for p, refs in pairs],
            "f1": [qa_f1(p, refs, language) for p, refs in pairs]}


def rouge_l(prediction: str, references: Sequence[str], language: str = "en") -> float:
    scorer = _rouge_scorer(language)
    return max(scorer.score(reference, prediction)["rougeL"].fmeasure for reference in _checked(references))


def qa_f1(prediction: str, references: Sequence[str], language: str = "en") -> float:
    """LongBench ``qa_f1_score``: F1 of the bag of normalized tokens."""
    tokens = _f1_tokens(prediction, language)
    return max(token_f1(tokens, _f1_tokens(reference, language)) for reference in _checked(references))


def token_f1(prediction_tokens: Sequence[str], reference_tokens: Sequence[str]) -> float:
    num_same = sum((Counter(prediction_tokens) & Counter(reference_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def normalize_answer(text: str) -> str:
    """SQuAD/LongBench: lower case, drop punctuation and articles, collapse whitespace."""
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def normalize_zh_answer(text: str) -> str:
    """LongBench: lower case, drop English and Chinese punctuation and all whitespace."""
    punctuation = set(string.punctuation + CHINESE_PUNCTUATION)
    return "".join(c for c in text.lower() if c not in punctuation and not c.isspace())


def _f1_tokens(text: str, language: str) -> list[str]:
    return list(normalize_zh_answer(text)) if _checked_language(language) == "zh" else normalize_answer(text).split()


@functools.cache
def _rouge_scorer(language: str):
    from rouge_score import rouge_scorer
    tokenizer = CharacterTokenizer() if _checked_language(language) == "zh" else None
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizer)


def _checked_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")
    return language


def _checked(references: Sequence[str]) -> Sequence[str]:
    if not references:
        raise ValueError("a prediction needs at least one reference")
    return references
