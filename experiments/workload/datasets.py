"""Evaluation sets (JSONL with fields id, context, input, answers) and which template and language each uses."""
import json
from dataclasses import dataclass
from pathlib import Path

from experiments.workload.templates import LONGBENCH_TEMPLATES, PromptTemplate

WHERE_TO_GET_DATASETS = (
    "The eval sets come from LongBench (https://github.com/THUDM/LongBench) and their source datasets; "
    "in the MorphServe workspace, ../shared/datasets holds prepared JSONL copies (see its README.md)."
)
SAMPLE_FIELDS = ("id", "context", "input", "answers")


@dataclass(frozen=True, slots=True)
class EvalSample:
    id: str
    context: str
    input: str            # the query; "" for pure summarization
    answers: list[str]    # at least one reference


@dataclass(frozen=True, slots=True)
class EvalSetSpec:
    """Where an eval set lives and how it is prompted and scored (``language`` "zh" -> character-level)."""
    name: str
    file_name: str
    template: PromptTemplate
    language: str = "en"


EVAL_SETS: dict[str, EvalSetSpec] = {
    "qmsum": EvalSetSpec("qmsum", "qmsum_val.jsonl", LONGBENCH_TEMPLATES["qmsum"]),
    "qmsum_goldspan": EvalSetSpec("qmsum_goldspan", "qmsum_val_goldspan.jsonl", LONGBENCH_TEMPLATES["qmsum"]),
    "gov_report": EvalSetSpec("gov_report", "gov_report.jsonl", LONGBENCH_TEMPLATES["gov_report"]),
    "multi_news": EvalSetSpec("multi_news", "longbench_multi_news.jsonl", LONGBENCH_TEMPLATES["multi_news"]),
    "dureader": EvalSetSpec("dureader", "dureader.jsonl", LONGBENCH_TEMPLATES["dureader"], language="zh"),
}


def load_eval_set(name: str, datasets_dir: str | Path) -> list[EvalSample]:
    """Load a registered eval set (a key of ``EVAL_SETS``) from ``datasets_dir``."""
    if name not in EVAL_SETS:
        raise ValueError(f"unknown eval set {name!r}; known: {sorted(EVAL_SETS)}")
    return load_eval_samples(Path(datasets_dir) / EVAL_SETS[name].file_name)


def load_eval_samples(path: str | Path) -> list[EvalSample]:
    """Parse a JSONL eval set; a bad line raises ValueError naming the file and line number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"eval set {path} is missing. {WHERE_TO_GET_DATASETS}")
    with path.open(encoding="utf-8") as f:
        samples = [_parse_sample(text, path, line) for line, text in enumerate(f, start=1) if text.strip()]
    if not samples:
        raise ValueError(f"{path}: the eval set holds no samples")
    return samples


def _parse_sample(text: str, path: Path, line: int) -> EvalSample:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{line}: not valid JSON ({error})") from None
    missing = [name for name in SAMPLE_FIELDS if name not in record]
    if missing:
        raise ValueError(f"{path}:{line}: missing fields {missing}")
    answers = record["answers"]
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a for a in answers):
        raise ValueError(f"{path}:{line}: 'answers' must be a non-empty list of non-empty strings")
    return EvalSample(str(record["id"]), record["context"], record["input"], answers)
