"""Workloads: request arrival traces, their shaping, and the prompts each request carries."""
from experiments.workload.config import DatasetConfig, TraceConfig, build_workload, load_workload_trace
from experiments.workload.content import (
    Tokenizer, WorkloadRequest, build_dataset_workload, build_random_workload, random_token_prompt,
    truncated_prompt_ids,
)
from experiments.workload.datasets import EVAL_SETS, EvalSample, EvalSetSpec, load_eval_samples, load_eval_set
from experiments.workload.scaling import (
    TraceShaping, clip_lengths, limit_requests, mean_request_rate, override_lengths, scale_lengths,
    select_window, shape_trace, stretch_time,
)
from experiments.workload.synthetic import LengthRange, SyntheticTraceConfig, generate_synthetic_trace
from experiments.workload.templates import LONGBENCH_TEMPLATES, PromptTemplate
from experiments.workload.traces import (
    TraceFormatError, TraceRequest, load_azure_trace, load_burstgpt_trace, load_trace,
)

__all__ = [
    "EVAL_SETS", "LONGBENCH_TEMPLATES", "DatasetConfig", "EvalSample", "EvalSetSpec", "LengthRange",
    "PromptTemplate", "SyntheticTraceConfig", "Tokenizer", "TraceConfig", "TraceFormatError", "TraceRequest",
    "TraceShaping", "WorkloadRequest", "build_dataset_workload", "build_random_workload", "build_workload",
    "clip_lengths", "generate_synthetic_trace", "limit_requests", "load_azure_trace", "load_burstgpt_trace",
    "load_eval_samples", "load_eval_set", "load_trace", "load_workload_trace", "mean_request_rate",
    "override_lengths", "random_token_prompt", "scale_lengths", "select_window", "shape_trace", "stretch_time",
    "truncated_prompt_ids",
]
