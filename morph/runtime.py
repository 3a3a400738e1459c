"""MorphServe on an ``LLMEngine``: the Serving Monitor -> Morphing Controller -> Morphing Actuator loop.

``attach_morph(engine, MorphConfig(...))`` prepares the layer store, moves the decoder layers into
weight slots, on CUDA compiles the quantized variants' kernels, and adds one step hook that, at every step boundary:
1. polls the actuator (settles finished swaps, grows or shrinks the KV pool, updates provenance);
2. feeds the step's statistics to the monitor;
3. when no swap is in flight, asks the controller for a plan and hands it to the actuator.
Every transition is appended to a JSONL event log. Attach between steps (before serving starts); one
runtime per engine at a time. ``close()`` restores full precision and the full-precision KV pool and
detaches, leaving a plain engine. The runtime changes the engine only through its named hooks
(``add_step_hook``, ``install_layer``, ``resize_kv_pool``, ``publish_precisions``).
"""
import dataclasses
import json
import logging
import os
import weakref
from dataclasses import dataclass

import torch

from morph.actuator import MorphingActuator, Swapper, TransitionEvent
from morph.controller import MorphingController
from morph.cpu_swap_copy import DEFAULT_STEP_SHARE
from morph.kv_resizer import KVResizer
from morph.layer_store import LayerStore
from morph.layer_swapper import LayerSwapper
from morph.monitor import ServingMonitor
from morph.plan import MorphPlan, Precision, parse_precisions
from morph.policy_config import MorphPolicy, PolicyConfig
from morph.policy_presets import load_policy
from morph.sim_swapper import SimulatedLayerSwapper
from morph.swap_order_source import SwapOrderChoice, choose_swap_order
from morph.variant_warm_up import warm_up_variants
from swiftllm.quant.calibration import calibration_sequences, read_calibration_text
from swiftllm.quant.spec import VariantSpec
from swiftllm.quant.variant_cache import model_fingerprint
from swiftllm.server.engine import LLMEngine
from swiftllm.server.structs import StepStats
from swiftllm.sim.worker import SimWorker

logger = logging.getLogger(__name__)

INT4_METHODS = ("awq", "rtn")
DEFAULT_VARIANT_CACHE = "~/.cache/morphserve/variants"


@dataclass(frozen=True, slots=True)
class MorphConfig:
    """What to morph and how; every value is checked at construction.

    ``policy``: a ``PolicyConfig`` (``morph.policy_config``) of kind ``morph`` (the controller loop) or ``static``
    (every layer at one precision from the start); a preset name (``morph_accuracy``, ``morph_performance``,
    ``morph_forecast``, ``static_int4``, ...), read from ``configs/policy/<name>.yaml`` of the checkout the package
    runs from (``morph.policy_presets``); or ``None`` for no controller (plans come only from
    ``MorphRuntime.apply``). A full-precision policy needs no runtime.
    ``precisions``: the variants the layer store prepares; default: the policy's, or all of them.
    AWQ needs ``calibration_text_path`` (e.g. the shared ``datasets/wikitext2_tokens_valid.txt``).
    ``variant_cache_dir``: root of the quantized-variant cache (one subfolder per model); ``None``: no cache.
    """
    policy: PolicyConfig | str | None = "morph_accuracy"
    precisions: tuple[str, ...] | None = None
    int4_method: str = "awq"
    group_size: int = 128
    variant_cache_dir: str | None = DEFAULT_VARIANT_CACHE
    calibration_text_path: str | None = None
    calibration_seq_len: int = 512
    calibration_num_seqs: int = 16
    event_log_path: str | None = None
    swap_step_share: float = DEFAULT_STEP_SHARE

    def __post_init__(self):
        if isinstance(self.policy, str):
            object.__setattr__(self, "policy", load_policy(self.policy))
        if self.policy is not None:
            self.policy.check()
        if self.policy is not None and self.policy.kind == "fp":
            raise ValueError(f"policy {self.policy.name!r} is full precision: serve without a morph runtime")
        if self.int4_method not in INT4_METHODS:
            raise ValueError(f"int4_method must be one of {INT4_METHODS}, got {self.int4_method!r}")
        self.int4_spec()
        if self.precisions is not None:
            parse_precisions(self.precisions)
        if self.int4_method == "awq" and self.calibration_text_path is None and self._needs(Precision.INT4):
            raise ValueError("AWQ INT4 variants need calibration_text_path (e.g. the WikiText-2 validation split "
                             "wikitext2_tokens_valid.txt of the shared datasets folder), or use int4_method='rtn'")
        if self.calibration_text_path is not None and not os.path.isfile(self.calibration_text_path):
            raise FileNotFoundError(f"calibration text {self.calibration_text_path!r} not found")
        if not 0 < self.swap_step_share <= 1:
            raise ValueError(f"swap_step_share must lie in (0, 1], got {self.swap_step_share}")
        if self.calibration_seq_len < 1 or self.calibration_num_seqs < 1:
            raise ValueError("calibration_seq_len and calibration_num_seqs must be >= 1")
        log_dir = os.path.dirname(os.path.abspath(self.event_log_path)) if self.event_log_path else None
        if log_dir is not None and not os.path.isdir(log_dir):
            raise FileNotFoundError(f"the folder of event_log_path {self.event_log_path!r} does not exist")

    def int4_spec(self) -> VariantSpec:
        return VariantSpec(self.int4_method, self.group_size)

    def _needs(self, precision: Precision) -> bool:
        if self.precisions is not None:
            return precision in parse_precisions(self.precisions)
        return self.policy is None or precision in self.policy.precisions


_ATTACHED: "weakref.WeakSet[LLMEngine]" = weakref.WeakSet()   # engines with a runtime attached now


class MorphRuntime:
    """The morph loop attached to ``engine`` (see the module docstring)."""

    def __init__(self, engine: LLMEngine, policy: MorphPolicy | None, swapper: Swapper,
                 event_log_path: str | None = None, swap_order: SwapOrderChoice | None = None):
        """``swapper``: the engine's layers already moved under its control (``swapper_for``); ``swap_order``: where
        the controller's order came from (``None`` without a controller)."""
        if engine in _ATTACHED:
            raise RuntimeError("a morph runtime is already attached to this engine: close() it first")
        self.engine = engine
        self.monitor: ServingMonitor | None = None
        self.controller: MorphingController | None = None
        if policy is not None:
            self.monitor, self.controller = policy.build()
        self.swapper = swapper
        self.swap_order = swap_order
        self.resizer = KVResizer(engine)
        self.actuator = MorphingActuator(engine, self.swapper, self.resizer, on_event=self._record)
        self.events: list[TransitionEvent] = []
        self._log = open(event_log_path, "a", encoding="utf-8") if event_log_path else None
        self._closed = False
        engine.add_step_hook(self.on_step)
        _ATTACHED.add(engine)

    def on_step(self, stats: StepStats) -> None:
        """The step hook: poll the actuator, observe, and (when no swap is in flight) decide and apply. The swaps'
        work may take a share of a step that ran a batch, all of the time after one that did not."""
        self.actuator.poll(stats.time, paced=stats.num_prefill_tokens + stats.num_decode_tokens > 0)
        if self.controller is None:
            return
        self.monitor.observe(stats)
        if not self.actuator.busy:
            plan = self.controller.decide(self.monitor.snapshot(), self.actuator.state)
            if plan is not None:
                logger.info("morph plan at t=%.3f: %d quantized layers (%s)", stats.time, plan.num_quantized_layers,
                            plan.reason)
                self.actuator.apply(plan, stats.time)

    def apply(self, plan: MorphPlan | list[str | Precision]) -> list[TransitionEvent]:
        """Finish the swaps in flight, apply a plan now and wait for its swaps (between steps). Raises that
        cannot fit next to the live KV blocks stay waiting; the step hook retries them."""
        if self._closed:
            raise RuntimeError("this morph runtime is closed; attach a new one to morph the engine again")
        plan = plan if isinstance(plan, MorphPlan) else MorphPlan(tuple(plan), "manual")
        events = self._drain()
        self.actuator.apply(plan, self.engine.clock())
        return events + self._drain()

    def precision_map(self, version: int) -> tuple[Precision, ...]:
        """Each layer's precision under provenance ``version`` (a token record's ``precision_version``)."""
        return self.actuator.precision_maps[version]

    def close(self) -> None:
        """Return every layer to full precision and the KV pool to its full-precision size, detach the hook and
        stop the background thread: the engine serves as if never morphed (its full-precision layers stay where
        the swaps put them, bit-identical). Call between steps. Raises ``RuntimeError``, still attached, when the
        live requests need more KV blocks than the full-precision pool holds (finish or abort them first)."""
        if self._closed:
            return
        self._drain()
        if self.engine.min_kv_capacity > self.resizer.base_capacity:
            raise RuntimeError(f"cannot close: the live requests need {self.engine.min_kv_capacity} KV blocks, more "
                               f"than the full-precision pool of {self.resizer.base_capacity} blocks")
        self.actuator.apply(MorphPlan.full_precision(self.swapper.store.num_layers, "close"), self.engine.clock())
        self._drain()
        self.engine.remove_step_hook(self.on_step)
        self.swapper.close()
        self.engine.publish_precisions(0, (Precision.FP.value,) * self.swapper.store.num_layers,
                                       self.engine.memory.weight_bytes)
        if self._log is not None:
            self._log.close()
        self._closed = True
        _ATTACHED.discard(self.engine)

    def _drain(self) -> list[TransitionEvent]:
        """Poll until no swap is in flight."""
        events = []
        while self.actuator.busy:
            self.swapper.wait_for_work()
            events += self.actuator.poll(self.engine.clock())
        return events

    def _record(self, event: TransitionEvent) -> None:
        self.events.append(event)
        if self._log is not None:
            self._log.write(json.dumps(dataclasses.asdict(event)) + "\n")
            self._log.flush()


def attach_morph(engine: LLMEngine, config: MorphConfig) -> MorphRuntime:
    """Prepare the layer variants for ``engine``'s model and attach the morph loop to it; a static policy's
    precision is applied before this returns."""
    if engine in _ATTACHED:
        raise RuntimeError("a morph runtime is already attached to this engine: close() it first")
    policy, num_layers = config.policy, engine.model_config.num_layers
    controlled, choice = None, None
    if policy is not None and policy.kind == "morph":
        choice = choose_swap_order(policy.swap_order, num_layers, _order_variant(config, policy),
                                   lambda: _fingerprint(engine))
        controlled = policy.morph_policy(num_layers, choice.order)
    runtime = MorphRuntime(engine, controlled, swapper_for(engine, config), config.event_log_path, choice)
    if policy is not None and policy.kind == "static":
        runtime.apply([policy.precision] * num_layers)
    return runtime


def swapper_for(engine: LLMEngine, config: MorphConfig) -> Swapper:
    """A simulated engine's layers get the simulated swapper (bytes and virtual time); a real engine's get the host
    store of real variants (cached or quantized) and weight slots."""
    precisions = _store_precisions(config)
    if isinstance(engine.worker, SimWorker):
        return SimulatedLayerSwapper(engine, precisions, config.group_size)
    store = LayerStore.prepare(
        engine.model_weights, engine.model_config, precisions, config.int4_spec(),
        cache_root=config.variant_cache_dir, calibration=_calibration(engine, config), device=engine.config.device)
    swapper = LayerSwapper.into_slots(engine.install_layer, store, engine.config.device, config.swap_step_share)
    if torch.device(engine.config.device).type == "cuda":      # Triton compiles the variants' GEMMs now
        warm_up_variants(store, torch.device(engine.config.device), engine.model_weights.final_norm.dtype,
                         engine.config.max_num_batched_tokens)
    return swapper


def _fingerprint(engine: LLMEngine) -> str | None:
    """The model's fingerprint (``model_fingerprint``); ``None`` for a simulated engine, which holds no weights."""
    return None if isinstance(engine.worker, SimWorker) else model_fingerprint(engine.model_weights)


def _order_variant(config: MorphConfig, policy: PolicyConfig) -> str:
    """The variant name a LIS profile must have been made for: the INT4 variant, or INT8 on a ladder without INT4."""
    return config.int4_spec().name if Precision.INT4 in policy.precisions else VariantSpec("int8").name


def _store_precisions(config: MorphConfig) -> tuple[Precision, ...]:
    policy = config.policy
    if config.precisions is not None:
        precisions = parse_precisions(config.precisions)
    elif policy is not None:
        precisions = policy.precisions
    else:
        precisions = tuple(Precision)
    if policy is not None and not set(policy.precisions) <= set(precisions):
        raise ValueError(f"the policy runs at {[p.value for p in policy.precisions]}, which needs precisions the "
                         f"store would not prepare ({[p.value for p in precisions]})")
    return precisions


def _calibration(engine: LLMEngine, config: MorphConfig) -> list[torch.Tensor] | None:
    if config.int4_method != "awq" or config.calibration_text_path is None:
        return None
    token_ids = engine.tokenizer.encode(read_calibration_text(config.calibration_text_path))
    return calibration_sequences(token_ids, config.calibration_seq_len, config.calibration_num_seqs)
