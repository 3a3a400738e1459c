"""Hardware configs (``configs/hardware/*.yaml``) to ``HardwareSpec``s.

A config that names an ``op_table`` (the ``cpu`` hardware) takes its machine speeds from that table, which
``experiments/calibrate_cpu.py`` measured on this machine; tables ship in ``swiftllm/sim/op_tables/``.
"""
import dataclasses
import os

from swiftllm.sim.cpu_ops import load_cpu_op_table
from swiftllm.sim.hardware import HardwareSpec

OP_TABLE_DIR = os.path.join(os.path.dirname(__file__), "op_tables")


def op_table_path(name: str) -> str:
    """A table file: a path ending in .json, or the name of one shipped in ``swiftllm/sim/op_tables``."""
    return name if name.endswith(".json") else os.path.join(OP_TABLE_DIR, f"{name}.json")


def load_hardware(values: dict) -> HardwareSpec:
    spec = HardwareSpec.from_dict(values)
    if spec.op_table is None:
        return spec
    path = op_table_path(spec.op_table)
    machine = load_cpu_op_table(path).machine
    measured = {"memory_bandwidth_gbs": machine["read_gbs"], "host_link_gbs": machine["copy_gbs"],
                "checksum_gbs": machine["checksum_gbs"]}
    sources = {**spec.sources, **{name: f"measured by experiments/calibrate_cpu.py ({path})" for name in measured}}
    return dataclasses.replace(spec, op_table=path, sources=sources, **measured)
