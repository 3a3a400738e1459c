"""Kernel families. Each ``<family>.py`` holds the torch op (the CPU path and the reference);
``triton_<family>.py`` holds the CUDA Triton kernel with the same signature."""
