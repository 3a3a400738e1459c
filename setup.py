from setuptools import find_packages, setup

setup(
    name="morphserve",
    version="0.1.0",
    description="MorphServe: workload-aware LLM serving with runtime layer swapping and KV-cache resizing",
    packages=find_packages(include=["swiftllm*", "morph*", "experiments*"]),
    python_requires=">=3.10",
)
