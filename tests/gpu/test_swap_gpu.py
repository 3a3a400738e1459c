"""Morphing on a GPU: the copy stream waits for the compute stream (defect 2, with ``torch.cuda._sleep``), swaps
FP -> INT4 -> FP leave the slots bit-identical to the pinned masters, attach holds at most one layer's variants
beyond the weights (defect 1), and swaps during 32-request decoding keep provenance right and produce no NaN."""
import torch

from morph.layer_store import checksums
from morph.plan import MorphPlan, Precision
from morph.runtime import MorphConfig, attach_morph
from morph.swap_copy import CudaSwapCopier
from swiftllm import EngineConfig, LLMEngine, SamplingParams
from swiftllm.quant.variants import quantize_layer_rtn
from swiftllm.worker.weight_loader import load_model
from swiftllm.worker.weight_slots import WeightSlots

RTN = MorphConfig(policy=None, int4_method="rtn", variant_cache_dir=None)
SLEEP_CYCLES = 2_000_000_000          # about a second at the H200's ~2 GHz


def _engine(model: str, **overrides) -> LLMEngine:
    return LLMEngine(EngineConfig(**(dict(model=model, device="cuda", num_kv_blocks=256, block_size=16,
                                          memory_budget_bytes=8 << 30) | overrides)))


def _slot_bytes(slots: WeightSlots, i: int, layer) -> dict[str, torch.Tensor]:
    return {name: t.cpu() for name, t in slots.views(i, layer).tensors().items()}


def test_the_copy_waits_for_work_already_queued_on_the_compute_stream(cuda):
    _, weights = load_model("random:tiny-llama", torch.float16, "cuda")
    fp = weights.layers[0]
    variant = quantize_layer_rtn(fp)
    host = variant.with_tensors({name: t.cpu().pin_memory() for name, t in variant.tensors().items()})
    slots = WeightSlots([fp], cuda)
    slots.commit(0, slots.slot_bytes[0])
    copier = CudaSwapCopier(slots)
    marker = slots.arena.view(slots.offsets[0], (slots.slot_bytes[0] // 4,), torch.int32)
    torch.cuda._sleep(SLEEP_CYCLES)                     # the compute stream is busy ...
    marker.fill_(7)                                     # ... then writes the slot (a step still reading / writing it)
    ticket = copier.copy(0, host, checksums(host))      # the copy must land after that write
    ticket.wait()
    torch.cuda.synchronize(cuda)
    copier.close()
    assert all(torch.equal(t, host.tensors()[name]) for name, t in _slot_bytes(slots, 0, host).items())


def test_fp_int4_fp_on_the_copy_stream_is_bit_identical_to_the_pinned_masters():
    engine = _engine("random:tiny-llama", dtype="float16")
    runtime = attach_morph(engine, RTN)
    store, slots = runtime.swapper.store, runtime.swapper.slots
    layers = engine.model_config.num_layers
    assert all(t.is_pinned() for t in store.layer(0, Precision.FP).tensors().values())
    runtime.apply(["int4"] * layers)
    for i in range(layers):
        int4 = store.layer(i, Precision.INT4)
        assert all(torch.equal(t, int4.tensors()[n]) for n, t in _slot_bytes(slots, i, int4).items())
    runtime.apply(["fp"] * layers)
    for i in range(layers):
        master = store.layer(i, Precision.FP)
        assert all(torch.equal(t, master.tensors()[n]) for n, t in _slot_bytes(slots, i, master).items())
    runtime.close()


def test_attach_holds_at_most_one_layers_variants_beyond_the_weights(cuda):
    engine = _engine("random:llama-2-7b:layers=8", dtype="float16", num_kv_blocks=64, max_model_len=1024,
                     max_num_batched_tokens=256, memory_budget_bytes=16 << 30)
    fp_layer = engine.model_weights.layers[0].nbytes()
    torch.cuda.synchronize(cuda)
    before = torch.cuda.memory_allocated(cuda)
    torch.cuda.reset_peak_memory_stats(cuda)
    runtime = attach_morph(engine, RTN)
    torch.cuda.synchronize(cuda)
    extra = torch.cuda.max_memory_allocated(cuda) - before
    # One layer's variants (0.75 FP layer) and the temporaries of quantizing its largest linear (measured on the CPU:
    # about 2 FP layers for RTN INT4, more with AWQ packing): under 5 FP layers. The old store kept all 8 layers'
    # variants on the device on top of that (6 FP layers more).
    assert extra <= 5 * fp_layer, f"attach took {extra / 1e6:.0f} MB beyond the weights (an FP layer: {fp_layer / 1e6:.0f} MB)"
    assert torch.cuda.memory_allocated(cuda) <= before - 7 * fp_layer          # the loaded layers went to the slots
    runtime.close()


def test_swaps_during_32_request_decoding_keep_provenance_and_produce_no_nan():
    engine = _engine("random:tiny-llama-gqa", dtype="bfloat16", max_num_seqs=32)
    runtime = attach_morph(engine, RTN)
    non_finite = []
    forward = engine.worker.model.forward

    def checked_forward(*args):
        logits = forward(*args)
        non_finite.append(int((~torch.isfinite(logits)).sum()))
        return logits
    engine.worker.model.forward = checked_forward
    vocab, layers = engine.model_config.vocab_size, engine.model_config.num_layers
    requests = [engine.add_request([(5 * i + j) % (vocab - 3) + 3 for j in range(8 + i)],
                                   SamplingParams(temperature=0, max_tokens=48, ignore_eos=True)) for i in range(32)]
    plans = [["int4"] * layers, ["fp", "int8"] * (layers // 2), ["int4", "fp"] * (layers // 2), ["fp"] * layers]
    steps = 0
    while engine.has_unfinished():
        engine.step()
        steps += 1
        if steps % 6 == 0 and not runtime.actuator.busy:
            runtime.actuator.apply(MorphPlan(tuple(plans[(steps // 6) % len(plans)]), "test"), engine.clock())
    runtime.close()
    assert sum(non_finite) == 0 and len(non_finite) >= 48
    versions = set()
    for request in requests:
        assert len(request.output_token_ids) == 48
        for record in request.token_records:
            precisions = runtime.precision_map(record.precision_version)
            assert record.num_quantized_layers == sum(p != Precision.FP for p in precisions)
            versions.add(record.precision_version)
    assert len(versions) >= 4, "the swaps were meant to land during the decode"

