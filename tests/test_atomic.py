"""Outputs: only vf3d's own folders are ever replaced, a kill at any instant loses nothing, concurrent writers
of one output both end cleanly."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vf3d.common import atomic
from vf3d.common.atomic import OWNER_MARKER, TMP_PREFIX, atomic_dir, check_replaceable
from vf3d.common.errors import VF3DInputError


def write_output(final: Path, text: str) -> None:
    with atomic_dir(final) as tmp:
        (tmp / "data.txt").write_text(text)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "part.txt").write_text(text * 2)


def output_text(final: Path) -> str:
    """The output's content, asserting it is complete (both files agree)."""
    text = (final / "data.txt").read_text()
    assert (final / "sub" / "part.txt").read_text() == text * 2
    assert (final / OWNER_MARKER).is_file()
    return text


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TMP_PREFIX))


def user_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- ownership -----------------------------------------------------------------------------------------------

def test_user_folders_files_inputs_and_parents_are_refused_and_left_untouched(tmp_path):
    shot = tmp_path / "project" / "shot"
    shot.mkdir(parents=True)
    (shot / "scene.blend").write_bytes(b"BLENDER-v500 user scene")
    (shot / "notes.txt").write_text("client notes")
    (shot / "textures").mkdir()
    (shot / "textures" / "wood.png").write_bytes(b"png")
    before = user_tree(tmp_path)
    blend = shot / "scene.blend"
    cases = [
        (shot, (blend,), "an input of this run"),                  # the input's folder
        (tmp_path / "project", (blend,), "an input of this run"),  # a parent of it
        (blend, (blend,), "an input of this run"),                 # the input itself
        (shot, (), "was not written by vf3d"),                     # any folder of the user's
        (tmp_path / "project", (), "was not written by vf3d"),
        (shot / "notes.txt", (), "is not a folder vf3d wrote"),    # any plain file
    ]
    for target, protect, message in cases:
        with pytest.raises(VF3DInputError, match=message) as info:
            with atomic_dir(target, protect=protect):
                pytest.fail("the block must not run")
        assert str(info.value).startswith(str(target)) and "\n" not in str(info.value)
    assert user_tree(tmp_path) == before
    assert leftovers(shot) == [] and leftovers(tmp_path / "project") == []


def test_an_earlier_output_and_an_empty_folder_are_replaced(tmp_path):
    (tmp_path / "empty").mkdir()
    write_output(tmp_path / "empty", "a")
    assert output_text(tmp_path / "empty") == "a"
    write_output(tmp_path / "empty", "b")
    assert output_text(tmp_path / "empty") == "b"
    assert leftovers(tmp_path) == []


def test_an_output_holding_a_file_vf3d_did_not_write_is_refused(tmp_path):
    write_output(tmp_path / "out", "a")
    (tmp_path / "out" / "my_edit.psd").write_bytes(b"user work")
    with pytest.raises(VF3DInputError, match="my_edit.psd"):
        write_output(tmp_path / "out", "b")
    assert (tmp_path / "out" / "my_edit.psd").read_bytes() == b"user work" and output_text(tmp_path / "out") == "a"


def test_symlinks_root_and_unwritable_parents_are_one_line_errors(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(VF3DInputError, match="not a folder vf3d wrote"):
        check_replaceable(tmp_path / "link")
    with pytest.raises(VF3DInputError, match="file system root"):
        check_replaceable("/")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(VF3DInputError, match="was not written by vf3d"):
        check_replaceable(".")  # the working folder holds `real` and `link`
    # A read-only parent (root ignores permission bits, so the kernel's answer is stood in for).
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    with pytest.raises(VF3DInputError, match="permission denied"):
        check_replaceable(tmp_path / "new")


def test_a_failed_block_keeps_the_previous_output(tmp_path):
    write_output(tmp_path / "out", "old")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "data.txt").write_text("half")
            raise RuntimeError("model crashed")
    assert output_text(tmp_path / "out") == "old" and leftovers(tmp_path) == []


# --- a kill at any instant ---------------------------------------------------------------------------------

KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from vf3d.common import atomic

    final, point, exchange = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "exchange"
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    real_exchange, real_replace, real_remove = atomic._exchange, os.replace, atomic._remove
    if not exchange:
        atomic._exchange = lambda a, b: False  # file systems without RENAME_EXCHANGE: two renames
    if point == "before-swap":
        atomic._swap_in = lambda tmp, final: die()
    if point == "after-exchange":
        atomic._exchange = lambda a, b: (real_exchange(a, b), die())
    if point == "between-renames":
        calls = []
        def replace(a, b):
            real_replace(a, b)
            calls.append(b)
            if str(b).endswith(".old"):
                die()
        atomic.os.replace = replace
    if point == "before-cleanup":
        atomic._remove = lambda path: die()
    with atomic.atomic_dir(final) as tmp:
        (tmp / "data.txt").write_text("new")
        if point == "while-writing":
            die()
        (tmp / "sub").mkdir()
        (tmp / "sub" / "part.txt").write_text("newnew")
""")

KILL_POINTS = [("while-writing", "exchange"), ("before-swap", "exchange"), ("after-exchange", "exchange"),
               ("before-cleanup", "exchange"), ("before-swap", "renames"), ("between-renames", "renames"),
               ("before-cleanup", "renames")]


@pytest.mark.parametrize("point,mode", KILL_POINTS)
def test_sigkill_at_any_point_of_a_swap_loses_nothing(tmp_path, point, mode):
    final = tmp_path / "out"
    write_output(final, "old")
    killed = subprocess.run([sys.executable, "-c", KILLER, str(final), point, mode], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    if final.exists():
        assert output_text(final) in ("old", "new")
    else:  # cut between the two renames: the old output is complete under its .old name
        assert point == "between-renames"
        (old,) = [p for p in tmp_path.iterdir() if p.name.endswith(".old")]
        assert output_text(old) == "old"
    # The next run recovers even when it fails itself ...
    with pytest.raises(RuntimeError):
        with atomic_dir(final):
            raise RuntimeError("the next run fails")
    assert output_text(final) in ("old", "new")
    assert leftovers(tmp_path) == []
    # ... and a successful one replaces the output as usual.
    write_output(final, "next")
    assert output_text(final) == "next" and leftovers(tmp_path) == []


# --- concurrent writers --------------------------------------------------------------------------------------

SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from vf3d.common.atomic import atomic_dir

    final, text, ready = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    with atomic_dir(final) as tmp:
        ready.write_text("in")
        (tmp / "data.txt").write_text(text)
        time.sleep(float(sys.argv[4]))
        (tmp / "sub").mkdir()
        (tmp / "sub" / "part.txt").write_text(text * 2)
""")


def test_two_writers_of_one_output_both_end_cleanly(tmp_path):
    final = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(final), "first", str(tmp_path / "a"), "3"],
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "a").exists():
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.05)
    (live,) = [p for p in tmp_path.iterdir() if p.name.startswith(f"{TMP_PREFIX}out.") and p.is_dir()]
    second = subprocess.run([sys.executable, "-c", SLOW_WRITER, str(final), "second", str(tmp_path / "b"), "0"],
                            capture_output=True, text=True, timeout=120)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert second.returncode == 0, second.stderr
    assert "waiting for another vf3d run" in second.stderr
    assert output_text(final) == "second" and not live.exists() and leftovers(tmp_path) == []


def test_a_live_writers_temporary_is_never_cleaned_and_a_dead_ones_is(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tag = f"{atomic.owner_tag().rsplit('-', 1)[0]}-{sleeper.pid}"
        temporary = tmp_path / f"{TMP_PREFIX}out.{tag}.abc123"
        temporary.mkdir()
        atomic.recover(tmp_path / "out")
        assert temporary.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
    atomic.recover(tmp_path / "out")
    assert not temporary.exists()
    foreign = tmp_path / f"{TMP_PREFIX}out.otherhost-1.xyz"
    foreign.mkdir()
    atomic.recover(tmp_path / "out")
    assert foreign.is_dir()  # another machine's process may be alive: kept until it is a day old
    old = time.time() - atomic.FOREIGN_TEMPORARY_AGE_S - 60
    os.utime(foreign, (old, old))
    atomic.recover(tmp_path / "out")
    assert not foreign.exists()
