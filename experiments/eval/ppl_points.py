"""Measured perplexities by set of INT4 layers, kept in a JSON file between runs (resume and extend Table 1).

A point depends on the model, the INT4 variant and the test windows. The file records them as its
``identity`` and is reused only when they all match: a stale file is an error, never a silent mix.
The file is read again before each miss and each write, so runs sharing it (e.g. different orders
measured in parallel) see and keep each other's points.
"""
import json
import os
from collections.abc import Iterable
from pathlib import Path


class PerplexityPoints:
    """``get`` / ``put`` the perplexity of the model with the layers ``int4_layers`` in INT4."""

    def __init__(self, path: str | Path | None, identity: dict):
        self.path = None if path is None else Path(path)
        self.identity = identity
        self.points: dict[frozenset[int], float] = {}
        self._refresh()

    def get(self, int4_layers: Iterable[int]) -> float | None:
        key = frozenset(int4_layers)
        if key not in self.points:
            self._refresh()
        return self.points.get(key)

    def put(self, int4_layers: Iterable[int], ppl: float) -> None:
        self._refresh()
        self.points[frozenset(int4_layers)] = ppl
        if self.path is not None:
            self._save()

    def _refresh(self) -> None:
        """Add the file's points to the ones in memory."""
        if self.path is None or not self.path.is_file():
            return
        content = json.loads(self.path.read_text())
        if content.get("identity") != self.identity:
            raise ValueError(f"{self.path} holds perplexities of another setup ({content.get('identity')}, now "
                             f"{self.identity}): delete it or set another points_file")
        self.points.update({frozenset(point["int4_layers"]): point["ppl"] for point in content["points"]})

    def _save(self) -> None:
        points = [{"int4_layers": sorted(layers), "ppl": ppl} for layers, ppl in self.points.items()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"identity": self.identity, "points": points}, indent=1) + "\n")
        os.replace(tmp, self.path)
