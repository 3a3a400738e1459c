"""Open-loop trace replay against the online engine."""
