"""The engine on a GPU: the same greedy tokens as on the CPU in float32, float16 / bfloat16 logits close to
transformers', dtype=auto from the checkpoint, a budget from the memory left free, nothing compiled after the
warm-up."""
import pytest
import torch

from morph.runtime import MorphConfig, attach_morph
from swiftllm import LLM, EngineConfig, LLMEngine, SamplingParams
from swiftllm.worker.model import dense_logits
from swiftllm.worker.weight_loader import load_model
from tests.gpu.accuracy import relative_error
from tests.gpu.triton_cache import compiled_variants

GREEDY = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)


def _prompts(n: int, vocab: int) -> list[list[int]]:
    return [[(37 * i + 11 * j) % (vocab - 3) + 3 for j in range(4 + 9 * i)] for i in range(n)]


def _tokens(llm: LLM, prompts) -> list[list[int]]:
    return [o.outputs[0].token_ids for o in llm.generate(prompts, GREEDY)]


@pytest.mark.parametrize("model", ["tiny_llama", "random:tiny-llama-gqa", "random:tiny-llama"])
def test_gpu_and_cpu_engines_give_the_same_greedy_tokens_in_float32(model, request):
    path = request.getfixturevalue(model) if model == "tiny_llama" else model
    config = dict(model=path, dtype="float32", num_kv_blocks=128, block_size=16, memory_budget_bytes=1 << 30)
    cpu = LLM(EngineConfig(device="cpu", **config))
    gpu = LLM(EngineConfig(device="cuda", **config))
    prompts = _prompts(6, cpu.engine.model_config.vocab_size)
    assert _tokens(gpu, prompts) == _tokens(cpu, prompts)


def test_an_int8_lm_head_serves_on_the_gpu_as_on_the_cpu():
    config = dict(model="random:tiny-llama-gqa", dtype="float32", lm_head="int8", max_num_batched_tokens=32)
    cpu = LLM(EngineConfig(device="cpu", memory_budget_bytes=1 << 30, **config))
    gpu = LLM(EngineConfig(device="cuda", **config))                 # the budget measured by a profiling forward
    prompts = _prompts(6, cpu.engine.model_config.vocab_size)         # the longest prompts run in chunks
    assert _tokens(gpu, prompts) == _tokens(cpu, prompts)


@pytest.mark.parametrize("dtype,bound", [(torch.float16, 5e-3), (torch.bfloat16, 3e-2)])
def test_half_precision_logits_match_transformers(tiny_llama, cuda, dtype, bound):
    from transformers import AutoModelForCausalLM
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=dtype).to(cuda).eval()
    cfg, weights = load_model(tiny_llama, dtype, "cuda")
    ids = torch.tensor(_prompts(4, cfg.vocab_size)[3], device=cuda)
    with torch.no_grad():
        expected = reference(ids[None]).logits[0].float()                        # [T, vocab]
    assert relative_error(dense_logits(weights, cfg, ids), expected) <= bound
    served = LLM(EngineConfig(model=tiny_llama, device="cuda", dtype=str(dtype).removeprefix("torch."),
                              num_kv_blocks=64, memory_budget_bytes=1 << 30))
    served_tokens = served.generate([ids.tolist()], SamplingParams(temperature=0, max_tokens=8,
                                                                   ignore_eos=True))[0].outputs[0].token_ids
    for position, logits in enumerate(_teacher_forced_logits(reference, ids, served_tokens)):
        margin = bound * logits.abs().max()        # a near-tie may round either way in a half dtype
        assert logits[served_tokens[position]] >= logits.max() - margin, f"token {position} is not a greedy choice"


@torch.no_grad()
def _teacher_forced_logits(model, ids: torch.Tensor, continuation: list[int]) -> torch.Tensor:
    """transformers' next-token logits before each token of ``continuation``: [len(continuation), vocab]."""
    sequence = torch.tensor([ids.tolist() + continuation], device=ids.device)
    return model(sequence).logits[0, len(ids) - 1:-1].float()


def test_dtype_auto_takes_the_checkpoints_half_dtype(tiny_llama):
    saved_float32 = LLMEngine(EngineConfig(model=tiny_llama, device="cuda", num_kv_blocks=16, memory_budget_bytes=1 << 30))
    saved_bfloat16 = LLMEngine(EngineConfig(model="random:tiny-llama-gqa", device="cuda", num_kv_blocks=16,
                                            memory_budget_bytes=1 << 30))
    assert saved_float32.model_weights.embed_tokens.dtype == torch.float16
    assert saved_bfloat16.model_weights.embed_tokens.dtype == torch.bfloat16


def test_the_default_budget_is_the_memory_left_free_after_a_profiling_forward(cuda):
    engine = LLMEngine(EngineConfig(model="random:tiny-llama", device="cuda", gpu_memory_fraction=0.2,
                                    max_num_batched_tokens=2048))
    plan = engine.memory
    free, total = torch.cuda.mem_get_info(cuda)
    reserve = 0.8 * total
    assert plan.workspace_bytes > 2048 * engine.model_config.hidden_size * 2          # measured: at least one activation
    assert plan.budget_bytes <= total - reserve and plan.kv_bytes > 0
    assert free >= reserve - (256 << 20), "the KV pool took more than the budget left"


def test_nothing_compiles_after_the_warm_ups(cuda):
    engine = LLMEngine(EngineConfig(model="random:tiny-llama-gqa", device="cuda", num_kv_blocks=512, block_size=16,
                                    max_num_seqs=64, max_num_batched_tokens=512, memory_budget_bytes=1 << 30))
    runtime = attach_morph(engine, MorphConfig(policy=None, int4_method="rtn", variant_cache_dir=None))
    compiled = compiled_variants()
    vocab, layers = engine.model_config.vocab_size, engine.model_config.num_layers
    plans = [["int4"] * layers, ["int8", "int4"] * (layers // 2), ["fp"] * layers]
    for round_, plan in enumerate(plans):
        for i in range(1 + 20 * round_):
            engine.add_request([(i * 7 + j) % (vocab - 3) + 3 for j in range(3 + 37 * i % 400)],
                               SamplingParams(temperature=0, max_tokens=5 + i % 40, ignore_eos=True))
        runtime.apply(plan)
        while engine.has_unfinished():
            engine.step()
    runtime.close()
    assert compiled_variants() == compiled
