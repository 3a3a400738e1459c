"""How many compiled variants each of the project's Triton kernels holds (to check that nothing compiles after the
warm-up)."""
import importlib
import pkgutil

import swiftllm.quant
import swiftllm.worker.kernels


def triton_kernels() -> dict[str, object]:
    """Every ``@triton.jit`` function of ``swiftllm/worker/kernels/triton_*.py`` and ``swiftllm/quant/triton_*.py``."""
    from triton.runtime.jit import JITFunction
    kernels = {}
    for package in (swiftllm.worker.kernels, swiftllm.quant):
        for module_info in pkgutil.iter_modules(package.__path__):
            if module_info.name.startswith("triton_"):
                module = importlib.import_module(f"{package.__name__}.{module_info.name}")
                kernels.update({f"{module_info.name}.{name}": value for name, value in vars(module).items()
                                if isinstance(value, JITFunction)})
    return kernels


def compiled_variants() -> dict[str, int]:
    """kernel name -> compiled variants, over all devices (the first entry of each device cache is its kernels)."""
    return {name: sum(len(entry[0]) for entry in kernel.device_caches.values())
            for name, kernel in triton_kernels().items()}
