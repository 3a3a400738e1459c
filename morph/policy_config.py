"""What a serving policy is: the one schema behind the presets in ``configs/policy/``, the replay's ``policy`` config
group and the library's ``MorphConfig(policy=...)``.

A policy has a ``kind``:
- ``fp``: full precision; nothing is attached to the engine;
- ``static``: every decoder layer at ``precision`` (``int8`` or ``int4``) before serving: the static baselines;
- ``morph``: MorphServe's Serving Monitor -> Morphing Controller -> Morphing Actuator loop, set by ``monitor``
  (window lengths), ``controller`` (triggers, releases, cooldown, layers per step, cap, ladder, forecast horizon)
  and ``swap_order`` (which layers go first).

Every value is checked at construction (Hydra's ``OmegaConf.to_object`` constructs it too): a bad value is a
``ValueError`` naming its field, e.g. ``policy.controller.kv_usage_trigger must lie in (0, 1], got 1.5``; an unknown
field fails when the YAML is merged into the schema, naming the key. Layer numbers are counts or shares of the
model's layers (``morph.layer_count``), resolved when the policy is built for a model (``morph_policy``).
"""
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from morph.controller import ControllerConfig, ForecastConfig, MorphingController, check_ladder
from morph.layer_count import LayerCount
from morph.monitor import MonitorConfig, ServingMonitor
from morph.plan import Precision, parse_precisions
from morph.profiling import SIMPLE_ORDERS

KINDS = ("fp", "static", "morph")
STATIC_PRECISIONS = ("int8", "int4")
ORDER_SOURCES = ("lis", *SIMPLE_ORDERS)


@dataclass
class MonitorSpec:
    """Window lengths in seconds of engine time (``morph.monitor.MonitorConfig``)."""
    short_window_s: float = 1.0
    long_window_s: float = 5.0
    trend_bin_s: float = 0.5


@dataclass
class ControllerSpec:
    """The controller's rules (``morph.controller``). Usage thresholds are fractions of the KV capacity, delays in s.
    ``layers_per_step`` and ``max_quantized_layers``: a count (``"2"``), a share of the layers (``"1/4"``, rounded
    up) or ``"all"``. ``forecast_horizon_s``: act on the KV usage predicted that far ahead (``null``: reactive only)."""
    kv_usage_trigger: float = 0.85
    kv_usage_release: float = 0.6
    queue_delay_trigger_s: float = 0.1
    queue_delay_release_s: float = 0.02
    cooldown_s: float = 1.0
    layers_per_step: str = "2"
    max_quantized_layers: str = "all"
    ladder: list[str] = field(default_factory=lambda: ["fp", "int4"])
    forecast_horizon_s: float | None = None


@dataclass
class SwapOrderSpec:
    """Which layers leave full precision first. ``source``: ``lis`` (the LIS profile of this model and INT4 variant
    in ``profile_dir``, written by ``experiments/profile_layers.py``; front to back, said so, when there is none),
    ``front_to_back``, ``back_to_front``, ``random`` (with ``seed``) or the path of a profiling JSON file."""
    source: str = "lis"
    seed: int = 0
    profile_dir: str = "results/swap_orders"


@dataclass(frozen=True, slots=True)
class MorphPolicy:
    """A policy built for one model: the monitor's and the controller's runtime configurations."""
    name: str
    monitor: MonitorConfig
    controller: ControllerConfig

    def __post_init__(self):
        _check_cooldown(self.controller.cooldown_s, self.monitor.short_window_s)

    def build(self) -> tuple[ServingMonitor, MorphingController]:
        return ServingMonitor(self.monitor), MorphingController(self.controller)


@dataclass
class PolicyConfig:
    name: str = "fp"
    kind: str = "fp"
    precision: str | None = None          # kind static only: every layer's precision
    monitor: MonitorSpec = field(default_factory=MonitorSpec)
    controller: ControllerSpec = field(default_factory=ControllerSpec)
    swap_order: SwapOrderSpec = field(default_factory=SwapOrderSpec)

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad field (run at construction; again by ``MorphConfig``, since the
        fields stay assignable)."""
        _check_identity(self)
        _check_monitor(self.monitor)
        _check_controller(self.controller, self.monitor)
        _check_swap_order(self.swap_order)

    @property
    def precisions(self) -> tuple[Precision, ...]:
        """The precisions the policy runs layers at, full precision first."""
        if self.kind == "morph":
            return parse_precisions(self.controller.ladder)
        return (Precision.FP,) + ((Precision(self.precision),) if self.kind == "static" else ())

    def morph_policy(self, num_layers: int, swap_order: Sequence[int] | None = None) -> MorphPolicy:
        """The monitor and controller configurations for a model of ``num_layers`` layers (kind ``morph`` only)."""
        if self.kind != "morph":
            raise ValueError(f"policy {self.name!r} is of kind {self.kind!r}: only kind 'morph' runs the controller")
        spec = self.controller
        horizon = spec.forecast_horizon_s
        controller = ControllerConfig(
            num_layers=num_layers, kv_usage_trigger=spec.kv_usage_trigger, kv_usage_release=spec.kv_usage_release,
            queue_delay_trigger_s=spec.queue_delay_trigger_s, queue_delay_release_s=spec.queue_delay_release_s,
            cooldown_s=spec.cooldown_s, layers_per_step=LayerCount.parse(spec.layers_per_step).resolve(num_layers),
            max_quantized_layers=LayerCount.parse(spec.max_quantized_layers).resolve(num_layers),
            ladder=tuple(spec.ladder), swap_order=swap_order,
            forecast=None if horizon is None else ForecastConfig(horizon))
        return MorphPolicy(self.name, MonitorConfig(**asdict(self.monitor)), controller)


def _require(ok: bool, field_path: str, requirement: str, value: object) -> None:
    if not ok:
        raise ValueError(f"policy.{field_path} must {requirement}, got {value!r}")


def _check_identity(policy: PolicyConfig) -> None:
    _require(isinstance(policy.name, str) and policy.name.strip() != "", "name", "be a non-empty name", policy.name)
    _require(policy.kind in KINDS, "kind", f"be one of {KINDS}", policy.kind)
    if policy.kind == "static":
        _require(policy.precision in STATIC_PRECISIONS, "precision", f"be one of {STATIC_PRECISIONS} for kind "
                 "'static'", policy.precision)
    else:
        _require(policy.precision is None, "precision", f"be null for kind {policy.kind!r} (it is the precision of "
                 "kind 'static')", policy.precision)


def _check_monitor(monitor: MonitorSpec) -> None:
    for name in ("short_window_s", "long_window_s", "trend_bin_s"):
        _require(getattr(monitor, name) > 0, f"monitor.{name}", "be > 0", getattr(monitor, name))
    _require(monitor.short_window_s <= monitor.long_window_s, "monitor.short_window_s",
             f"not exceed policy.monitor.long_window_s ({monitor.long_window_s})", monitor.short_window_s)
    _require(2 * monitor.trend_bin_s <= monitor.long_window_s, "monitor.trend_bin_s",
             f"fit at least twice in policy.monitor.long_window_s ({monitor.long_window_s})", monitor.trend_bin_s)


def _check_controller(spec: ControllerSpec, monitor: MonitorSpec) -> None:
    _require(0 < spec.kv_usage_trigger <= 1, "controller.kv_usage_trigger", "lie in (0, 1] (a share of the KV "
             "capacity)", spec.kv_usage_trigger)
    _require(0 <= spec.kv_usage_release < spec.kv_usage_trigger, "controller.kv_usage_release",
             f"lie in [0, policy.controller.kv_usage_trigger={spec.kv_usage_trigger}) for hysteresis", spec.kv_usage_release)
    _require(spec.queue_delay_trigger_s > 0, "controller.queue_delay_trigger_s", "be > 0", spec.queue_delay_trigger_s)
    _require(0 <= spec.queue_delay_release_s < spec.queue_delay_trigger_s, "controller.queue_delay_release_s",
             f"lie in [0, policy.controller.queue_delay_trigger_s={spec.queue_delay_trigger_s}) for hysteresis",
             spec.queue_delay_release_s)
    _check_cooldown(spec.cooldown_s, monitor.short_window_s)
    _check_layer_count(spec.layers_per_step, "controller.layers_per_step", minimum=1)
    _check_layer_count(spec.max_quantized_layers, "controller.max_quantized_layers", minimum=0)
    try:
        check_ladder(spec.ladder)
    except ValueError as error:
        raise ValueError(f"policy.controller.ladder: {error}") from None
    horizon = spec.forecast_horizon_s
    _require(horizon is None or horizon > 0, "controller.forecast_horizon_s", "be > 0 or null", horizon)


def _check_cooldown(cooldown_s: float, short_window_s: float) -> None:
    _require(cooldown_s >= short_window_s, "controller.cooldown_s", f"be >= policy.monitor.short_window_s "
             f"({short_window_s}): pressure is judged on the short window, so a shorter cooldown counts "
             "pre-transition pressure twice", cooldown_s)


def _check_layer_count(text: str, field_path: str, minimum: int) -> None:
    try:
        count = LayerCount.parse(text)
    except ValueError as error:
        raise ValueError(f"policy.{field_path}: {error}") from None
    _require(count.minimum >= minimum, field_path, f"be at least {minimum} layer(s)", text)


def _check_swap_order(spec: SwapOrderSpec) -> None:
    _require(spec.source in ORDER_SOURCES or spec.source.endswith(".json"), "swap_order.source",
             f"be one of {ORDER_SOURCES} or the path of a profiling .json file", spec.source)
    _require(spec.profile_dir.strip() != "", "swap_order.profile_dir", "be a folder", spec.profile_dir)
