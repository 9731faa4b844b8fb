"""Errors raised at the boundaries of vf3d: each names the offending file and the problem."""

from __future__ import annotations

import json
from pathlib import Path


class VF3DInputError(ValueError):
    """Bad user input (a scene file, a trajectory, a catalog entry, a partition key).

    The message always starts with the path (or key) it is about, so a CLI can print it as one line.
    """

    def __init__(self, where: str | Path, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")

    def __reduce__(self):  # crosses process boundaries (a worker pool) whole, not as the formatted message alone
        return type(self), (self.where, self.problem)


def read_json_object(path: Path, what: str) -> dict:
    """Read a JSON file that must hold an object; `what` names the kind of file in the error."""
    if not path.is_file():
        raise VF3DInputError(path, f"{what} file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VF3DInputError(path, f"malformed {what} JSON ({exc})") from None
    if not isinstance(data, dict):
        raise VF3DInputError(path, f"a {what} JSON must be an object, got {type(data).__name__}")
    return data


def input_error_behind(exc: BaseException) -> VF3DInputError | None:
    """The `VF3DInputError` behind wrappers (Dagster's step failures keep it as `user_exception`), if any."""
    seen = exc
    while seen is not None:
        if isinstance(seen, VF3DInputError):
            return seen
        seen = getattr(seen, "user_exception", None) or seen.__cause__
    return None
