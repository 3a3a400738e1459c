"""Workload content: the prompt tokens each trace request carries, from an eval set or random tokens.

Dataset prompts are spliced in token space: ``head + context[:budget] + tail``, where the context alone is
cut so the template's instruction tail (and the query) stay whole and the prompt has the trace's length.
"""
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from experiments.workload.datasets import EvalSample
from experiments.workload.templates import PromptTemplate
from experiments.workload.traces import TraceRequest


class Tokenizer(Protocol):
    """Anything with ``encode``. Special tokens it prepends to every text (a BOS, seen in ``encode("")``)
    are kept once, at the start of the prompt."""

    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class WorkloadRequest:
    arrival_s: float
    prompt_token_ids: list[int]
    output_len: int
    reference_answers: list[str] | None = None
    dataset_id: str | None = None


@dataclass(frozen=True, slots=True)
class _EncodedSample:
    head_ids: list[int]
    context_ids: list[int]
    tail_ids: list[int]


def build_dataset_workload(trace: list[TraceRequest], samples: list[EvalSample], template: PromptTemplate,
                           tokenizer: Tokenizer) -> list[WorkloadRequest]:
    """Request ``i`` gets ``samples[i % len(samples)]``, its prompt cut to the request's ``prompt_len`` tokens.

    A context shorter than its budget is used whole, so that prompt is shorter than ``prompt_len``.
    """
    if not samples:
        raise ValueError("build_dataset_workload needs at least one eval sample")
    encoded: dict[int, _EncodedSample] = {}
    workload = []
    for i, request in enumerate(trace):
        index = i % len(samples)
        if index not in encoded:
            encoded[index] = _encode(template, samples[index], tokenizer)
        sample = samples[index]
        prompt_ids = _splice(encoded[index], request.prompt_len, sample.id)
        workload.append(WorkloadRequest(request.arrival_s, prompt_ids, request.output_len, sample.answers, sample.id))
    return workload


def truncated_prompt_ids(template: PromptTemplate, sample: EvalSample, prompt_len: int,
                         tokenizer: Tokenizer) -> list[int]:
    """One sample's prompt, at most ``prompt_len`` tokens, with the context truncated."""
    return _splice(_encode(template, sample, tokenizer), prompt_len, sample.id)


def build_random_workload(trace: list[TraceRequest], token_range: range, seed: int = 0) -> list[WorkloadRequest]:
    """vLLM's "random" dataset: prompt token ids uniform in ``token_range`` (keep special ids out of it)."""
    rng = np.random.default_rng(seed)
    return [WorkloadRequest(r.arrival_s, random_token_prompt(rng, r.prompt_len, token_range), r.output_len)
            for r in trace]


def random_token_prompt(rng: np.random.Generator, length: int, token_range: range) -> list[int]:
    if len(token_range) == 0 or token_range.step != 1:
        raise ValueError(f"token_range must be a non-empty range with step 1, got {token_range}")
    return rng.integers(token_range.start, token_range.stop, size=length).tolist()


def _encode(template: PromptTemplate, sample: EvalSample, tokenizer: Tokenizer) -> _EncodedSample:
    num_prepended = len(tokenizer.encode(""))
    return _EncodedSample(tokenizer.encode(template.head), tokenizer.encode(sample.context)[num_prepended:],
                          tokenizer.encode(template.tail_for(sample.input))[num_prepended:])


def _splice(encoded: _EncodedSample, prompt_len: int, sample_id: str) -> list[int]:
    frame_len = len(encoded.head_ids) + len(encoded.tail_ids)
    context_budget = prompt_len - frame_len
    if context_budget < 1:
        raise ValueError(
            f"prompt_len {prompt_len} leaves no room for the context of sample {sample_id!r}: its template "
            f"and query take {frame_len} tokens; raise the minimum prompt length above {frame_len}"
        )
    return encoded.head_ids + encoded.context_ids[:context_budget] + encoded.tail_ids
