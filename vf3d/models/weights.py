"""Finding `full`-profile weight files on disk, and the one error that says what is missing and where.

Nothing here downloads: weights come from a local folder or an already-populated HF cache. When some are
missing, the user gets a single message naming every missing component and every path looked at, so one
read of it is enough to put the files in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


class MissingWeightsError(ValueError):
    """One or more model components have no weights on disk.

    `missing` holds `(component, looked_at)` pairs: a human name of the component (e.g. "HED annotator
    (ControlNetHED.pth)") and the paths searched for it, in search order (empty: no location was given).
    """

    def __init__(self, missing: Sequence[tuple[str, Sequence[str]]]):
        self.missing = [(component, [str(p) for p in looked_at]) for component, looked_at in missing]
        lines = ["missing model weights (nothing is downloaded; put the files in place or fix the paths):"]
        for component, looked_at in self.missing:
            where = ", ".join(looked_at) if looked_at else "no location given"
            lines.append(f"  - {component}: looked at {where}")
        super().__init__("\n".join(lines))


WEIGHT_SUFFIXES = (".safetensors", ".bin")


def has_weights(folder: Path) -> bool:
    """Whether a model folder holds at least one weights file (diffusers/transformers layouts)."""
    return folder.is_dir() and any(p.suffix in WEIGHT_SUFFIXES for p in folder.glob("*"))


def first_existing(component: str, candidates: Iterable[Path]) -> Path:
    """The first candidate file that exists; else `MissingWeightsError` listing every candidate."""
    looked_at = []
    for path in candidates:
        if path.is_file():
            return path
        looked_at.append(str(path))
    raise MissingWeightsError([(component, looked_at)])


def hf_cache_snapshots(folder: Path, repo_id: str) -> list[Path]:
    """Snapshot folders of `repo_id` in an HF hub cache rooted at `folder` (`models--org--name/snapshots/*`)."""
    snapshots = folder / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return sorted(snapshots.iterdir()) if snapshots.is_dir() else []


def find_annotator_file(weights: Path | None, filename: str, component: str,
                        repo_id: str = "lllyasviel/Annotators") -> Path:
    """A controlnet_aux annotator file: `weights` itself if it is a file; in a folder, `filename` directly,
    under `<repo_id>/`, or in an HF cache snapshot. Raises `MissingWeightsError` naming every path looked at."""
    if weights is None:
        raise MissingWeightsError([(component, [])])
    weights = Path(weights)
    if not weights.is_dir():
        return first_existing(component, [weights])
    candidates = [weights / filename, weights / repo_id / filename]
    candidates += [snapshot / filename for snapshot in hf_cache_snapshots(weights, repo_id)]
    return first_existing(component, candidates)


def read_safetensors(path: str | Path) -> dict:
    """Every tensor of a safetensors file; a missing or unreadable file is one `ValueError` naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
