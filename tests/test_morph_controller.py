"""Morphing Controller and the policy presets of configs/policy/: triggers, hysteresis, cooldown, cap, order, ladder,
forecast."""
import json
from dataclasses import replace

import pytest

from morph.controller import ControllerConfig, ForecastConfig, MorphingController, load_swap_order
from morph.monitor import MonitorConfig, ServingMonitor
from morph.plan import LayerTransition, MorphPlan, MorphState, Precision
from morph.policy_presets import load_policy
from morph.swap_order_source import choose_swap_order
from tests.morph_stats import step_stats, step_time

FP, INT8, INT4 = Precision.FP, Precision.INT8, Precision.INT4
MONITOR = MonitorConfig(short_window_s=0.5, long_window_s=2.0, trend_bin_s=0.5)


def preset(name: str, num_layers: int = 30):
    """A preset YAML built for a model of ``num_layers`` layers (front-to-back order)."""
    return load_policy(name).morph_policy(num_layers)


def make_controller(**fields) -> MorphingController:
    defaults = dict(num_layers=6, kv_usage_trigger=0.85, kv_usage_release=0.6, cooldown_s=0.5, layers_per_step=2)
    return MorphingController(ControllerConfig(**(defaults | fields)))


def usage_steps(usages, first_index: int = 1, **fields):
    """One 0.1-s step per KV usage value (capacity 1000 blocks)."""
    return [step_stats(step_time(first_index + i), kv_blocks_used=round(u * 1000), **fields)
            for i, u in enumerate(usages)]


def drive(controller, steps, state=None, monitor_config=MONITOR):
    """Run the monitor -> controller loop, applying every plan at once; return the final state and
    the (time, plan) transitions."""
    monitor = ServingMonitor(monitor_config)
    state = state or MorphState.full_precision(controller.config.num_layers)
    transitions = []
    for stats in steps:
        monitor.observe(stats)
        plan = controller.decide(monitor.snapshot(), state)
        if plan is not None:
            state = state.after(plan, stats.time)
            transitions.append((stats.time, plan))
    return state, transitions


def quantized_layers(state) -> list[int]:
    return [layer for layer, p in enumerate(state.layer_precisions) if p != FP]


# ---- triggers -------------------------------------------------------------------------------------

def test_calm_load_changes_nothing():
    _, transitions = drive(make_controller(), usage_steps([0.5] * 30))
    assert transitions == []


@pytest.mark.parametrize("fields, reason", [
    (dict(kv_blocks_used=900), "KV usage 0.900 > 0.85"),
    (dict(num_waiting=3, oldest_waiting_time=0.2), "queueing delay 0.200 s > 0.1 s"),
    (dict(blocked_on_kv=True), "blocked on KV blocks"),
])
def test_each_pressure_signal_quantizes_the_first_layers_of_the_order(fields, reason):
    state, transitions = drive(make_controller(), [step_stats(0.1, **fields)])
    assert len(transitions) == 1
    assert reason in transitions[0][1].reason
    assert state.layer_precisions == (INT4, INT4, FP, FP, FP, FP)


def test_kv_trigger_uses_the_short_window_mean_not_a_single_spike():
    _, transitions = drive(make_controller(), usage_steps([0.5, 0.5, 0.5, 0.5, 0.95]))   # mean 0.59
    assert transitions == []


# ---- cooldown, cap, order, ladder ----------------------------------------------------------------

def test_cooldown_spaces_transitions_under_sustained_pressure():
    _, transitions = drive(make_controller(cooldown_s=0.5, max_quantized_layers=6), usage_steps([0.95] * 20))
    assert [t for t, _ in transitions] == [0.1, 0.6, 1.1]
    assert [plan.num_quantized_layers for _, plan in transitions] == [2, 4, 6]


def test_cap_limits_quantized_layers():
    controller = make_controller(max_quantized_layers=3)
    state, transitions = drive(controller, usage_steps([0.95] * 40))
    assert state.num_quantized_layers == 3
    assert [plan.num_quantized_layers for _, plan in transitions] == [2, 3]


def test_swap_order_from_a_profiling_file_decides_which_layers_go_first(tmp_path):
    path = tmp_path / "order.json"
    path.write_text(json.dumps({"model": "tiny", "order": [4, 1, 5, 0, 3, 2]}))
    controller = make_controller(swap_order=load_swap_order(path, 6), layers_per_step=1, max_quantized_layers=3)
    state, _ = drive(controller, usage_steps([0.95] * 5))
    assert quantized_layers(state) == [4]
    state, _ = drive(controller, usage_steps([0.95] * 20))
    assert quantized_layers(state) == [1, 4, 5]


def test_ladder_goes_breadth_first_down_and_back_up_in_reverse():
    controller = make_controller(ladder=("fp", "int8", "int4"), layers_per_step=1, max_quantized_layers=2,
                                 num_layers=3, cooldown_s=0.5)
    steps = usage_steps([0.95] * 25) + usage_steps([0.1] * 60, first_index=26)
    _, transitions = drive(controller, steps)
    assert [plan.layer_precisions for _, plan in transitions] == [
        (INT8, FP, FP), (INT8, INT8, FP), (INT4, INT8, FP), (INT4, INT4, FP),
        (INT4, INT8, FP), (INT8, INT8, FP), (INT8, FP, FP), (FP, FP, FP),
    ]


# ---- restore and hysteresis ----------------------------------------------------------------------

def test_restore_waits_for_a_full_long_window_of_low_load_then_steps_back_to_fp():
    steps = usage_steps([0.95] * 12) + usage_steps([0.3] * 40, first_index=13)     # high until t = 1.2
    state, transitions = drive(make_controller(cooldown_s=0.5), steps)
    assert [(t, plan.num_quantized_layers) for t, plan in transitions] == [
        (0.1, 2), (0.6, 4), (1.1, 6),              # pressure: one step per cooldown, up to every layer
        (3.2, 4), (3.7, 2), (4.2, 0),              # the last high sample (1.2) left the 2-s long window at 3.2
    ]
    assert state.layer_precisions == MorphState.full_precision(6).layer_precisions


@pytest.mark.parametrize("start_quantized", [False, True])
def test_load_oscillating_between_release_and_trigger_does_not_flap(start_quantized):
    initial = MorphState((INT4, INT4, FP, FP, FP, FP)) if start_quantized else MorphState.full_precision(6)
    oscillating = [0.65, 0.8] * 100                  # between release 0.6 and trigger 0.85
    state, transitions = drive(make_controller(), usage_steps(oscillating), initial)
    assert transitions == []
    assert state == initial


def test_restore_needs_the_queueing_delay_low_too():
    initial = MorphState((INT4, INT4, FP, FP, FP, FP))
    steps = usage_steps([0.3] * 50, num_waiting=1, oldest_waiting_time=0.05)   # release 0.02 < 0.05 < trigger 0.1
    state, transitions = drive(make_controller(), steps, initial)
    assert transitions == [] and state == initial


def test_without_a_hysteresis_gap_the_same_kind_of_load_flaps():
    # control for the no-flapping test: bursts above the trigger separated by lulls just below it
    bursty = ([0.85] * 10 + [0.7] * 30) * 3
    _, narrow = drive(make_controller(kv_usage_trigger=0.8, kv_usage_release=0.79), usage_steps(bursty))
    _, wide = drive(make_controller(kv_usage_trigger=0.8, kv_usage_release=0.6), usage_steps(bursty))
    assert sum("low" in plan.reason for _, plan in narrow) >= 2      # restored in every lull, re-quantized after
    assert all("low" not in plan.reason for _, plan in wide)


# ---- forecast --------------------------------------------------------------------------------------

def ramp_steps(arrival_rate, seconds: float, blocks_per_request: int = 10, service_s: float = 4.0,
               capacity: int = 400, dt: float = 0.1):
    """A fluid workload: requests arrive at ``arrival_rate(t)`` req/s and each holds its blocks for
    ``service_s`` seconds, then finishes."""
    finish_times, pending, steps = [], 0.0, []
    for index in range(1, round(seconds / dt) + 1):
        now = step_time(index, dt)
        pending += arrival_rate(now) * dt
        arrived, pending = int(pending), pending - int(pending)
        finished = sum(1 for t in finish_times if t <= now)
        finish_times = [t for t in finish_times if t > now] + [now + service_s] * arrived
        steps.append(step_stats(now, duration=dt, num_running=len(finish_times),
                                kv_blocks_used=len(finish_times) * blocks_per_request,
                                kv_blocks_capacity=capacity, num_arrivals=arrived, num_finished=finished))
    return steps


def first_plan_time(policy, steps) -> float | None:
    monitor, controller = policy.build()
    state = MorphState.full_precision(policy.controller.num_layers)
    for stats in steps:
        monitor.observe(stats)
        if controller.decide(monitor.snapshot(), state) is not None:
            return stats.time
    return None


def test_forecast_policy_morphs_earlier_than_the_reactive_one_on_a_rising_ramp():
    steps = ramp_steps(lambda t: 0.5 * t, seconds=30)     # KV usage ~ 0.05 t - 0.1: crosses 0.95 near t = 21
    reactive = first_plan_time(preset("morph_accuracy"), steps)
    proactive = first_plan_time(preset("morph_forecast"), steps)
    assert reactive is not None and proactive is not None
    assert reactive > 20.0
    assert proactive < reactive - 1.0


def test_forecast_policy_stays_calm_under_steady_load():
    steps = ramp_steps(lambda t: 5.0, seconds=30)          # 20 requests in service: KV usage 0.5
    assert first_plan_time(preset("morph_forecast"), steps) is None


def rising_demand_snapshot():
    """Four 1-s steps: 1, 2, 3, 4 arrivals, 2 completions in the last; then 5 running (10 blocks each), 3 waiting."""
    monitor = ServingMonitor(MonitorConfig(short_window_s=1.0, long_window_s=4.0, trend_bin_s=1.0))
    populations = [(1, 0, 1), (3, 0, 2), (6, 0, 3), (5, 3, 4)]      # (running, waiting, arrivals)
    for second, (running, waiting, arrivals) in enumerate(populations, start=1):
        monitor.observe(step_stats(float(second), duration=1.0, num_running=running, num_waiting=waiting,
                                   num_arrivals=arrivals, num_finished=2 if second == 4 else 0,
                                   kv_blocks_used=10 * running, kv_blocks_capacity=1000))
    return monitor.snapshot()


def test_forecast_predicts_fluid_demand():
    controller = make_controller(forecast=ForecastConfig(horizon_s=2.0))
    # trend: level 4.5 req/s, slope 1 req/s² -> 4.5 * 2 + 1 * 2² / 2 = 11 arrivals over 2 s;
    # completions 2 per 4 s -> 1 over 2 s; the 3 waiting and the newcomers need 10 blocks each
    assert controller.forecast_kv_usage(rising_demand_snapshot()) == pytest.approx((50 + (3 + 11 - 1) * 10) / 1000)


def test_forecast_holds_back_a_restore_while_demand_is_predicted_to_rise():
    fields = dict(kv_usage_trigger=0.5, kv_usage_release=0.1, queue_delay_trigger_s=10.0, cooldown_s=0.0)
    quantized = MorphState((INT4, INT4, FP, FP, FP, FP))
    snapshot = rising_demand_snapshot()                              # usage <= 0.06 all window, forecast 0.18
    assert make_controller(**fields).decide(snapshot, quantized) is not None
    assert make_controller(**fields, forecast=ForecastConfig(horizon_s=2.0)).decide(snapshot, quantized) is None


# ---- presets -----------------------------------------------------------------------------------------

def test_presets_differ_as_the_paper_describes():
    accuracy = preset("morph_accuracy").controller
    performance = preset("morph_performance").controller
    forecast = preset("morph_forecast").controller
    assert accuracy.kv_usage_trigger > performance.kv_usage_trigger == 0.85
    assert accuracy.queue_delay_trigger_s > performance.queue_delay_trigger_s == 0.1
    assert accuracy.max_quantized_layers < performance.max_quantized_layers == 30
    assert accuracy.forecast is None and performance.forecast is None and forecast.forecast is not None
    assert replace(forecast, forecast=None) == accuracy


def test_performance_mode_quantizes_more_layers_than_accuracy_mode_under_the_same_pressure():
    steps = usage_steps([0.97] * 200)
    counts = {}
    for policy in (preset("morph_accuracy"), preset("morph_performance")):
        state, _ = drive(MorphingController(policy.controller), steps, monitor_config=policy.monitor)
        counts[policy.name] = state.num_quantized_layers
    assert counts == {"morph_accuracy": 8, "morph_performance": 30}


def test_a_preset_reads_the_order_file_it_names_and_unknown_presets_are_rejected(tmp_path):
    path = tmp_path / "order.json"
    path.write_text(json.dumps(list(reversed(range(30)))))
    policy = load_policy("morph_performance")
    policy.swap_order.source = str(path)
    choice = choose_swap_order(policy.swap_order, 30, "rtn-int4-g128", lambda: None)
    assert policy.morph_policy(30, choice.order).controller.swap_order == tuple(reversed(range(30)))
    with pytest.raises(ValueError, match="unknown policy preset 'morph_fast'"):
        load_policy("morph_fast")


def test_policy_rejects_a_cooldown_shorter_than_the_short_window():
    policy = preset("morph_accuracy")
    with pytest.raises(ValueError, match=r"policy\.controller\.cooldown_s must be >= policy\.monitor\.short_window_s"):
        replace(policy, controller=replace(policy.controller, cooldown_s=0.2))


# ---- bad configs and states --------------------------------------------------------------------------

@pytest.mark.parametrize("fields, message", [
    (dict(num_layers=0), "num_layers must be >= 1"),
    (dict(kv_usage_trigger=-0.1), "kv_usage trigger must be > 0"),
    (dict(queue_delay_release_s=-0.01), "queue_delay trigger must be > 0 and release >= 0"),
    (dict(kv_usage_release=0.9), r"kv_usage release \(0.9\) must be below its trigger \(0.85\)"),
    (dict(kv_usage_trigger=1.5, kv_usage_release=0.5), "must be <= 1"),
    (dict(cooldown_s=-1.0), "cooldown_s must be >= 0"),
    (dict(layers_per_step=0), "layers_per_step must be >= 1"),
    (dict(max_quantized_layers=7), r"max_quantized_layers must lie in \[0, num_layers=6\]"),
    (dict(ladder=("fp", "int3")), "unknown precision 'int3'"),
    (dict(ladder=("int8", "int4")), "ladder must start at 'fp'"),
    (dict(ladder=("fp", "int4", "int8")), "step down strictly"),
    (dict(swap_order=(0, 1, 2, 3, 4, 4)), r"missing \[5\], duplicated \[4\], out of range \[\]"),
    (dict(swap_order=(0, 1, 2, 3, 4, 6)), r"out of range \[6\]"),
    (dict(swap_order=(0, 1, 2, 3, 4, 5.0)), "integer layer indices"),
])
def test_bad_controller_config_fails_with_clear_message(fields, message):
    with pytest.raises(ValueError, match=message):
        make_controller(**fields)


def test_bad_forecast_horizon_fails():
    with pytest.raises(ValueError, match="horizon_s must be > 0"):
        ForecastConfig(horizon_s=0.0)


def test_order_file_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="swap order file not found"):
        load_swap_order(tmp_path / "missing.json", 6)
    broken = tmp_path / "broken.json"
    broken.write_text("[0, 1,")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_swap_order(broken, 6)
    no_order = tmp_path / "no_order.json"
    no_order.write_text(json.dumps({"scores": [1, 2]}))
    with pytest.raises(ValueError, match="an object with an 'order' list"):
        load_swap_order(no_order, 6)
    short = tmp_path / "short.json"
    short.write_text(json.dumps([0, 1, 2]))
    with pytest.raises(ValueError, match=r"permutation of range\(6\)"):
        load_swap_order(short, 6)


def test_state_that_does_not_fit_the_controller_is_rejected():
    controller = make_controller()
    snapshot_monitor = ServingMonitor(MONITOR)
    snapshot_monitor.observe(step_stats(0.1))
    snapshot = snapshot_monitor.snapshot()
    with pytest.raises(ValueError, match="state has 4 layers but the controller expects 6"):
        controller.decide(snapshot, MorphState.full_precision(4))
    with pytest.raises(ValueError, match="layer 2 is at int8, which is not on the ladder fp -> int4"):
        controller.decide(snapshot, MorphState((FP, FP, INT8, FP, FP, FP)))


# ---- plan values --------------------------------------------------------------------------------------

def test_plan_lists_the_transitions_from_the_current_state():
    plan = MorphPlan(("int4", "fp", "int8"))
    assert plan.layer_precisions == (INT4, FP, INT8) and plan.num_quantized_layers == 2
    assert plan.transitions_from((FP, FP, INT4)) == (LayerTransition(0, FP, INT4), LayerTransition(2, INT4, INT8))
    assert MorphState.full_precision(3).after(plan, 1.5) == MorphState((INT4, FP, INT8), 1.5)
    with pytest.raises(ValueError, match="plan covers 3 layers but the model has 2"):
        plan.transitions_from((FP, FP))


def test_plan_rejects_unknown_precisions_and_empty_plans():
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        MorphPlan(("fp16",))
    with pytest.raises(ValueError, match="at least one layer"):
        MorphPlan(())
