"""A tokenizer for simulated models that have no tokenizer files: token ids only (replays send token ids).

Text is refused with a clear error; decoding spells ids as ``<id>`` so stop strings and detokenization still work.
"""


class SyntheticTokenizer:
    chat_template = None

    def __init__(self, vocab_size: int, bos_token_id: int | None, eos_token_id: int | None):
        self.vocab_size = vocab_size
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id

    def encode(self, text: str) -> list[int]:
        raise ValueError("this simulated model has no tokenizer: send prompts as token ids")

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(f"<{i}>" for i in ids)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        raise ValueError("this simulated model has no chat template")
