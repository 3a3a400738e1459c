"""Timing this project's CPU engine, op by op, for the simulator's ``cpu`` hardware (``experiments/calibrate_cpu.py``)."""
