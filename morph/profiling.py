"""Offline layer profiling (paper section 3.2, appendix B): the order in which layers are swapped to INT4.

Metrics, each a cosine similarity on calibration sequences (higher = safer to quantize):

- ``LTS_p = cos(x_p, h_p(x_p))``: layer p's input against its output, in the full-precision model;
- ``LRS_p = cos(h_p(x_p), h_p^Q(x_p))``: the full-precision and the quantized layer p on the same
  (full-precision) input;
- ``MDS_p(Q) = cos(f^Q(x), f^{Q ∪ {p}}(x))``: the model output with the layers Q quantized against the
  output with p quantized as well.

``LIS_p = a1 * LTS_p + a2 * LRS_p + b * MDS_p(Q)``; Algorithm 1 adds the argmax-LIS layer to Q each
round until every layer is ordered (ties go to the lowest layer index).

What the cosine is taken over: each token's hidden vector, then the mean over all tokens of all
sequences. A cosine of the flattened [T, hidden] tensors would be dominated by the few tokens with
very large activations (the first token of a sequence typically), and would hide changes elsewhere.
The "model output" ``f`` is the final-normed hidden state, the input of the LM head: the head is a
fixed linear map, and leaving it out saves a vocabulary-sized GEMM per candidate.

Cost: the inputs of every layer under the current Q are cached, so candidate p re-runs only layers
p..L-1, starting from the cached input of p; round t evaluates the L - t unquantized candidates, and
the hidden states of the chosen candidate become the cache of the next round.
"""
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from swiftllm.model_config import LlamaModelConfig
from swiftllm.worker.model import CachelessForward
from swiftllm.worker.weight import LayerWeights, ModelWeights

SIMPLE_ORDERS = ("front_to_back", "back_to_front", "random")

# Hidden states of every calibration sequence: one [T_i, hidden] tensor per sequence.
Hidden = list[torch.Tensor]


def front_to_back(num_layers: int) -> tuple[int, ...]:
    """The paper's default order: the first layer first."""
    return tuple(range(num_layers))


def back_to_front(num_layers: int) -> tuple[int, ...]:
    return tuple(reversed(range(num_layers)))


def random_order(num_layers: int, seed: int) -> tuple[int, ...]:
    """A uniformly random permutation, the same for the same seed."""
    return tuple(random.Random(seed).sample(range(num_layers), num_layers))


def simple_order(name: str, num_layers: int, seed: int = 0) -> tuple[int, ...]:
    """One of ``SIMPLE_ORDERS`` by name (``seed`` is used by ``random`` only)."""
    if name == "front_to_back":
        return front_to_back(num_layers)
    if name == "back_to_front":
        return back_to_front(num_layers)
    if name == "random":
        return random_order(num_layers, seed)
    raise ValueError(f"unknown layer order {name!r}; expected one of {SIMPLE_ORDERS}")


def token_cosine(a: Hidden, b: Hidden) -> float:
    """Cosine similarity of corresponding token vectors, averaged over every token of every sequence."""
    return F.cosine_similarity(torch.cat(a).double(), torch.cat(b).double(), dim=-1).mean().item()


@dataclass(frozen=True, slots=True)
class LisCoefficients:
    """Weights of LIS = lts * LTS + lrs * LRS + mds * MDS (the paper's a1, a2 and b)."""
    lts: float = 1.0
    lrs: float = 1.0
    mds: float = 1.0

    def score(self, lts: float, lrs: float, mds: float) -> float:
        return self.lts * lts + self.lrs * lrs + self.mds * mds


@dataclass(frozen=True, slots=True)
class StepScores:
    """The layer chosen in one greedy round and its scores in that round."""
    layer: int
    lts: float
    lrs: float
    mds: float
    lis: float


@dataclass(frozen=True, slots=True)
class LisProfile:
    order: tuple[int, ...]           # the swap order: steps[i].layer == order[i]
    steps: tuple[StepScores, ...]
    lts: tuple[float, ...]           # per layer index
    lrs: tuple[float, ...]           # per layer index


class LayerRunner:
    """Runs decoder layers over every calibration sequence (the model's cache-less forward)."""

    def __init__(self, weights: ModelWeights, cfg: LlamaModelConfig, sequences: Sequence[torch.Tensor]):
        if not sequences or any(ids.dim() != 1 or len(ids) == 0 for ids in sequences):
            raise ValueError("profiling needs at least one non-empty 1-D calibration token sequence")
        self.forward = CachelessForward(weights, cfg, max(len(ids) for ids in sequences))
        self.embedded = [self.forward.embed(ids) for ids in sequences]          # each [T_i, hidden]

    def layer(self, layer: LayerWeights, x: Hidden) -> Hidden:
        return [self.forward.layer(layer, h) for h in x]

    def propagate(self, layers: Sequence[LayerWeights], start: int, x: Hidden) -> list[Hidden]:
        """Given ``x`` entering layer ``start``: [x, output of start, ..., output of the last layer]."""
        states = [x]
        for layer in layers[start:]:
            states.append(self.layer(layer, states[-1]))
        return states

    def output(self, last_hidden: Hidden) -> Hidden:
        """The model output ``f``: the final-normed hidden states (what the LM head reads)."""
        return [self.forward.final_norm(h) for h in last_hidden]


@torch.inference_mode()
def profile_lis(weights: ModelWeights, cfg: LlamaModelConfig, quantized_layers: Sequence[LayerWeights],
                sequences: Sequence[torch.Tensor], coefficients: LisCoefficients = LisCoefficients(),
                progress: bool = True) -> LisProfile:
    """Algorithm 1: the greedy LIS swap order of ``weights.layers`` towards ``quantized_layers``.

    sequences: calibration token ids, each int64 [T_i]. Evaluates L (L + 1) / 2 candidates in all.
    """
    num_layers = len(weights.layers)
    if len(quantized_layers) != num_layers:
        raise ValueError(f"need one quantized variant per layer: {len(quantized_layers)} variants, {num_layers} layers")
    runner = LayerRunner(weights, cfg, sequences)
    states = runner.propagate(weights.layers, 0, runner.embedded)       # states[p] enters layer p; L + 1 entries
    lts = tuple(token_cosine(states[p], states[p + 1]) for p in range(num_layers))
    lrs = tuple(token_cosine(states[p + 1], runner.layer(quantized_layers[p], states[p])) for p in range(num_layers))

    def score(p: int, mds: float) -> StepScores:
        return StepScores(p, lts[p], lrs[p], mds, coefficients.score(lts[p], lrs[p], mds))

    search = _GreedySearch(runner, list(weights.layers), quantized_layers, states, score)
    total = num_layers * (num_layers + 1) // 2
    with tqdm(total=total, desc="LIS profiling", unit="candidate", disable=not progress) as bar:
        steps = [search.choose_next(bar) for _ in range(num_layers)]
    return LisProfile(order=tuple(s.layer for s in steps), steps=tuple(steps), lts=lts, lrs=lrs)


class _GreedySearch:
    """The state of Algorithm 1: the quantized set Q, the model under Q and the hidden states entering each layer."""

    def __init__(self, runner: LayerRunner, layers: list[LayerWeights], quantized_layers: Sequence[LayerWeights],
                 states: list[Hidden], score: Callable[[int, float], StepScores]):
        self.runner = runner
        self.score = score
        self.current = layers
        self.quantized_layers = quantized_layers
        self.states = states
        self.quantized: set[int] = set()

    def choose_next(self, bar: tqdm) -> StepScores:
        """Score (``score(layer, MDS)``) every layer outside Q, add the best to Q and return its scores."""
        reference = self.runner.output(self.states[-1])
        best, best_states = None, None
        for p in range(len(self.current)):
            if p in self.quantized:
                continue
            candidate = self.current[:p] + [self.quantized_layers[p]] + self.current[p + 1:]
            tail = self.runner.propagate(candidate, p, self.states[p])
            step = self.score(p, token_cosine(reference, self.runner.output(tail[-1])))
            if best is None or step.lis > best.lis:
                best, best_states = step, self.states[:p] + tail
            bar.update()
        self.quantized.add(best.layer)
        self.current[best.layer] = self.quantized_layers[best.layer]
        self.states = best_states
        return best
