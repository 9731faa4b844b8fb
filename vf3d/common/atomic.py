"""Atomic outputs that only ever replace what vf3d itself wrote.

Every output folder is built under a temporary sibling and swapped in when complete:

- **Ownership.** Each folder `atomic_dir` writes holds a marker file (`OWNER_MARKER`) with the manifest of
  the files it wrote. An existing target is replaced only if it carries that marker and holds nothing
  else (or is an empty folder); a user's folder, a plain file, the input, its folder or any parent of it
  is refused with one `VF3DInputError` line before any work starts.
- **Crash safety.** Where the OS offers it (Linux `renameat2(RENAME_EXCHANGE)`), old and new outputs are
  exchanged in one step: a kill at any instant leaves one complete output at the target. Elsewhere the old
  output is renamed aside (`.old`) before the new one is renamed in; a kill between the two renames leaves
  the target missing and the `.old` complete, and the next writer of that target puts it back first.
- **Concurrency.** A writer holds an exclusive lock on `.tmp-<name>.lock` from start to swap, so a second run
  on the same output waits for the first (it says so on stderr) instead of deleting its work. Temporaries
  carry their owner (`<host>-<pid>`); only those of dead processes on this host (or of other hosts, older
  than `FOREIGN_TEMPORARY_AGE_S`) are ever cleaned up.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import glob
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from vf3d.common.errors import VF3DInputError

TMP_PREFIX = ".tmp-"
OWNER_MARKER = ".vf3d-output"
"""A file in every output folder vf3d writes; only folders holding it are ever replaced."""
FOREIGN_TEMPORARY_AGE_S = 24 * 3600
"""Temporaries of another host are cleaned only when this old (their owner cannot be asked if it lives)."""
_RENAME_EXCHANGE = 2


def owner_tag() -> str:
    """`<host>-<pid>` of this process, part of every temporary's name."""
    return f"{socket.gethostname().replace('.', '_')}-{os.getpid()}"


def _normalised(path: str | Path) -> Path:
    """Absolute, `..`-free path without following a final symlink (a link is refused, never followed)."""
    path = Path(os.path.abspath(path))
    return path.parent.resolve() / path.name if path.name else path


def check_replaceable(final: str | Path, protect: tuple[str | Path, ...] = ()) -> Path:
    """The normalised target if vf3d may (re)write it, else a one-line `VF3DInputError`.

    A target is replaceable when it does not exist, is an empty folder, or is a folder holding the
    `OWNER_MARKER` and none of `protect` (e.g. the input file) lies inside it.
    """
    final = _normalised(final)
    if final == Path(final.anchor) or not final.name:
        raise VF3DInputError(final, "refusing to write an output over a file system root")
    for path in protect:
        inside = _normalised(path)
        if inside == final or final in inside.parents:
            raise VF3DInputError(final, f"the output would replace {inside}, an input of this run; "
                                        "choose an output folder of its own")
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise VF3DInputError(final, "exists and is not a folder vf3d wrote; refusing to replace it "
                                    "(choose a new folder)")
    if final.is_dir() and not (final / OWNER_MARKER).is_file() and any(final.iterdir()):
        raise VF3DInputError(final, f"exists and was not written by vf3d (no {OWNER_MARKER} marker); "
                                    "refusing to replace it (choose a new or empty folder)")
    if final.is_dir() and (final / OWNER_MARKER).is_file():
        foreign = sorted(set(output_files(final)) - set(_manifest(final)))
        if foreign:
            raise VF3DInputError(final, f"holds {len(foreign)} file(s) vf3d did not write (first: {foreign[0]}); "
                                        "refusing to replace it (move them out first)")
    parent = next((p for p in [final.parent, *final.parent.parents] if p.exists()), None)
    if parent is None or not parent.is_dir():
        raise VF3DInputError(final, f"cannot create it: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VF3DInputError(final, f"cannot write in {parent}: permission denied")
    if final.is_dir() and not os.access(final, os.W_OK | os.X_OK):  # a folder made read-only is not to be replaced
        raise VF3DInputError(final, "the folder is read-only (permission denied); choose another output folder")
    return final


def _umask() -> int:
    """This process's umask, read without changing it where Linux shows it (/proc/self/status)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_is_dead(tag: str) -> bool:
    """True when `tag` (`owner_tag()` of some process) names a process of this host that no longer runs."""
    host, _, pid = tag.rpartition("-")
    return (pid.isdigit() and host == socket.gethostname().replace(".", "_") and int(pid) != os.getpid()
            and not _pid_alive(int(pid)))


def _abandoned(temporary: Path, name: str) -> bool:
    """True when a temporary's owner is gone: a dead process of this host, or another host's stale file."""
    tag = temporary.name[len(f"{TMP_PREFIX}{name}."):].split(".", 1)[0]
    host, _, pid = tag.rpartition("-")
    if not pid.isdigit():
        return False  # not a vf3d temporary of this naming scheme: leave it alone
    if host == socket.gethostname().replace(".", "_"):
        return owner_is_dead(tag)
    try:
        return time.time() - temporary.lstat().st_mtime > FOREIGN_TEMPORARY_AGE_S
    except FileNotFoundError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def recover(final: Path) -> None:
    """Finish what a killed writer of `final` left: put a complete old output back if `final` is missing,
    then remove abandoned temporaries. Call with the target's lock held."""
    prefix = f"{TMP_PREFIX}{final.name}."
    temporaries = [p for p in final.parent.glob(f"{glob.escape(prefix)}*") if not p.name.endswith(".lock")]
    for old in sorted(p for p in temporaries if p.name.endswith(".old") and _abandoned(p, final.name)):
        if not final.exists() and (old / OWNER_MARKER).is_file():
            os.replace(old, final)  # the swap was cut between its two renames: the old output comes back
    for temporary in temporaries:
        if temporary.exists() and _abandoned(temporary, final.name):
            _remove(temporary)


@contextlib.contextmanager
def output_lock(final: Path) -> Iterator[None]:
    """Exclusive lock on `final`'s output for this block; a second writer waits (and says so on stderr)."""
    lock_path = final.parent / f"{TMP_PREFIX}{final.name}.lock"
    while True:
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"vf3d: waiting for another vf3d run writing {final}", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the lock file while we waited: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap_in(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.replace(tmp, final)
        return
    check_replaceable(final)  # it may have changed while the output was being built
    if _exchange(tmp, final):
        _remove(tmp)  # now the old output
        return
    old = final.parent / f"{TMP_PREFIX}{final.name}.{owner_tag()}.old"
    os.replace(final, old)
    os.replace(tmp, final)
    _remove(old)


def output_files(folder: Path) -> list[str]:
    """Relative paths of a folder's files, temporaries and the marker left out."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if (p.is_file() or p.is_symlink()) and p.name != OWNER_MARKER
                  and not any(part.startswith(TMP_PREFIX) for part in p.relative_to(folder).parts))


def _manifest(folder: Path) -> list[str]:
    try:
        return list(json.loads((folder / OWNER_MARKER).read_text()).get("files", []))
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        return []


def write_marker(folder: Path) -> None:
    """Mark a finished output folder as vf3d's, with the manifest of the files it holds."""
    (folder / OWNER_MARKER).write_text(json.dumps({"written_by": "vf3d", "format": 1,
                                                   "files": output_files(folder)}, indent=0) + "\n")


@contextlib.contextmanager
def atomic_dir(final: str | Path, protect: tuple[str | Path, ...] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `final` only if the block completes.

    `final` must be absent, empty, or an earlier vf3d output (`check_replaceable`, checked before the block
    runs; `protect`: inputs that must not lie inside it). The previous output stays in place until the new
    one is complete and is never lost to a failed or killed run.
    """
    final = check_replaceable(final, protect)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VF3DInputError(final, f"cannot create its folder: {exc.strerror}") from None
    with output_lock(final):
        recover(final)
        check_replaceable(final, protect)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}.{owner_tag()}.", dir=final.parent))
        try:
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 -> the mode of a folder made with mkdir
            write_marker(tmp)  # marked from the start: a killed run's folder is recognisably vf3d's
            yield tmp
            write_marker(tmp)
            _swap_in(tmp, final)
        except BaseException:
            _remove(tmp)
            raise


@contextlib.contextmanager
def atomic_file(final: str | Path) -> Iterator[Path]:
    """Yield a temporary file path in `final`'s folder; it is renamed to `final` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{final.name}.{owner_tag()}.", suffix=final.suffix,
                                dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> the mode of a file made with open()
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def link_files(source: Path, out: Path) -> None:
    """Replace `out` (atomically) with hard links to `source`'s files (copies where links are impossible)."""
    with atomic_dir(out) as tmp:
        for name in output_files(source):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source / name, tmp / name)
            except OSError:
                shutil.copy2(source / name, tmp / name)


def forget_unlinked(keep: Path) -> None:
    """Remove vf3d outputs beside `keep` whose files nothing links to any more (e.g. older trainings of an edited
    style's shared LoRA); folders without the `OWNER_MARKER` are never touched."""
    for entry in keep.parent.iterdir():
        files = [entry / name for name in output_files(entry)] if entry.is_dir() and entry != keep else []
        if files and (entry / OWNER_MARKER).is_file() and all(f.stat().st_nlink == 1 for f in files):
            shutil.rmtree(entry)
