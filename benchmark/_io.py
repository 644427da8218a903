"""Small file helpers: atomic writes and JSON reading with clear errors."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from benchmark.errors import InputError

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_json", "read_json"]


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    An exception (or a kill) inside the block leaves ``path`` as it was: an interrupted run never
    leaves half a file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would (0666 - umask).
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = None) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (compact unless ``indent`` is given)."""
    separators = (",", ":") if indent is None else None
    with atomic_open(path, "w") as fh:
        json.dump(obj, fh, indent=indent, separators=separators, allow_nan=False)
        if indent is not None:
            fh.write("\n")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def read_json(path: str | Path, *, what: str = "JSON file") -> Any:
    """Read a JSON file, turning a missing file or bad JSON into an :class:`InputError`."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise InputError(f"{what} does not exist", file=path) from None
    except IsADirectoryError:
        raise InputError(f"expected a {what}, found a directory", file=path) from None
    except PermissionError:
        raise InputError(f"{what} is not readable (permission denied)", file=path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} is not UTF-8 text ({exc.reason})", file=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", file=path
        ) from None
