"""WikiText-2 test perplexity over non-overlapping token windows.

Text: the raw test split (``wiki.test.raw`` of ``wikitext-2-raw-v1``) joined as the common GPTQ /
llama.cpp evaluation does, ``"\\n\\n".join(rows)`` of the Hugging Face rows (each line with its ``\\n``,
blank lines as ""). No BOS token is added (SmolLM2's tokenizer adds none).

Windows: the token stream is cut into ``num_windows`` consecutive, non-overlapping windows of
``window_len`` tokens from the start (the tail shorter than a window is dropped). Each window is an
independent sequence; its first token has no context and is not scored, so a window contributes
``window_len - 1`` predictions. Perplexity is ``exp(total NLL / number of predictions)``.
"""
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

WIKITEXT2_TEST = "wikitext2_raw_test.txt"
WHERE_TO_GET_WIKITEXT2 = (
    "it is `wiki.test.raw` of wikitext-2-raw-v1 (Merity et al. 2016; e.g. the Hugging Face dataset "
    "Salesforce/wikitext, or the MorphServe workspace's ../shared/datasets, see its README.md)")

# logits_fn(token_ids [T]) -> logits [T, vocab]
LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def read_wikitext2_test(datasets_dir: str | Path) -> str:
    """The raw WikiText-2 test text as ``"\\n\\n".join`` of its rows (1,294,336 characters for the canonical file)."""
    path = Path(datasets_dir) / WIKITEXT2_TEST
    if not path.is_file():
        raise FileNotFoundError(f"WikiText-2 test split not found at {path}: {WHERE_TO_GET_WIKITEXT2}")
    rows = ["" if not line.strip() else line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)]
    return "\n\n".join(rows)


def token_windows(token_ids: Sequence[int], window_len: int, num_windows: int | None = None) -> list[torch.Tensor]:
    """The first ``num_windows`` (all when None) non-overlapping windows, each int64 [window_len]."""
    if window_len < 2:
        raise ValueError(f"window_len must be >= 2 (a window scores window_len - 1 tokens), got {window_len}")
    available = len(token_ids) // window_len
    if num_windows is None:
        num_windows = available
    if not 1 <= num_windows <= available:
        raise ValueError(f"num_windows must be in [1, {available}] for {len(token_ids)} tokens in windows of "
                         f"{window_len}, got {num_windows}")
    ids = torch.tensor(token_ids[:num_windows * window_len], dtype=torch.int64)
    return list(ids.view(num_windows, window_len))


@dataclass(frozen=True, slots=True)
class Perplexity:
    nll_sum: float          # natural log, summed over every scored token
    num_tokens: int         # scored tokens: num_windows * (window_len - 1)
    num_windows: int

    @property
    def mean_nll(self) -> float:
        return self.nll_sum / self.num_tokens

    @property
    def ppl(self) -> float:
        return math.exp(self.mean_nll)


def window_nll(logits: torch.Tensor, token_ids: torch.Tensor) -> float:
    """Summed NLL of tokens 1..T-1 of a window given logits [T, vocab] for token_ids [T]."""
    return F.cross_entropy(logits[:-1].float(), token_ids[1:], reduction="sum").item()


@torch.inference_mode()
def perplexity(logits_fn: LogitsFn, windows: Sequence[torch.Tensor], desc: str = "perplexity",
               progress: bool = True) -> Perplexity:
    """Perplexity of the model behind ``logits_fn`` over ``windows`` (each scored independently)."""
    if not windows:
        raise ValueError("perplexity needs at least one window")
    nll_sum = sum(window_nll(logits_fn(ids), ids) for ids in tqdm(windows, desc=desc, unit="window", disable=not progress))
    return Perplexity(nll_sum, sum(len(ids) - 1 for ids in windows), len(windows))
