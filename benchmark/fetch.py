"""Download checkpoints and datasets: resumable, sha256-verified, Google Drive aware.

``download(url, dest)`` streams into ``dest + ".part"``, resumes an interrupted transfer with an
HTTP ``Range`` request, verifies the sha256 (when known) and only then renames the ``.part`` to
``dest``: a file at ``dest`` is always complete and verified. Google Drive public links
(``/file/d/<ID>/view``, ``/open?id=``, ``/uc?id=``) go through Drive's large-file confirm page
(see :mod:`benchmark._gdrive`). Only the standard library is used for HTTP (``urllib.request``);
tqdm draws the progress bar.

Subcommand::

    visrepro fetch URL --out FILE [--sha256 HEX] [--size N]
    visrepro fetch --manifest M.json [--root DIR]
    visrepro fetch --variant V [--out FILE] [--sha256 HEX]

``--variant`` fetches a variant's official checkpoint (:func:`fetch_checkpoint`): the URLs and the
sha256 (when known) come from the registry (``visrepro list``, ``benchmark/checkpoints.lock.json``);
the default ``--out`` is ``checkpoints/<variant>.pth``, where the DVC pipeline's ``fetch`` stage and
the report look. A READMEs' row may give several links without saying which is the checkpoint, so
they are tried in order and a file that is not a PyTorch state dict (a server submission zip) is
discarded. A ``FILE`` already in place is verified instead of downloaded.

A manifest is a JSON list of entries (or ``{"entries": [...]}``), each
``{"name", "url", "dest", "sha256"?, "size"?, "description"?}`` with ``dest`` relative to the root.
Exit status: 0 all present, 1 a download or checksum failed, 2 bad arguments or manifest.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import http.client
import http.cookiejar
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tqdm import tqdm

from benchmark import __version__, _gdrive
from benchmark._io import read_json
from benchmark.errors import InputError, Problem, UsageError

if TYPE_CHECKING:
    from benchmark.variant_cfg import VariantCfg

__all__ = [
    "ChecksumError",
    "FetchError",
    "FetchResult",
    "ManifestEntry",
    "ManifestFetchError",
    "configure",
    "download",
    "fetch_checkpoint",
    "fetch_manifest",
    "load_manifest",
    "make_session",
    "parse_manifest",
    "run",
    "sha256_file",
]

log = logging.getLogger("visrepro.fetch")

CHUNK = 1 << 16
#: Longest HTML page read when Drive answers a page instead of the file.
MAX_PAGE = 2 << 20
#: Hard cap on HTTP attempts for one file, however much each attempt progressed.
MAX_ATTEMPTS = 50
#: Longest pause between retries, in seconds.
MAX_BACKOFF = 30.0
#: HTTP statuses worth retrying.
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = f"visrepro/{__version__} (+urllib)"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class FetchError(RuntimeError):
    """A file could not be fetched (network failure after retries, HTTP error, Drive refusal).

    Attributes:
        url: What was being fetched.
        dest: Where it was going.
        reason: What went wrong, in words.
    """

    def __init__(self, reason: str, *, url: str | None = None, dest: str | Path | None = None) -> None:
        self.url = url
        self.dest = Path(dest) if dest is not None else None
        self.reason = reason
        super().__init__(self._render())

    def _render(self) -> str:
        if self.url and self.dest is not None:
            return f"could not fetch {self.url} -> {self.dest}: {self.reason}"
        if self.url:
            return f"could not fetch {self.url}: {self.reason}"
        return self.reason


class ChecksumError(FetchError):
    """The downloaded data is not the expected file (sha256 or size mismatch); nothing was kept."""

    def __init__(
        self,
        *,
        url: str,
        dest: str | Path,
        expected: str | int,
        actual: str | int,
        what: str = "sha256",
    ) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{what} mismatch: expected {expected}, got {actual}; the downloaded data was deleted",
            url=url,
            dest=dest,
        )


class ManifestFetchError(FetchError):
    """Some manifest entries failed; the others were fetched and are in place.

    Attributes:
        results: The entries that are in place.
        failures: ``(entry name, error)`` for each failed entry.
    """

    def __init__(self, results: list[FetchResult], failures: list[tuple[str, FetchError]]) -> None:
        self.results = results
        self.failures = failures
        total = len(results) + len(failures)
        lines = [f"{len(failures)} of {total} file(s) could not be fetched (the others are in place):"]
        lines += [f"  {name}: {err}" for name, err in failures]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one :func:`download`.

    Attributes:
        url: The URL asked for.
        dest: The final file.
        sha256: Its digest (computed when it was not given: record it).
        size: Its size in bytes.
        skipped: True when ``dest`` was already present and valid, so nothing was downloaded.
        resumed_from: Bytes of an earlier ``.part`` that were kept (0 when downloaded from scratch).
        attempts: HTTP attempts made (0 when skipped).
        name: The manifest entry name, if any.
    """

    url: str
    dest: Path
    sha256: str
    size: int
    skipped: bool = False
    resumed_from: int = 0
    attempts: int = 0
    name: str | None = None

    @property
    def status(self) -> str:
        return "present" if self.skipped else "downloaded"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in ``chunk``-byte pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def make_session() -> urllib.request.OpenerDirector:
    """An opener with its own cookie jar (Drive's confirm flow needs cookies), proxies from the env."""
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _cookies(opener: urllib.request.OpenerDirector) -> dict[str, str]:
    out: dict[str, str] = {}
    for handler in getattr(opener, "handlers", []):
        if isinstance(handler, urllib.request.HTTPCookieProcessor):
            for cookie in handler.cookiejar:
                if cookie.value is not None:
                    out[cookie.name] = cookie.value
    return out


def _normalise_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _HEX64.match(value.strip()):
        raise InputError(f"sha256 must be 64 hexadecimal digits, got {value!r}")
    return value.strip().lower()


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InputError(f"a file URL names an absolute local path (file:///...), got {url!r}")
        return
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InputError(f"not an http(s) or file URL: {url!r}")


def _copy_local(url: str, part: Path) -> tuple[int, str]:
    """Copy the file a ``file:`` URL names into ``part``, hashing as it goes: ``(size, sha256)``."""
    src = Path(urllib.request.url2pathname(urlsplit(url).path))
    h = hashlib.sha256()
    size = 0
    try:
        with open(src, "rb") as fin, open(part, "wb") as fout:
            while chunk := fin.read(1 << 20):
                h.update(chunk)
                fout.write(chunk)
                size += len(chunk)
    except FileNotFoundError:
        part.unlink(missing_ok=True)
        raise FetchError(f"no such file: {src}", url=url) from None
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise FetchError(f"cannot copy {src}: {exc}", url=url) from None
    return size, h.hexdigest()


class _Transient(Exception):
    """A failure worth retrying (connection dropped, timeout, 5xx)."""


class _Restart(Exception):
    """The ``.part`` cannot be resumed; start over from byte 0 (does not count as a failure)."""


@dataclass
class _State:
    url: str
    fetch_url: str
    file_id: str | None
    dest: Path
    part: Path
    opener: urllib.request.OpenerDirector
    timeout: float
    expected_size: int | None
    progress: bool
    label: str
    # Digest of the first ``hashed`` bytes of the .part, carried across attempts.
    hasher: Any = field(default_factory=hashlib.sha256)
    hashed: int = 0
    resumed_from: int = 0

    def fail(self, reason: str) -> FetchError:
        return FetchError(reason, url=self.url, dest=self.dest)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` of a ``Content-Range`` header (``None`` parts when absent or ``*``)."""
    match = re.match(r"^\s*bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)\s*$", value or "")
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start != "*" else None), (int(total) if total != "*" else None)


def _http_error(st: _State, exc: urllib.error.HTTPError) -> Exception:
    """Turn an HTTP error status into a transient or a final error."""
    if exc.code in RETRY_STATUS:
        return _Transient(f"HTTP {exc.code} {exc.reason}")
    detail = ""
    if st.file_id is not None and exc.headers.get_content_type() == "text/html":
        with contextlib.suppress(Exception):
            title = _gdrive.parse_drive_page(exc.read(MAX_PAGE).decode("utf-8", "replace")).title
            detail = f" (page title: {title!r})" if title else ""
    return st.fail(f"HTTP {exc.code} {exc.reason}{detail}")


def _request(st: _State, url: str, offset: int) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = st.opener.open(urllib.request.Request(url, headers=headers), timeout=st.timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            _, total = _content_range(exc.headers.get("Content-Range"))
            exc.close()
            if total == offset:
                raise _PartComplete from None
            raise _Restart(f"server refused the range {offset}- (file is {total} bytes)") from None
        err = _http_error(st, exc)
        exc.close()
        raise err from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, OSError):
            raise _Transient(f"{exc.reason}") from None
        raise st.fail(f"{exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(f"{type(exc).__name__}: {exc}") from None
    return resp


class _PartComplete(Exception):
    """The server says the ``.part`` already holds the whole file (416 on ``bytes=<size>-``)."""


def _open(st: _State, offset: int) -> http.client.HTTPResponse:
    """Request the file from ``offset``, going through Drive's confirm page when there is one."""
    resp = _request(st, st.fetch_url, offset)
    if st.file_id is None:
        return resp
    for hop in range(3):
        if resp.headers.get_content_type() != "text/html":
            return resp
        try:
            body = resp.read(MAX_PAGE)
        except (OSError, http.client.HTTPException) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        finally:
            resp.close()
        charset = resp.headers.get_content_charset() or "utf-8"
        page = _gdrive.parse_drive_page(body.decode(charset, "replace"))
        follow = (
            _gdrive.confirm_url(page, resp.geturl(), st.file_id, _cookies(st.opener)) if hop < 2 else None
        )
        if follow is None:
            title = f"page title: {page.title!r}" if page.title else "no page title"
            raise st.fail(
                f"Google Drive answered an HTML page instead of the file ({title}); the file may be "
                "over its download quota, not shared publicly, or removed"
            )
        log.debug("Drive confirm page; following %s", follow)
        resp = _request(st, follow, offset)
    raise AssertionError("unreachable")


def _rehash(st: _State, size: int) -> None:
    """Make ``st.hasher`` cover the first ``size`` bytes of the ``.part``."""
    if st.hashed == size:
        return
    st.hasher, st.hashed = hashlib.sha256(), 0
    with open(st.part, "rb") as fh:
        while st.hashed < size and (block := fh.read(min(1 << 20, size - st.hashed))):
            st.hasher.update(block)
            st.hashed += len(block)


def _attempt(st: _State) -> None:
    """One HTTP attempt: append to (or restart) the ``.part``. Raises on anything short of complete."""
    offset = st.part.stat().st_size if st.part.exists() else 0
    if st.expected_size is not None and offset > st.expected_size:
        log.info("%s: partial file is larger than the expected size; starting over", st.label)
        offset = 0
    try:
        resp = _open(st, offset)
    except _PartComplete:
        _rehash(st, offset)
        return
    with contextlib.closing(resp):
        length_header = resp.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        total: int | None = None
        if offset and resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:
                raise _Restart(f"server resumed at byte {start}, not {offset}")
            st.resumed_from = offset
        else:
            if offset:
                log.info(
                    "%s: server ignored the range request (HTTP %s); starting over", st.label, resp.status
                )
            offset = 0
            st.resumed_from = 0
            total = length
            if resp.status == 206:  # a range we did not ask for: only byte 0 onwards is usable
                start, total = _content_range(resp.headers.get("Content-Range"))
                if start not in (0, None):
                    raise st.fail(f"server sent a partial answer from byte {start} unasked")
        if total is None and length is not None:
            total = offset + length
        if st.expected_size is not None and total is not None and total != st.expected_size:
            raise ChecksumError(
                url=st.url, dest=st.dest, expected=st.expected_size, actual=total, what="size"
            )
        _rehash(st, offset)
        received = offset
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=st.label,
            file=sys.stderr,
            leave=False,
            disable=not st.progress or not sys.stderr.isatty(),
        )
        try:
            with open(st.part, "ab" if offset else "wb") as fh:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Transient(f"connection lost after {received} bytes ({exc})") from None
                    if not block:
                        break
                    fh.write(block)
                    st.hasher.update(block)
                    received += len(block)
                    st.hashed = received
                    bar.update(len(block))
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            bar.close()
        if total is not None and received < total:
            raise _Transient(f"connection closed after {received} of {total} bytes")


def _existing(dest: Path, url: str, sha256: str | None, expected_size: int | None) -> FetchResult | None:
    """A result for a ``dest`` that is already valid, else ``None`` (download it again)."""
    size = dest.stat().st_size
    if expected_size is not None and size != expected_size:
        log.warning("%s exists but has %d bytes, not %d; downloading it again", dest, size, expected_size)
        return None
    digest = sha256_file(dest)
    if sha256 is not None and digest != sha256:
        log.warning("%s exists but its sha256 is %s, not %s; downloading it again", dest, digest, sha256)
        return None
    return FetchResult(url=url, dest=dest, sha256=digest, size=size, skipped=True)


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    expected_size: int | None = None,
    resume: bool = True,
    progress: bool = True,
    timeout: float = 60,
    retries: int = 3,
    session: urllib.request.OpenerDirector | None = None,
    backoff: float = 1.0,
    name: str | None = None,
) -> FetchResult:
    """Download ``url`` to ``dest``; resumable, verified, atomic.

    Args:
        url: An http(s) URL, a Google Drive public link (converted to the download endpoint), or a
            ``file:`` URL of a local file (copied, with the same verification and atomic rename).
        dest: The final file. It appears only once the whole file is in and verified; meanwhile
            the data is in ``dest + ".part"``.
        sha256: Expected digest. A ``dest`` that already has it is not downloaded again; a
            mismatch deletes the downloaded data and raises :class:`ChecksumError`. When ``None``
            the digest is computed and returned (an existing ``dest`` is then taken as is).
        expected_size: Expected size in bytes (checked like the digest).
        resume: Continue an existing ``.part`` with a ``Range`` request (a server that ignores it
            is fine: the download starts over). ``False`` discards any ``.part``.
        progress: Show a tqdm bar on stderr (only when stderr is a terminal).
        timeout: Socket timeout in seconds for each connect and read.
        retries: How many failed attempts in a row (connection errors, truncated answers, 5xx) are
            retried, resuming from what has arrived; an attempt that made progress resets the count
            (at most :data:`MAX_ATTEMPTS` attempts in all).
        session: An opener to reuse (see :func:`make_session`); a fresh one by default.
        backoff: First pause between retries in seconds; doubles per failure, at most 30 s.
        name: A label for the progress bar and messages.

    Returns:
        A :class:`FetchResult` (``skipped=True`` when ``dest`` was already valid).

    Raises:
        FetchError: The file could not be fetched (after retries, or a final HTTP/Drive error).
        ChecksumError: The data is not the expected file; nothing was kept.
        InputError: A bad URL or sha256.
    """
    _check_url(url)
    sha256 = _normalise_sha256(sha256)
    dest = Path(dest)
    file_id = None
    try:
        file_id = _gdrive.drive_file_id(url)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if dest.is_dir():
        raise InputError(f"destination is a directory: {dest}")
    if dest.exists() and (found := _existing(dest, url, sha256, expected_size)) is not None:
        log.info("%s is present and verified; not downloading", dest)
        return found
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not resume:
            part.unlink(missing_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot prepare {part}: {exc}", url=url, dest=dest) from None
    if urlsplit(url).scheme.lower() == "file":
        size, digest = _copy_local(url, part)
        bad: ChecksumError | None = None
        if expected_size is not None and size != expected_size:
            bad = ChecksumError(url=url, dest=dest, expected=expected_size, actual=size, what="size")
        elif sha256 is not None and digest != sha256:
            bad = ChecksumError(url=url, dest=dest, expected=sha256, actual=digest)
        if bad is not None:
            part.unlink(missing_ok=True)
            raise bad
        try:
            os.replace(part, dest)
        except OSError as exc:
            raise FetchError(f"cannot move {part} to {dest}: {exc}", url=url, dest=dest) from None
        log.info("%s: copied %d bytes from %s, sha256 %s", name or dest.name, size, url, digest)
        return FetchResult(url=url, dest=dest, sha256=digest, size=size, name=name)
    st = _State(
        url=url,
        fetch_url=_gdrive.drive_download_url(file_id) if file_id else url,
        file_id=file_id,
        dest=dest,
        part=part,
        opener=session or make_session(),
        timeout=timeout,
        expected_size=expected_size,
        progress=progress,
        label=name or dest.name,
    )
    attempts = 0
    fresh_retry_left = True  # a resumed file that fails verification is fetched once more from 0
    while True:
        attempts += _transfer(st, retries, backoff)
        size = part.stat().st_size
        digest = st.hasher.hexdigest()
        bad = None
        if expected_size is not None and size != expected_size:
            bad = ChecksumError(url=url, dest=dest, expected=expected_size, actual=size, what="size")
        elif sha256 is not None and digest != sha256:
            bad = ChecksumError(url=url, dest=dest, expected=sha256, actual=digest)
        if bad is None:
            break
        part.unlink(missing_ok=True)
        st.hasher, st.hashed = hashlib.sha256(), 0
        if st.resumed_from and fresh_retry_left:
            log.warning("%s: resumed download does not verify; downloading it again from the start", st.label)
            fresh_retry_left = False
            continue
        raise bad
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise FetchError(f"cannot move {part} to {dest}: {exc}", url=url, dest=dest) from None
    log.info("%s: downloaded %d bytes, sha256 %s", st.label, size, digest)
    return FetchResult(
        url=url,
        dest=dest,
        sha256=digest,
        size=size,
        resumed_from=st.resumed_from,
        attempts=attempts,
        name=name,
    )


def _transfer(st: _State, retries: int, backoff: float) -> int:
    """Run attempts until the ``.part`` is complete; returns how many were made."""
    failures = 0
    attempts = 0
    while True:
        attempts += 1
        before = st.part.stat().st_size if st.part.exists() else 0
        try:
            _attempt(st)
            return attempts
        except _Restart as exc:
            log.info("%s: %s; starting over", st.label, exc)
            _discard(st)
            reason = str(exc)
            failures += 1  # counted, so a server that keeps doing it cannot loop forever
        except _Transient as exc:
            reason = str(exc)
            after = st.part.stat().st_size if st.part.exists() else 0
            failures = 0 if after > before else failures + 1
        except ChecksumError:
            _discard(st)
            raise
        except FetchError:
            raise
        except OSError as exc:  # local: disk full, permissions
            raise st.fail(f"cannot write {st.part}: {exc}") from None
        if failures > retries or attempts >= MAX_ATTEMPTS:
            raise st.fail(
                f"{reason} (gave up after {attempts} attempt(s); the partial file is kept for resuming)"
            )
        pause = min(backoff * 2 ** max(failures - 1, 0), MAX_BACKOFF)
        log.warning("%s: %s; retrying in %.1f s", st.label, reason, pause)
        time.sleep(pause)


def _discard(st: _State) -> None:
    st.part.unlink(missing_ok=True)
    st.hasher, st.hashed = hashlib.sha256(), 0


# --------------------------------------------------------------------------------------------------
# Manifests


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a fetch manifest (``dest`` relative to the root)."""

    name: str
    url: str
    dest: str
    sha256: str | None = None
    size: int | None = None


_ENTRY_KEYS = frozenset({"name", "url", "dest", "sha256", "size", "description"})


def _dest_problem(dest: str) -> str | None:
    if (
        PurePosixPath(dest).is_absolute()
        or PureWindowsPath(dest).is_absolute()
        or PureWindowsPath(dest).drive
    ):
        return f"dest must be relative to the root, got the absolute path {dest!r}"
    parts = re.split(r"[\\/]", dest)
    if ".." in parts:
        return f"dest must stay inside the root, got {dest!r} (contains '..')"
    if all(p in ("", ".") for p in parts) or parts[-1] in ("", "."):
        return f"dest must name a file, got {dest!r}"
    return None


def parse_manifest(data: Any, *, file: str | Path | None = None) -> list[ManifestEntry]:
    """Validate manifest data (a list of entries or ``{"entries": [...]}``); all problems at once.

    Raises:
        InputError: naming ``file`` and each bad entry.
    """
    where = str(file) if file is not None else None
    if isinstance(data, Mapping) and "entries" in data:
        data = data["entries"]
    if not isinstance(data, list):
        raise InputError('a fetch manifest is a JSON list of entries (or {"entries": [...]})', file=file)
    problems: list[Problem] = []
    entries: list[ManifestEntry] = []
    seen_names: dict[str, int] = {}
    seen_dests: dict[str, int] = {}
    for i, raw in enumerate(data):
        if not isinstance(raw, Mapping):
            problems.append(
                Problem(where, f"entries[{i}]", f"an entry is a JSON object, got {type(raw).__name__}")
            )
            continue
        name = raw.get("name")
        label = f"entries[{i}] ({name})" if isinstance(name, str) and name else f"entries[{i}]"
        bad: list[str] = []
        unknown = sorted(set(raw) - _ENTRY_KEYS)
        if unknown:
            bad.append(
                f"unknown key(s) {', '.join(map(repr, unknown))} (allowed: {', '.join(sorted(_ENTRY_KEYS))})"
            )
        if not isinstance(name, str) or not name:
            bad.append("missing 'name' (a non-empty string)")
        url = raw.get("url")
        if not isinstance(url, str) or not url:
            bad.append("missing 'url'")
        else:
            try:
                _check_url(url)
                _gdrive.drive_file_id(url)
            except (InputError, ValueError) as exc:
                bad.append(str(exc))
        dest = raw.get("dest")
        if not isinstance(dest, str) or not dest:
            bad.append("missing 'dest' (a path relative to the root)")
        elif (msg := _dest_problem(dest)) is not None:
            bad.append(msg)
        sha = raw.get("sha256")
        if sha is not None and (not isinstance(sha, str) or not _HEX64.match(sha)):
            bad.append(f"sha256 must be 64 hexadecimal digits, got {sha!r}")
        size = raw.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            bad.append(f"size must be a non-negative integer, got {size!r}")
        if isinstance(name, str) and name:
            if name in seen_names:
                bad.append(f"duplicate name (also entries[{seen_names[name]}])")
            seen_names.setdefault(name, i)
        if isinstance(dest, str) and dest:
            key = str(PurePosixPath(dest.replace("\\", "/")))
            if key in seen_dests:
                bad.append(f"duplicate dest {dest!r} (also entries[{seen_dests[key]}])")
            seen_dests.setdefault(key, i)
        if bad:
            problems += [Problem(where, label, msg) for msg in bad]
            continue
        assert isinstance(name, str) and isinstance(url, str) and isinstance(dest, str)
        entries.append(ManifestEntry(name, url, dest, sha.lower() if isinstance(sha, str) else None, size))
    if problems:
        raise InputError(problems)
    return entries


def load_manifest(path: str | Path) -> list[ManifestEntry]:
    """Read and validate a manifest file."""
    return parse_manifest(read_json(path, what="fetch manifest"), file=path)


def fetch_manifest(
    entries: Sequence[ManifestEntry | Mapping[str, Any]],
    root: str | Path,
    *,
    manifest: str | Path | None = None,
    **options: Any,
) -> list[FetchResult]:
    """Fetch every entry under ``root``; entries already present and verified are skipped.

    A failing entry does not stop the others: every entry is tried, then a
    :class:`ManifestFetchError` lists the failures (the files that did arrive stay in place).

    Args:
        entries: Manifest entries (validated first; raw dicts are accepted).
        root: Directory the ``dest`` paths are relative to.
        manifest: The manifest file, named in validation errors.
        **options: Passed to :func:`download` (``progress``, ``retries``, ``timeout``, ...).
    """
    if all(isinstance(e, ManifestEntry) for e in entries):
        checked = [e for e in entries if isinstance(e, ManifestEntry)]
    else:
        checked = parse_manifest(
            [dataclasses.asdict(e) if isinstance(e, ManifestEntry) else e for e in entries], file=manifest
        )
    root = Path(root)
    root_resolved = root.resolve()
    problems = [
        Problem(
            str(manifest) if manifest else None, e.name, f"dest {e.dest!r} leaves the root {root} (symlink)"
        )
        for e in checked
        if not (root / e.dest).resolve().is_relative_to(root_resolved)
    ]
    if problems:
        raise InputError(problems)
    options.setdefault("session", make_session())
    results: list[FetchResult] = []
    failures: list[tuple[str, FetchError]] = []
    for e in checked:
        try:
            r = download(e.url, root / e.dest, sha256=e.sha256, expected_size=e.size, name=e.name, **options)
        except FetchError as exc:
            log.error("%s: %s", e.name, exc)
            failures.append((e.name, exc))
            continue
        results.append(dataclasses.replace(r, name=e.name))
        if e.sha256 is None:
            log.warning("%s: no sha256 in the manifest; it is %s (record it)", e.name, r.sha256)
    if failures:
        raise ManifestFetchError(results, failures)
    return results


# --------------------------------------------------------------------------------------------------
# Official checkpoints of a variant


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` is not a PyTorch checkpoint (``None``: it holds a state dict of tensors)."""
    from benchmark.checkpoint import read_checkpoint

    try:
        read_checkpoint(path)
    except InputError as exc:
        return str(exc).splitlines()[0][:300]
    return None


def fetch_checkpoint(
    cfg: VariantCfg,
    dest: str | Path,
    *,
    sha256: str | None = None,
    check: Any = checkpoint_problem,
    **options: Any,
) -> FetchResult:
    """Fetch ``cfg``'s official checkpoint to ``dest`` (or verify the file already there).

    The variant's ``checkpoint_urls`` are tried in order; a download that is not a checkpoint
    (``check`` returns why) is deleted and the next URL is tried. The sha256 is ``sha256`` or the
    registry's; when neither is known the file is accepted on ``check`` alone and its digest is
    logged so it can be recorded (``visrepro checkpoints verify``).

    Args:
        cfg: The variant (:func:`benchmark.registry.get_variant_cfg`).
        dest: The checkpoint file to write.
        sha256: Expected digest, overriding the registry's.
        check: ``check(path) -> str | None``: why the file is not usable, or ``None``.
        **options: Passed to :func:`download`.

    Raises:
        InputError: The variant has no known checkpoint URL, or a bad sha256.
        FetchError: No URL gave a usable file (every URL's failure is listed).
    """
    dest = Path(dest)
    expected = _normalise_sha256(sha256 or cfg.checkpoint_sha256)
    if not cfg.checkpoint_urls and dest.is_file():
        found = _existing(dest, str(dest), expected, None)
        problem = check(dest) if found is not None else f"sha256 is not {expected}"
        if found is None or problem is not None:
            raise InputError(f"not the checkpoint of {cfg.name}: {problem}", file=dest)
        return dataclasses.replace(found, name=cfg.name)
    if not cfg.checkpoint_urls:
        raise InputError(
            f"no official checkpoint URL is known for {cfg.name}; put its checkpoint at {dest} by hand "
            "(the fetch stage then verifies it)",
            entry=cfg.name,
        )
    options.setdefault("session", make_session())
    failures: list[str] = []
    for url in cfg.checkpoint_urls:
        try:
            result = download(url, dest, sha256=expected, name=cfg.name, **options)
        except ChecksumError as exc:
            failures.append(f"{url}: {exc.reason}")
            continue
        except FetchError as exc:
            failures.append(f"{url}: {exc.reason}")
            continue
        problem = check(dest)
        if problem is None:
            if expected is None:
                log.warning(
                    "%s: no sha256 is recorded for this checkpoint; %s has sha256 %s. Record it with "
                    "'visrepro checkpoints verify --variant %s --checkpoint %s'",
                    cfg.name, dest, result.sha256, cfg.name, dest,
                )  # fmt: skip
            return dataclasses.replace(result, url=url)
        log.warning(
            "%s: %s is not a checkpoint (%s); deleted it, trying the next link", cfg.name, url, problem
        )
        dest.unlink(missing_ok=True)
        failures.append(f"{url}: not a checkpoint ({problem})")
    raise FetchError(
        f"no link of {cfg.name} gave its checkpoint:\n" + "\n".join(f"  {f}" for f in failures), dest=dest
    )


# --------------------------------------------------------------------------------------------------
# CLI


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``visrepro fetch``."""
    parser.add_argument("url", nargs="?", help="http(s) URL or Google Drive link of one file")
    parser.add_argument("-o", "--out", type=Path, help="where to write the file (with URL)")
    parser.add_argument("--sha256", help="expected sha256 (with URL)")
    parser.add_argument("--size", type=int, help="expected size in bytes (with URL)")
    parser.add_argument("--manifest", type=Path, help="JSON manifest of files to fetch")
    parser.add_argument(
        "--variant",
        help="fetch this variant's official checkpoint (URLs and sha256 from the registry; "
        "--out defaults to checkpoints/<variant>.pth)",
    )
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="root for manifest dest paths (default: .)"
    )
    parser.add_argument("--no-resume", dest="resume", action="store_false", help="discard partial downloads")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument(
        "--retries", type=int, default=3, help="retries per file on network errors (default: 3)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds (default: 60)")


def _print_results(results: Iterator[FetchResult] | list[FetchResult]) -> None:
    for r in results:
        print(f"{r.sha256}  {r.dest}")


def run(args: argparse.Namespace) -> int:
    """``visrepro fetch``: 0 all present, 1 fetch/checksum failure, 2 bad arguments or manifest."""
    if args.retries < 0 or args.timeout <= 0:
        raise UsageError("--retries must be >= 0 and --timeout > 0")
    options: dict[str, Any] = {
        "resume": args.resume,
        "progress": args.progress,
        "retries": args.retries,
        "timeout": args.timeout,
    }
    variant = getattr(args, "variant", None)
    if sum(x is not None for x in (args.url, args.manifest, variant)) != 1:
        raise UsageError("give one of: a URL (with --out), --manifest, --variant")
    try:
        if variant is not None:
            from benchmark.registry import get_variant_cfg

            if args.size is not None:
                raise UsageError("--size goes with a URL, not with --variant")
            if args.sha256 is not None and not _HEX64.match(args.sha256):
                raise InputError(f"must be 64 hexadecimal digits, got {args.sha256!r}", entry="--sha256")
            out = args.out if args.out is not None else Path("checkpoints") / f"{variant}.pth"
            results = [fetch_checkpoint(get_variant_cfg(variant), out, sha256=args.sha256, **options)]
        elif args.manifest is not None:
            if args.out is not None or args.sha256 is not None or args.size is not None:
                raise UsageError("--out, --sha256 and --size go with a URL, not with --manifest")
            entries = load_manifest(args.manifest)
            results = fetch_manifest(entries, args.root, manifest=args.manifest, **options)
        else:
            if args.out is None:
                raise UsageError("a URL needs --out FILE")
            if args.size is not None and args.size < 0:
                raise UsageError("--size must be >= 0")
            if args.sha256 is not None and not _HEX64.match(args.sha256):
                raise InputError(f"must be 64 hexadecimal digits, got {args.sha256!r}", entry="--sha256")
            results = [download(args.url, args.out, sha256=args.sha256, expected_size=args.size, **options)]
    except ManifestFetchError as exc:
        _print_results(exc.results)
        print(f"visrepro fetch: error: {exc}", file=sys.stderr)
        return 1
    except FetchError as exc:
        print(f"visrepro fetch: error: {exc}", file=sys.stderr)
        return 1
    _print_results(results)
    return 0
