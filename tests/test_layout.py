"""The method package is laid out like the paper's pipeline, and its imports run one way.

common <- models <- stages (preprocess, sag, ggi, benchmark) <- baselines <- resources / vf3d_assets / evaluation.
"""

import ast
from pathlib import Path

import vf3d

PACKAGE = Path(vf3d.__file__).parent
STAGES = ("preprocess", "sag", "ggi", "benchmark")
ALLOWED_BELOW = {"common": set(), "models": {"common"}} | {stage: {"common", "models"} for stage in STAGES}
ALLOWED_BELOW["benchmark"] |= {"preprocess"}  # the benchmark is a list of shots: it reads them as preprocessing does
# the baselines compose the stages' pieces (mesh flows, SAG views) into other ways of making a video
ALLOWED_BELOW["baselines"] = {"common", "models", "preprocess", "sag"}
CROSS_STAGE = {
    # GGI training renders textured shots and runs the preprocessing on them (paper Sec. 3.4, our tiny
    # profile's training data); nothing else crosses between stages.
    ("vf3d/ggi/training_set.py", "vf3d.preprocess.blender"),
    ("vf3d/ggi/training_set.py", "vf3d.preprocess.blender.scene_io"),
    ("vf3d/ggi/training_set.py", "vf3d.preprocess.blender.textured"),
    ("vf3d/ggi/training_set.py", "vf3d.preprocess.guidance"),
    # SAG and GGI read the edge detector's inputs from the guidance folder through its one reader, which owns that
    # folder's layout (hed_input/, hed_input_anchors/) and the official resize on reading.
    ("vf3d/ggi/inbetween.py", "vf3d.preprocess.hed_input"),
    ("vf3d/sag/anchors.py", "vf3d.preprocess.hed_input"),
}


def vf3d_imports(path: Path) -> set[str]:
    """Every `vf3d.*` module a file imports, at any depth (lazy imports inside functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name == "vf3d" or name.startswith("vf3d.")}
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_one_sub_package_per_stage_and_no_loose_modules():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules outside a stage package: {loose}"
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(ALLOWED_BELOW)
    for name in packages:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) >= 3, f"vf3d/{name}/__init__.py needs a docstring naming its entry points"


def test_module_names_do_not_repeat_their_package():
    repeats = [str(p.relative_to(PACKAGE)) for p in modules() if p.stem.startswith(p.parent.name + "_")]
    assert repeats == []


def test_imports_run_one_way():
    wrong = []
    for path in modules():
        rel = path.relative_to(PACKAGE.parent).as_posix()
        layer = path.relative_to(PACKAGE).parts[0]
        if layer.endswith(".py"):
            continue
        for module in vf3d_imports(path):
            parts = module.split(".")
            target = parts[1] if len(parts) > 1 else ""
            if target in (layer, *ALLOWED_BELOW[layer]) or (rel, module) in CROSS_STAGE:
                continue
            wrong.append(f"{rel} imports {module}")
    assert wrong == []


def test_no_dagster_in_the_method_package():
    users = [str(p.relative_to(PACKAGE)) for p in modules()
             if any(isinstance(n, (ast.Import, ast.ImportFrom)) and "dagster" in ast.unparse(n)
                    for n in ast.walk(ast.parse(p.read_text())))]
    assert users == []


def test_model_store_imports_no_training_code():
    store = vf3d_imports(PACKAGE / "models" / "store.py")
    assert all(m.startswith(("vf3d.models", "vf3d.common")) for m in store), store
