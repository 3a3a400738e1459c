"""The simulator: the real engine, scheduler, block manager and morph loop over a worker that predicts each step's
time (``cost_model``) on a machine (``hardware``) and advances a virtual clock (``clock``). See docs/simulator.md."""
