"""Robust wall-clock timing of a callable: the median of repeats after warm-up calls."""
import logging
import statistics
import time
from collections.abc import Callable

import numpy as np


def median_seconds(run: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def least_squares(rows: list[list[float]], targets: list[float]) -> list[float]:
    """Coefficients c minimizing |rows @ c - targets|, none negative (a negative time per unit has no meaning:
    such a term is dropped and the rest refitted)."""
    a, b = np.asarray(rows, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    active = list(range(a.shape[1]))
    while True:
        coefficients = np.zeros(a.shape[1])
        coefficients[active] = np.linalg.lstsq(a[:, active], b, rcond=None)[0]
        negative = [i for i in active if coefficients[i] < 0]
        if not negative:
            return coefficients.tolist()
        dropped = min(negative, key=lambda i: coefficients[i])
        logging.info("least squares: coefficient %d came out %.3g < 0; set to 0 and the rest refitted", dropped,
                     coefficients[dropped])
        active.remove(dropped)
