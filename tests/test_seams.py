"""The seams between the layers: the data plane never imports the control plane, nothing in swiftllm imports morph
(which sits above it) and both name a layer's precisions alike, morph changes the engine only through its named
hooks, a failed step ends the requests in flight, close() leaves a plain engine, and the monitor counts what the
engine counts."""
import ast
import asyncio
import itertools
import sys
import time
from pathlib import Path

import pytest
import torch

from morph.monitor import MonitorConfig, ServingMonitor
from morph.plan import Precision
from morph.runtime import MorphConfig, attach_morph
from swiftllm import EngineConfig, LLMEngine, SamplingParams
from swiftllm.server.async_engine import AsyncLLMEngine, EngineStepError
from swiftllm.server.block_manager import BlockManager
from swiftllm.server.engine import LAYER_PRECISIONS
from swiftllm.server.scheduler import Scheduler
from swiftllm.server.structs import Request
from swiftllm.worker.kv_cache import PagedKVCache
from swiftllm.worker.model import LlamaModel
from swiftllm.worker.runner import ModelRunner
from swiftllm.worker.weight import ModelWeights

ROOT = Path(__file__).resolve().parents[1]
GREEDY = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
RTN = MorphConfig(policy=None, int4_method="rtn", variant_cache_dir=None)


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _imported_modules(path: Path, root: Path = ROOT) -> list[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved; for ``from pkg import name``
    both ``pkg`` and ``pkg.name``, since the name may be a submodule)."""
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > len(package):
                raise ValueError(f"{path}:{node.lineno}: a relative import beyond the top-level package")
            base = package[:len(package) + 1 - node.level] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            modules += ([module] if module else []) + [module + "." + alias.name if module else alias.name
                                                       for alias in node.names]
    return modules


def test_the_worker_imports_nothing_from_the_server():
    offenders = [f"{path.relative_to(ROOT)}: {module}" for path in _sources("swiftllm/worker")
                 for module in _imported_modules(path) if _is_within(module, "swiftllm.server")]
    assert _sources("swiftllm/worker") and offenders == []


def _is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _imports_morph(path: Path, root: Path = ROOT) -> list[str]:
    return [module for module in _imported_modules(path, root) if _is_within(module, "morph")]


def test_nothing_under_swiftllm_imports_morph(tmp_path):
    """Not even lazily inside a function: what serves an engine with morph (``morph/serve.py``) injects it."""
    offenders = [f"{path.relative_to(ROOT)}: {module}" for path in _sources("swiftllm")
                 for module in _imports_morph(path)]
    assert _sources("swiftllm") and offenders == []
    nested = tmp_path / "swiftllm" / "worker" / "nested.py"
    nested.parent.mkdir(parents=True)
    nested.write_text("import morphology\ndef f():\n    if f:\n        from morph.runtime import attach_morph\n"
                      "from ..server import engine\nfrom .. import server\n")
    assert _imported_modules(nested, tmp_path) == [
        "morphology", "swiftllm.server", "swiftllm.server.engine", "swiftllm", "swiftllm.server", "morph.runtime",
        "morph.runtime.attach_morph"]
    assert _imports_morph(nested, tmp_path) == ["morph.runtime", "morph.runtime.attach_morph"]


def test_morph_names_a_layers_precisions_as_the_engine_does_in_the_same_order():
    assert tuple(precision.value for precision in Precision) == LAYER_PRECISIONS


def _assignment_targets(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.Delete)):
            yield from node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            yield node.target
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            yield ast.Attribute(value=node.args[0], attr="?")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__setattr__":
            yield ast.Attribute(value=node.args[0], attr="?")


def _writes_through_the_engine(target: ast.expr) -> bool:
    """True for ``engine.x = ...``, ``self.engine.memory.x = ...``, ``engine.worker.layers[i] = ...``: a write into
    the engine or an object reached through it. ``self.engine = engine`` (the module's own field) is fine."""
    if isinstance(target, (ast.Tuple, ast.List)):
        return any(_writes_through_the_engine(t) for t in target.elts)
    if isinstance(target, ast.Starred):
        return _writes_through_the_engine(target.value)
    node = target.value if isinstance(target, (ast.Attribute, ast.Subscript)) else None
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Attribute) and node.attr == "engine":
            return True
        node = node.func if isinstance(node, ast.Call) else node.value
    return isinstance(node, ast.Name) and node.id == "engine"


def test_morph_assigns_nothing_through_the_engine():
    offenders = [f"{path.relative_to(ROOT)}:{target.lineno}: {ast.unparse(target)}"
                 for path in _sources("morph") for target in _assignment_targets(ast.parse(path.read_text()))
                 if _writes_through_the_engine(target)]
    assert _sources("morph") and offenders == []
    assert _writes_through_the_engine(ast.parse("self.engine.memory.weight_bytes = 1").body[0].targets[0])
    assert _writes_through_the_engine(ast.parse("engine.model_weights.layers[3] = x").body[0].targets[0])
    assert not _writes_through_the_engine(ast.parse("self.engine = engine").body[0].targets[0])


ENGINE_CLASSES = (LLMEngine, Scheduler, BlockManager, Request, ModelRunner, LlamaModel, PagedKVCache, ModelWeights)


def _refuse_writes_from_morph(monkeypatch) -> None:
    """Make every engine component raise when code under ``morph/`` sets one of its attributes."""
    morph_dir = str(ROOT / "morph")
    for cls in ENGINE_CLASSES:
        original = cls.__setattr__

        def guarded(obj, name, value, original=original, cls=cls):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(morph_dir):
                raise AssertionError(f"{caller} assigned {cls.__name__}.{name}")
            original(obj, name, value)
        monkeypatch.setattr(cls, "__setattr__", guarded)


def _engine(path: str, **overrides) -> LLMEngine:
    config = dict(model=path, num_kv_blocks=48, block_size=4, max_model_len=200, max_num_batched_tokens=256,
                  watermark=0.0)
    return LLMEngine(EngineConfig(**(config | overrides)))


def _prompts(n: int) -> list[list[int]]:
    return [[(7 * i + 13 * j) % 250 + 3 for j in range(5 + 3 * i)] for i in range(n)]


def _generate(engine: LLMEngine, prompts, params=GREEDY) -> list[list[int]]:
    requests = [engine.add_request(p, params) for p in prompts]
    while engine.has_unfinished():
        engine.step()
    return [r.output_token_ids for r in requests]


def test_a_full_morph_cycle_writes_no_engine_attribute_from_morph(tiny_llama, monkeypatch):
    engine = _engine(tiny_llama)
    _refuse_writes_from_morph(monkeypatch)
    runtime = attach_morph(engine, RTN)
    requests = [engine.add_request(p, GREEDY) for p in _prompts(4)]
    for plan in (["int4"] * 3, ["int8", "int4", "fp"], ["fp"] * 3):
        engine.step()
        runtime.apply(plan)
    while engine.has_unfinished():
        engine.step()
    runtime.close()
    assert all(len(r.output_token_ids) == GREEDY.max_tokens for r in requests)
    assert {e.status for e in runtime.events} == {"done"} and len(runtime.events) >= 5


def test_attach_then_close_leaves_a_plain_engine(tiny_llama):
    prompts = _prompts(5)
    plain = _generate(_engine(tiny_llama), prompts)
    engine = _engine(tiny_llama)
    weights_before = [{k: t.clone() for k, t in layer.tensors().items()} for layer in engine.model_weights.layers]
    memory_before, capacity_before = engine.memory, engine.kv_capacity
    runtime = attach_morph(engine, RTN)
    runtime.apply(["int4"] * 3)
    assert engine.kv_capacity > capacity_before and engine.num_quantized_layers == 3
    _generate(engine, prompts[:2])
    runtime.close()
    assert engine.step_hooks == () and engine.num_quantized_layers == 0 and engine.precision_version == 0
    assert engine.kv_capacity == capacity_before and engine.memory == memory_before
    for layer, before in zip(engine.model_weights.layers, weights_before):
        assert all(torch.equal(t, before[k]) for k, t in layer.tensors().items())
    assert _generate(engine, prompts) == plain
    with pytest.raises(RuntimeError, match="closed"):
        runtime.apply(["int4"] * 3)


def test_close_refuses_while_live_blocks_need_the_grown_pool(tiny_llama):
    engine = _engine(tiny_llama, num_kv_blocks=8)
    runtime = attach_morph(engine, RTN)
    runtime.apply(["int4"] * 3)
    engine.add_request(list(range(3, 60)), SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))
    engine.step()
    assert engine.kv_blocks_used > 8
    with pytest.raises(RuntimeError, match="need .* KV blocks"):
        runtime.close()
    assert engine.num_quantized_layers == 3 and engine.step_hooks       # still attached, unchanged
    while engine.has_unfinished():
        engine.step()
    runtime.close()
    assert engine.kv_capacity == 8 and engine.step_hooks == ()


def test_a_failing_step_ends_every_request_in_flight_within_a_second(tiny_llama):
    engine = _engine(tiny_llama, num_kv_blocks=128)
    failing = {"now": False}

    def hook(stats):
        if failing["now"]:
            failing["now"] = False
            raise RuntimeError("injected step failure")
    engine.add_step_hook(hook)
    online = AsyncLLMEngine(engine)
    online.start()
    long = SamplingParams(temperature=0, max_tokens=150, ignore_eos=True)

    async def consume(prompt):
        async for _ in online.generate(prompt, long):
            pass

    async def main():
        tasks = [asyncio.create_task(consume(p)) for p in _prompts(3)]
        await asyncio.sleep(0.05)
        failing["now"] = True
        start = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=1.0)
        elapsed = time.monotonic() - start
        after = [o async for o in online.generate([5, 6, 7], GREEDY)]
        return results, elapsed, after
    try:
        results, elapsed, after = asyncio.run(main())
    finally:
        online.shutdown()
    assert all(isinstance(r, EngineStepError) and "injected step failure" in str(r) for r in results)
    assert elapsed < 1.0 and engine.block_manager.num_used == 0 and not engine.requests
    assert after[-1].finished and len(after[-1].outputs[0].token_ids) == GREEDY.max_tokens   # the loop goes on


def test_monitor_counts_the_engines_arrivals_and_completions(tiny_llama):
    ticks = itertools.count()
    engine = LLMEngine(EngineConfig(model=tiny_llama, num_kv_blocks=64, block_size=4, max_model_len=200),
                       clock=lambda: next(ticks) * 0.01)
    monitor = ServingMonitor(MonitorConfig(short_window_s=500.0, long_window_s=1000.0, trend_bin_s=1.0))
    first_step_start = []

    def observe(stats):
        first_step_start[:] = first_step_start or [stats.time - stats.duration]
        monitor.observe(stats)
    engine.add_step_hook(observe)
    one_token = SamplingParams(temperature=0, max_tokens=1, ignore_eos=True)
    aborted = 0
    for round_ in range(12):
        requests = [engine.add_request(p, one_token if round_ % 2 else GREEDY) for p in _prompts(3)]
        if round_ % 3 == 0:
            aborted += engine.abort(requests[-1].request_id) is not None
        engine.step()
    while engine.has_unfinished():
        engine.step()
    snapshot = monitor.snapshot()
    covered = snapshot.time - first_step_start[0]
    assert aborted == 4
    assert round(snapshot.arrival_rate.long * covered) == 36          # every request added, one-token ones included
    assert round(snapshot.completion_rate.long * covered) == 36       # every request ended, aborts included
