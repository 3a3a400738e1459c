"""A tiny evaluation session shared by the quality-tool tests (no tests here)."""
from pathlib import Path

import torch

from experiments.eval.config import DataSection, QuantSection
from experiments.eval.perplexity import WIKITEXT2_TEST
from experiments.eval.session import EvalSession
from experiments.replay.config import ModelSection

WINDOW_LEN = 40
NUM_WINDOWS = 5


def tiny_eval_session(model_path: str, work_dir: Path, lm_head: str = "fp") -> EvalSession:
    """The tiny HF model with word-level stand-ins for WikiText-2 test and valid (its vocabulary is w0..w255)."""
    datasets = work_dir / "datasets"
    datasets.mkdir(parents=True)
    generator = torch.Generator().manual_seed(4)
    for name in (WIKITEXT2_TEST, "valid.txt"):
        words = torch.randint(3, 256, (WINDOW_LEN * NUM_WINDOWS + 7,), generator=generator).tolist()
        (datasets / name).write_text(" ".join(f"w{i}" for i in words) + "\n")
    return EvalSession(ModelSection(name="tiny", path=model_path), DataSection(str(datasets), WINDOW_LEN, NUM_WINDOWS),
                       QuantSection(calibration_file="valid.txt", seq_len=32, num_seqs=2, cache_dir=str(work_dir / "cache")),
                       lm_head)
