"""Tokenizer (HF ``tokenizers`` runtime) built from GGUF metadata or an HF folder, plus the chat template; random
models (``random:<preset>``) get a byte-level tokenizer sized to the preset's vocabulary."""
import json
import os

from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from swiftllm.model_config import LlamaModelConfig
from swiftllm.worker.random_weights import RandomModelSpec, is_random_model
from swiftllm.worker.weight_loader import gguf_fields, is_gguf, resolve_model_path


class LlamaTokenizer:
    def __init__(self, tokenizer: Tokenizer, chat_template: str | None, bos_token_id: int | None,
                 eos_token_id: int | None, add_bos: bool):
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.add_bos = add_bos

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return [self.bos_token_id] + ids if self.add_bos and self.bos_token_id is not None else ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The prompt the model's chat template makes of ``messages``. The template comes from the model file, so it
        is rendered in jinja2's immutable sandbox: it cannot reach Python internals or change its inputs."""
        if self.chat_template is None:
            raise ValueError("this model has no chat template")
        try:
            return _chat_template(self.chat_template).render(messages=messages, add_generation_prompt=add_generation_prompt)
        except SecurityError as refused:
            raise ValueError(f"the model's chat template tried an unsafe operation and was stopped: {refused}") from None
        except TemplateError as error:
            raise ValueError(f"the model's chat template failed: {error}") from None

    @staticmethod
    def load(model_path: str) -> "LlamaTokenizer":
        path = resolve_model_path(model_path)
        if is_random_model(path):
            return byte_level_tokenizer(RandomModelSpec.parse(path).config())
        return _from_gguf(path) if is_gguf(path) else _from_hf_folder(path)


def _raise_exception(message: str):
    """What chat templates call to reject a conversation (the name transformers gives it)."""
    raise TemplateError(message)


def _chat_template(source: str):
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = _raise_exception
    return environment.from_string(source)


def byte_level_tokenizer(cfg: LlamaModelConfig) -> LlamaTokenizer:
    """Every text encodes to its UTF-8 bytes (one token each, no merges); the vocabulary is filled to
    ``cfg.vocab_size`` with placeholder tokens ``<|id|>`` (what a random model mostly generates), and BOS / EOS sit
    at the config's ids."""
    specials = {cfg.bos_token_id: "<s>", **{eos: "</s>" for eos in cfg.eos_token_ids}}
    byte_symbols = iter(_byte_symbols())
    vocab = {}
    for token_id in range(cfg.vocab_size):
        name = specials.get(token_id) or next(byte_symbols, None) or f"<|{token_id}|>"
        vocab[name] = token_id
    if len(vocab) != cfg.vocab_size:
        raise ValueError(f"a byte-level vocabulary needs the 256 bytes and distinct specials, vocab_size={cfg.vocab_size}")
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(sorted(set(specials.values())))
    eos = cfg.eos_token_ids[0] if cfg.eos_token_ids else None
    return LlamaTokenizer(tokenizer, None, cfg.bos_token_id, eos, cfg.bos_token_id is not None)


def _byte_symbols() -> list[str]:
    """The 256 characters byte-level BPE writes bytes as (GPT-2's table: printable bytes stand for themselves)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1), *range(ord("\xae"), 256)]
    shifted = [b for b in range(256) if b not in printable]
    table = {b: chr(b) for b in printable} | {b: chr(256 + n) for n, b in enumerate(shifted)}
    return [table[b] for b in range(256)]


def _from_gguf(path: str) -> LlamaTokenizer:
    import gguf
    fields = gguf_fields(gguf.GGUFReader(path))
    kind = fields.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ValueError(f"{path}: tokenizer model {kind!r} is not supported from GGUF (only byte-level BPE 'gpt2')")
    tokens = fields["tokenizer.ggml.tokens"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    control = 3  # GGUF token_type CONTROL
    tokenizer.add_special_tokens([tok for tok, kind in zip(tokens, fields["tokenizer.ggml.token_type"]) if kind == control])
    return LlamaTokenizer(tokenizer, fields.get("tokenizer.chat_template"), fields.get("tokenizer.ggml.bos_token_id"),
                          fields.get("tokenizer.ggml.eos_token_id"), bool(fields.get("tokenizer.ggml.add_bos_token", False)))


def _from_hf_folder(path: str) -> LlamaTokenizer:
    file = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(file):
        raise FileNotFoundError(f"{path!r} has no tokenizer.json")
    tokenizer = Tokenizer.from_file(file)
    config = {}
    config_file = os.path.join(path, "tokenizer_config.json")
    if os.path.isfile(config_file):
        with open(config_file) as f:
            config = json.load(f)
    bos, eos = (_special_id(tokenizer, config.get(k)) for k in ("bos_token", "eos_token"))
    return LlamaTokenizer(tokenizer, config.get("chat_template"), bos, eos, bool(config.get("add_bos_token", bos is not None)))


def _special_id(tokenizer: Tokenizer, token) -> int | None:
    if isinstance(token, dict):
        token = token.get("content")
    return None if token is None else tokenizer.token_to_id(token)
