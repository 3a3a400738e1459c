"""SwiftLLM-shaped serving engine (the engine MorphServe extends)."""
from swiftllm.engine_config import EngineConfig
from swiftllm.sampling_params import SamplingParams
from swiftllm.server.engine import LLM, LLMEngine
from swiftllm.server.structs import RequestOutput

__all__ = ["EngineConfig", "LLM", "LLMEngine", "RequestOutput", "SamplingParams"]
