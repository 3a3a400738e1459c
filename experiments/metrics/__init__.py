"""Metrics of a replay: latency with vLLM's names, output quality, run agreement, provenance, timelines, reports."""
from experiments.metrics.agreement import common_prefix_len, prefix_agreement, token_agreement
from experiments.metrics.latency import SLO, latency_metrics
from experiments.metrics.provenance import provenance_summary, quantized_layer_shares
from experiments.metrics.quality import qa_f1, quality_scores, request_quality, rouge_l
from experiments.metrics.records import RequestRecord, load_records, save_records
from experiments.metrics.report import ReportFiles, format_table, print_report, write_csv, write_report
from experiments.metrics.timeline import TIMELINE_FIELDS, Timeline, resample, timeline_from_steps

__all__ = [
    "SLO", "TIMELINE_FIELDS", "ReportFiles", "RequestRecord", "Timeline", "common_prefix_len", "format_table",
    "latency_metrics", "load_records", "prefix_agreement", "print_report", "provenance_summary", "qa_f1",
    "quality_scores", "quantized_layer_shares", "request_quality", "resample", "rouge_l", "save_records",
    "timeline_from_steps", "token_agreement", "write_csv", "write_report",
]
