"""The morph runtime on the embedded SmolLM2-135M: a request spans a swap of four layers to INT4 and back,
finishes, and leaves the model bit-identical to the loaded one."""
import torch

from morph.plan import Precision
from morph.runtime import MorphConfig, attach_morph
from swiftllm import EngineConfig, LLMEngine, SamplingParams

FP, INT4 = Precision.FP, Precision.INT4
SWAPPED = 4


def test_embedded_request_spans_an_int4_swap_and_the_model_returns_bit_identical():
    engine = LLMEngine(EngineConfig(model="embedded", memory_budget_bytes=1 << 30, max_model_len=512))
    prompt = engine.tokenizer.encode("The history of the printing press begins in")
    params = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    reference = engine.add_request(prompt, params)
    while engine.has_unfinished():
        engine.step()
    originals = [{k: t.clone() for k, t in layer.tensors().items()} for layer in engine.model_weights.layers]

    runtime = attach_morph(engine, MorphConfig(policy=None, int4_method="rtn", precisions=("fp", "int4"),
                                               variant_cache_dir=None))
    fp_capacity = engine.block_manager.capacity
    req = engine.add_request(prompt, params)
    for _ in range(8):
        engine.step()
    events = runtime.apply([INT4] * SWAPPED + [FP] * (engine.model_config.num_layers - SWAPPED))
    assert [e.status for e in events] == ["done"] * SWAPPED
    freed = runtime.swapper.freed_bytes()
    assert freed > SWAPPED * 12e6 and engine.block_manager.capacity == fp_capacity + freed // engine.memory.block_bytes
    for _ in range(8):
        engine.step()
    runtime.apply([FP] * engine.model_config.num_layers)
    assert engine.block_manager.capacity == fp_capacity
    for layer, expected in zip(engine.model_weights.layers, originals):
        assert all(torch.equal(t, expected[k]) for k, t in layer.tensors().items())
    while engine.has_unfinished():
        engine.step()

    assert req.output_token_ids[:8] == reference.output_token_ids[:8]
    assert len(req.output_token_ids) == 24 and req.finish_reason == "length"
    assert [r.num_quantized_layers for r in req.token_records] == [0] * 8 + [SWAPPED] * 8 + [0] * 8
    assert engine.tokenizer.decode(req.output_token_ids).strip()
    runtime.close()
