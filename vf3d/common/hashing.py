"""Content hashes: the data versions of outputs and the fingerprints of inputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

from vf3d.common.atomic import OWNER_MARKER, TMP_PREFIX


def content_hash(path: Path) -> str:
    """SHA-256 over a file or over a folder's files (relative names + bytes, sorted; temporaries
    and the ownership marker skipped, so a data version is the output's content alone)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and p.name != OWNER_MARKER
        and not any(part.startswith(TMP_PREFIX) for part in p.relative_to(path).parts))
    for file in files:
        digest.update(str(file.relative_to(path.parent if path.is_file() else path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
