"""Our tokenizer (built from GGUF metadata) against transformers' own GGUF tokenizer, and the chat template."""
import os

import pytest

from swiftllm.server.tokenization import LlamaTokenizer
from swiftllm.worker.weight_loader import embedded_model_path

TEXTS = [
    "Hello world! 12345 The quick brown fox.", "  leading spaces\n\nnewlines\ttabs 3.14159",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n", "Ünïcödé 日本語 🙂 emojis", "def f(x):\n    return x**2  # comment",
    "WikiText @-@ style <unk> tokens , and spaces .",
]


@pytest.fixture(scope="module")
def tokenizers():
    from transformers import AutoTokenizer
    path = embedded_model_path()
    return LlamaTokenizer.load("embedded"), AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))


@pytest.mark.parametrize("text", TEXTS)
def test_encode_matches_transformers_and_round_trips(tokenizers, text):
    ours, reference = tokenizers
    ids = ours.encode(text)
    assert ids == reference.encode(text, add_special_tokens=False)
    assert ours.decode(ids, skip_special_tokens=False) == text


def test_chat_template_matches_transformers(tokenizers):
    ours, reference = tokenizers
    messages = [{"role": "user", "content": "Name a fruit."}]
    assert ours.apply_chat_template(messages) == reference.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_hf_folder_tokenizer(tiny_llama):
    tok = LlamaTokenizer.load(tiny_llama)
    assert tok.encode("w5 w7 w9") == [5, 7, 9] and tok.eos_token_id == 2 and tok.decode([5, 7]) == "w5 w7"
    with pytest.raises(ValueError, match="no chat template"):
        tok.apply_chat_template([{"role": "user", "content": "x"}])
