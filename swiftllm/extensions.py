"""Lazy import of the project's C++ extensions (built by ``setup.py``), with the build command on failure."""
import importlib
from types import ModuleType

BUILD_HINT = "build it with `pip install --no-build-isolation -e .` in the repository root"


def load_extension(name: str) -> ModuleType:
    """``swiftllm.<name>``, e.g. ``_arena_cpu``; ImportError naming the build command when it is not built."""
    try:
        return importlib.import_module(f"swiftllm.{name}")
    except ImportError as missing:
        raise ImportError(f"the MorphServe C++ extension swiftllm.{name} is not built: {BUILD_HINT}") from missing
