"""Safe file I/O: atomic directory writes that never clobber by accident, cheap file checks before loading.

Nothing here imports torch: the checks run before any model loads, so a broken file fails in milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lora_hyper.validation import InputError

TMP_TAG = "lora-hyper-tmp"
OLD_TAG = "lora-hyper-old"
_LEFTOVER = re.compile(rf"^\.(?P<name>.+)\.(?P<tag>{TMP_TAG}|{OLD_TAG})-(?P<pid>\d+)(?:-[0-9a-f]+)?$")
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit
# Bits per element of every safetensors dtype (sub-byte float types pack several elements per byte).
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


# ---------------------------------------------------------------------------------------------- writing
def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """``path`` as a Path when a directory may be written there; a one-line ``FileExistsError`` otherwise.

    An existing file is never replaced; an existing directory only with ``overwrite``. Cheap, so commands call
    it before loading any model.
    """
    path = Path(path)
    if path.is_file():
        raise FileExistsError(f"{path} exists and is a file; choose another output path.")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise FileExistsError(f"{parent} exists and is a file; choose another output path.")
            break
    return path


def _process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds, Linux ``/proc``); ``None`` where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22 (starttime), counted after "comm)"
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except (OSError, OverflowError):  # no such pid can exist
        return False
    return True


def is_stale(path: Path, pid: int, reuse_check: bool = True) -> bool:
    """A leftover of a write whose process is gone: its pid is dead, or (``reuse_check``) was reused by a
    process that started after ``path`` was last modified."""
    if not _pid_alive(pid):
        return True
    if not reuse_check:
        return False
    started = _process_start_time(pid)
    try:
        mtime = path.lstat().st_mtime
    except OSError:
        return False
    # /proc start times are exact to a tick, boot time to a second: the margin keeps a live writer's dir safe.
    return started is not None and mtime < started - 1.0


def sweep_leftovers(parent: str | os.PathLike) -> list[Path]:
    """Delete stale ``.<name>.lora-hyper-tmp-<pid>*`` / ``-old-<pid>*`` dirs in ``parent`` (killed writes).

    An ``-old-`` dir whose target is missing (the writer died between its two renames) is the only copy of the
    previous content, so it is renamed back instead. Returns the paths removed or restored.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = _LEFTOVER.match(entry.name)
        if match is None:
            continue
        path = Path(entry.path)
        # A renamed-aside dir keeps its old mtime, so only a dead pid makes an -old- dir stale.
        if not is_stale(path, int(match["pid"]), reuse_check=match["tag"] == TMP_TAG):
            continue
        target = path.with_name(match["name"])
        with contextlib.suppress(OSError):
            if match["tag"] == OLD_TAG and not os.path.lexists(target):
                os.replace(path, target)
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


def current_umask() -> int:
    """The process umask, read without changing it where ``/proc`` tells it (Linux), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normalize_permissions(root: Path) -> None:
    """Give ``root`` and everything in it the umask's modes (some writers, e.g. safetensors, make 0600 files).

    Directories become ``0o777 & ~umask``, files ``0o666 & ~umask`` (``0o777 & ~umask`` when executable);
    symlinks are left alone.
    """
    mask = current_umask()
    dir_mode, file_mode, exec_mode = 0o777 & ~mask, 0o666 & ~mask, 0o777 & ~mask
    os.chmod(root, dir_mode)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(path, dir_mode)
            elif stat.S_ISREG(st.st_mode):
                os.chmod(path, exec_mode if st.st_mode & 0o111 else file_mode)


def _sibling(directory: Path, tag: str) -> Path:
    """A fresh, recognisable name beside ``directory`` for this process (created by the caller)."""
    return directory.with_name(f".{directory.name}.{tag}-{os.getpid()}-{secrets.token_hex(3)}")


def atomic_directory_write(
    directory: str | os.PathLike, write: Callable[[Path], Any], overwrite: bool = False
) -> Path:
    """Call ``write(tmpdir)``, then move the result to ``directory`` by rename, so nothing half-written stays.

    An existing file at ``directory`` is never touched (``FileExistsError``); an existing directory is
    replaced only with ``overwrite=True`` (new content renamed in, the old one deleted afterwards). The
    temporary dir sits beside the target as ``.<name>.lora-hyper-tmp-<pid>-<hex>``, is removed on any
    error, and leftovers of killed writers in that folder are swept first. Modes follow the umask.
    """
    directory = Path(directory)
    if directory.name in ("", ".", ".."):
        raise ValueError(f"{directory} does not end in a folder name; give the directory to write.")
    check_output_path(directory, overwrite)
    directory.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(directory.parent)
    while True:
        tmp = _sibling(directory, TMP_TAG)
        try:
            tmp.mkdir()  # mode 0o777 & ~umask
            break
        except FileExistsError:
            continue
    try:
        write(tmp)
        normalize_permissions(tmp)
        check_output_path(directory, overwrite)  # the target may have appeared while we wrote
        if os.path.lexists(directory):
            old = _sibling(directory, OLD_TAG)
            os.replace(directory, old)
            try:
                os.replace(tmp, directory)
            except BaseException:
                os.replace(old, directory)  # put the original back
                raise
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


# ---------------------------------------------------------------------------------------------- checking
def _invalid(path: Path, reason: str) -> InputError:
    return InputError(f"{path} is not a valid safetensors file ({reason}); re-save or re-download it.")


def validate_safetensors(path: str | os.PathLike) -> None:
    """Check a safetensors file's header and size without reading its data (or importing torch).

    Every tensor needs a known dtype, a shape, and ``data_offsets`` that tile the data section exactly, and
    the data section must be as long as the header says; any problem is a one-line ``InputError``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _invalid(path, f"truncated: {size} bytes, shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or 8 + n > size:
                what = "truncated: " if n <= MAX_HEADER_BYTES else ""
                raise _invalid(path, f"{what}header length {n} bytes, file has {size}")
            raw = f.read(n)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing; re-save or re-download it.") from None
    except IsADirectoryError:
        raise _invalid(path, "it is a directory") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}.") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _invalid(path, "header is not JSON") from None
    if not isinstance(header, dict):
        raise _invalid(path, "header is not a JSON object")
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict):
                raise _invalid(path, "__metadata__ is not a JSON object")
            continue
        if not isinstance(info, dict):
            raise _invalid(path, f"tensor {name!r} has no description")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BITS:
            raise _invalid(path, f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise _invalid(path, f"tensor {name!r} has a bad shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise _invalid(path, f"tensor {name!r} has bad data_offsets {offsets!r}")
        count = 1
        for d in shape:
            count *= d
        bits = count * DTYPE_BITS[dtype]
        if bits % 8 or offsets[1] - offsets[0] != bits // 8:
            raise _invalid(
                path,
                f"tensor {name!r} ({dtype} {shape}) needs {bits / 8:g} bytes, its offsets span "
                f"{offsets[1] - offsets[0]}",
            )
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for start, stop, name in sorted(spans):
        if start != end:
            raise _invalid(path, f"tensor {name!r} starts at byte {start}, expected {end}")
        end = stop
    data = size - 8 - n
    if data != end:
        what = "truncated: " if data < end else ""
        raise _invalid(path, f"{what}header expects {end} data bytes, file has {data}")


def read_json_config(path: str | os.PathLike, what: str = "config") -> dict[str, Any]:
    """A JSON object file (``what`` names it in messages); missing, broken or non-object: one line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} is missing.") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: {what} is not UTF-8 text; fix or re-save it.") from None
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: invalid JSON ({e.msg}, line {e.lineno}); fix or re-save it.") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: {what} must be a JSON object, found {type(data).__name__}.")
    return data
