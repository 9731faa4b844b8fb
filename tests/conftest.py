import os
import sys
from pathlib import Path

import pytest

# Stable timings on 2 shared cores (DESIGN.md); set before torch or bpy spin up thread pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def shots(tmp_path_factory):
    """A folder for synthetic .blend shots shared by the whole session."""
    return tmp_path_factory.mktemp("shots")
