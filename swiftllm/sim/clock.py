"""Virtual time: the engine's clock in a simulation. Nothing sleeps; whoever knows how long something takes moves it."""
import math


class VirtualClock:
    """Seconds since the simulation began; ``clock()`` reads it (the engine's ``clock`` callable)."""

    def __init__(self, start: float = 0.0):
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"time can only move forward by a finite amount, got {seconds}")
        self._now += seconds

    def advance_to(self, time: float) -> None:
        """Move to ``time`` if it is later than now (a time already past changes nothing)."""
        if not math.isfinite(time):
            raise ValueError(f"cannot move the clock to {time}")
        self._now = max(self._now, float(time))
