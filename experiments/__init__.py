"""Experiment library: workloads (traces, synthetic arrivals, prompts), metrics and paper figures.

The replay driver and the Hydra entry points are thin layers on top of these packages.
"""
