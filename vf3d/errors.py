"""Errors raised at the boundaries of vf3d: each names the offending file and the problem."""

from __future__ import annotations

from pathlib import Path


class VF3DInputError(ValueError):
    """Bad user input (a scene file, a trajectory, a catalog entry, a partition key).

    The message always starts with the path (or key) it is about, so a CLI can print it as one line.
    """

    def __init__(self, where: str | Path, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")
