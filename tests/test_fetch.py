"""benchmark.fetch against a loopback HTTP server (127.0.0.1 only, stopped after each test)."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from benchmark import _gdrive, cli, fetch
from benchmark.errors import InputError

DATA = bytes(range(256)) * 1200  # 307,200 bytes, several chunks
DIGEST = hashlib.sha256(DATA).hexdigest()
FILE_ID = "1qDFf-Fk2R67iyzwR1_WbZ3IfwYgAR5vu"
TEST_LIMIT_S = 15


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    """Fail any test of this module that runs longer than TEST_LIMIT_S (no pytest-timeout here)."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"test took longer than {TEST_LIMIT_S} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, TEST_LIMIT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours *_proxy variables; loopback requests must not go through one."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")


# --------------------------------------------------------------------------------------------------
# Loopback server


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    range: str | None
    cookie: str | None


Route = Callable[["Handler", "Seen"], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        seen = Seen(parts.path, parse_qs(parts.query), self.headers.get("Range"), self.headers.get("Cookie"))
        with self.server.lock:
            self.server.seen.append(seen)
        route = self.server.routes.get(parts.path)
        if route is None:
            self.reply(404, b"not found", "text/plain")
            return
        route(self, seen)

    def reply(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def serve(self, data: bytes, seen: Seen, *, ranges: bool = True, cut_after: int | None = None) -> None:
        """Send ``data`` (honouring ``Range`` if ``ranges``); drop the connection after ``cut_after`` bytes."""
        start = 0
        if ranges and seen.range and seen.range.startswith("bytes="):
            start = int(seen.range[len("bytes=") :].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut_after is None:
            self.wfile.write(body)
            return
        self.wfile.write(body[:cut_after])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == path]


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def get(url: str, dest: Path, **kw: Any) -> fetch.FetchResult:
    kw.setdefault("progress", False)
    kw.setdefault("timeout", 5)
    kw.setdefault("backoff", 0)
    return fetch.download(url, dest, **kw)


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir())


# --------------------------------------------------------------------------------------------------
# Plain HTTP


def test_sha256_file(tmp_path: Path) -> None:
    p = tmp_path / "x.bin"
    p.write_bytes(DATA)
    assert fetch.sha256_file(p, chunk=1000) == DIGEST


def test_download_computes_sha256_when_unknown(server: Server, tmp_path: Path) -> None:
    server.routes["/f"] = lambda h, s: h.serve(DATA, s)
    dest = tmp_path / "sub" / "model.pth"
    r = get(server.url("/f"), dest)
    assert dest.read_bytes() == DATA
    assert (r.sha256, r.size, r.skipped, r.resumed_from, r.attempts) == (DIGEST, len(DATA), False, 0, 1)
    assert leftovers(dest) == ["model.pth"]


def test_midway_failure_resumes_with_range(server: Server, tmp_path: Path) -> None:
    cut = 100_000
    calls = []

    def route(h: Handler, s: Seen) -> None:
        calls.append(s)
        h.serve(DATA, s, cut_after=cut if len(calls) == 1 else None)

    server.routes["/f"] = route
    dest = tmp_path / "model.pth"
    r = get(server.url("/f"), dest, sha256=DIGEST)
    assert dest.read_bytes() == DATA
    assert r.sha256 == DIGEST and r.resumed_from == cut and r.attempts == 2
    assert [s.range for s in server.hits("/f")] == [None, f"bytes={cut}-"]
    assert leftovers(dest) == ["model.pth"]


def test_existing_part_is_resumed(server: Server, tmp_path: Path) -> None:
    server.routes["/f"] = lambda h, s: h.serve(DATA, s)
    dest = tmp_path / "model.pth"
    (tmp_path / "model.pth.part").write_bytes(DATA[:12345])
    r = get(server.url("/f"), dest, sha256=DIGEST.upper())
    assert dest.read_bytes() == DATA and r.resumed_from == 12345
    assert [s.range for s in server.hits("/f")] == ["bytes=12345-"]


def test_complete_part_answered_416_is_finalised(server: Server, tmp_path: Path) -> None:
    server.routes["/f"] = lambda h, s: h.serve(DATA, s)
    dest = tmp_path / "model.pth"
    (tmp_path / "model.pth.part").write_bytes(DATA)
    r = get(server.url("/f"), dest, sha256=DIGEST)
    assert dest.read_bytes() == DATA and r.sha256 == DIGEST
    assert leftovers(dest) == ["model.pth"]


def test_server_ignoring_range_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    calls = []

    def route(h: Handler, s: Seen) -> None:
        calls.append(s)
        h.serve(DATA, s, ranges=False, cut_after=50_000 if len(calls) == 1 else None)

    server.routes["/f"] = route
    dest = tmp_path / "model.pth"
    r = get(server.url("/f"), dest, sha256=DIGEST)
    assert dest.read_bytes() == DATA and r.resumed_from == 0
    assert [s.range for s in server.hits("/f")] == [None, "bytes=50000-"]


def test_wrong_bytes_raise_checksum_error_and_keep_nothing(server: Server, tmp_path: Path) -> None:
    server.routes["/f"] = lambda h, s: h.serve(b"not the checkpoint" * 1000, s)
    dest = tmp_path / "model.pth"
    with pytest.raises(fetch.ChecksumError) as info:
        get(server.url("/f"), dest, sha256=DIGEST)
    msg = str(info.value)
    assert server.url("/f") in msg and str(dest) in msg and DIGEST in msg
    assert hashlib.sha256(b"not the checkpoint" * 1000).hexdigest() in msg
    assert leftovers(dest) == []


def test_stale_part_that_fails_verification_is_fetched_again(server: Server, tmp_path: Path) -> None:
    server.routes["/f"] = lambda h, s: h.serve(DATA, s)
    dest = tmp_path / "model.pth"
    (tmp_path / "model.pth.part").write_bytes(b"\xff" * 1000)  # left by an older version of the file
    r = get(server.url("/f"), dest, sha256=DIGEST)
    assert dest.read_bytes() == DATA and r.resumed_from == 0
    assert [s.range for s in server.hits("/f")] == ["bytes=1000-", None]


def test_size_mismatch_is_reported_before_downloading(server: Server, tmp_path: Path) -> None:
    server.routes["/f"] = lambda h, s: h.serve(DATA, s)
    dest = tmp_path / "model.pth"
    with pytest.raises(fetch.ChecksumError, match="size mismatch"):
        get(server.url("/f"), dest, expected_size=len(DATA) + 1)
    assert leftovers(dest) == []


def test_existing_good_dest_is_not_downloaded_again(server: Server, tmp_path: Path) -> None:
    server.routes["/f"] = lambda h, s: h.serve(DATA, s)
    dest = tmp_path / "model.pth"
    dest.write_bytes(DATA)
    r = get(server.url("/f"), dest, sha256=DIGEST, expected_size=len(DATA))
    assert r.skipped and r.status == "present" and r.sha256 == DIGEST and r.attempts == 0
    assert server.seen == []


def test_existing_bad_dest_is_replaced(server: Server, tmp_path: Path) -> None:
    server.routes["/f"] = lambda h, s: h.serve(DATA, s)
    dest = tmp_path / "model.pth"
    dest.write_bytes(b"old")
    r = get(server.url("/f"), dest, sha256=DIGEST)
    assert not r.skipped and dest.read_bytes() == DATA


def test_gives_up_after_bounded_retries(server: Server, tmp_path: Path) -> None:
    server.routes["/f"] = lambda h, s: h.reply(503, b"busy", "text/plain")
    dest = tmp_path / "model.pth"
    with pytest.raises(fetch.FetchError, match=r"HTTP 503.*gave up after 3 attempt") as info:
        get(server.url("/f"), dest, retries=2)
    assert not isinstance(info.value, fetch.ChecksumError)
    assert len(server.hits("/f")) == 3 and not dest.exists()


def test_http_404_is_not_retried(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "model.pth"
    with pytest.raises(fetch.FetchError, match="HTTP 404"):
        get(server.url("/missing"), dest, retries=3)
    assert len(server.seen) == 1 and not dest.exists()


def test_connection_refused_is_a_fetch_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(fetch.FetchError, match="gave up after 2 attempt"):
        get(f"http://127.0.0.1:{port}/f", tmp_path / "x", retries=1)


def test_bad_arguments_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="64 hexadecimal"):
        fetch.download("http://127.0.0.1:1/f", tmp_path / "x", sha256="abc")
    with pytest.raises(InputError, match="not an http"):
        fetch.download("ftp://127.0.0.1/f", tmp_path / "x")
    with pytest.raises(InputError, match="absolute local path"):
        fetch.download("file:relative/path.pth", tmp_path / "x")
    with pytest.raises(InputError, match="absolute local path"):
        fetch.download("file://otherhost/etc/passwd", tmp_path / "x")
    with pytest.raises(InputError, match="folders are not supported"):
        fetch.download("https://drive.google.com/drive/folders/1AbCdEfGhIjK", tmp_path / "x")


# --------------------------------------------------------------------------------------------------
# Google Drive


@pytest.mark.parametrize(
    "url",
    [
        f"https://drive.google.com/file/d/{FILE_ID}/view?usp=sharing",
        f"https://drive.google.com/file/d/{FILE_ID}",
        f"https://drive.google.com/open?id={FILE_ID}",
        f"https://drive.google.com/uc?id={FILE_ID}&export=download",
        f"https://drive.usercontent.google.com/download?id={FILE_ID}&export=download",
    ],
)
def test_drive_links_are_recognised(url: str) -> None:
    assert _gdrive.drive_file_id(url) == FILE_ID
    assert _gdrive.drive_download_url(FILE_ID) == f"https://drive.google.com/uc?export=download&id={FILE_ID}"


def test_non_drive_links_are_left_alone() -> None:
    assert _gdrive.drive_file_id("https://example.org/file/d/1234567890abc/view") is None


@pytest.fixture
def drive(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """Point the Drive hosts at the loopback server: /gd is drive.google.com, /uc-host the other."""
    monkeypatch.setitem(_gdrive.DRIVE_BASES, "drive", server.url("/gd"))
    monkeypatch.setitem(_gdrive.DRIVE_BASES, "usercontent", server.url("/uc-host"))
    return server


def drive_link() -> str:
    return f"https://drive.google.com/file/d/{FILE_ID}/view?usp=sharing"


def html(title: str, body: str = "") -> bytes:
    return f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>".encode()


def test_drive_old_cookie_flow(drive: Server, tmp_path: Path) -> None:
    def uc(h: Handler, s: Seen) -> None:
        assert s.query["id"] == [FILE_ID]
        if s.query.get("confirm") == ["T0k3n"] and "download_warning_1234_" in (s.cookie or ""):
            h.serve(DATA, s)
        else:
            cookie = f"download_warning_1234_{FILE_ID}=T0k3n; Path=/"
            h.reply(200, html("Google Drive - Virus scan warning"), "text/html", {"Set-Cookie": cookie})

    drive.routes["/gd/uc"] = uc
    dest = tmp_path / "crossvis.pth"
    r = get(drive_link(), dest, sha256=DIGEST)
    assert dest.read_bytes() == DATA and r.sha256 == DIGEST
    assert [s.query.get("confirm") for s in drive.hits("/gd/uc")] == [None, ["T0k3n"]]


def test_drive_confirm_link_flow(drive: Server, tmp_path: Path) -> None:
    def uc(h: Handler, s: Seen) -> None:
        if s.query.get("confirm") == ["AbC-1_x"]:
            h.serve(DATA, s)
        else:
            link = f'<a id="uc-download-link" href="/gd/uc?export=download&amp;confirm=AbC-1_x&amp;id={FILE_ID}">Download anyway</a>'
            h.reply(200, html("Google Drive - Virus scan warning", link), "text/html; charset=utf-8")

    drive.routes["/gd/uc"] = uc
    dest = tmp_path / "crossvis.pth"
    assert get(drive_link(), dest).sha256 == DIGEST
    assert dest.read_bytes() == DATA


def download_form(h: Handler, s: Seen) -> None:
    form = (
        f'<form id="download-form" action="{h.server.url("/uc-host/download")}" method="get">'
        '<input type="submit" id="uc-download-link" value="Download anyway"/>'
        f'<input type="hidden" name="id" value="{FILE_ID}">'
        '<input type="hidden" name="export" value="download">'
        '<input type="hidden" name="confirm" value="t">'
        '<input type="hidden" name="uuid" value="0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"></form>'
    )
    h.reply(200, html("Google Drive - Virus scan warning", form), "text/html; charset=utf-8")


def test_drive_download_form_flow_resumes_on_the_second_host(drive: Server, tmp_path: Path) -> None:
    calls: list[Seen] = []

    def usercontent(h: Handler, s: Seen) -> None:
        calls.append(s)
        expected = {"id": [FILE_ID], "export": ["download"], "confirm": ["t"]}
        assert {k: s.query.get(k) for k in expected} == expected and s.query["uuid"][0].startswith("0f1e")
        h.serve(DATA, s, cut_after=70_000 if len(calls) == 1 else None)

    drive.routes["/gd/uc"] = download_form
    drive.routes["/uc-host/download"] = usercontent
    dest = tmp_path / "cico.pth"
    r = get(drive_link(), dest, sha256=DIGEST)
    assert dest.read_bytes() == DATA and r.resumed_from == 70_000
    assert [s.range for s in calls] == [None, "bytes=70000-"]
    assert len(drive.hits("/gd/uc")) == 2  # the confirm page is asked again on the retry


def test_drive_quota_page_is_a_clear_error_and_nothing_is_saved(drive: Server, tmp_path: Path) -> None:
    page = html(
        "Google Drive - Quota exceeded", "<p>Too many users have viewed or downloaded this file recently.</p>"
    )
    drive.routes["/gd/uc"] = lambda h, s: h.reply(200, page, "text/html")
    dest = tmp_path / "crossvis.pth"
    with pytest.raises(fetch.FetchError, match="Quota exceeded") as info:
        get(drive_link(), dest, sha256=DIGEST, retries=3)
    assert drive_link() in str(info.value) and "HTML page instead of the file" in str(info.value)
    assert leftovers(dest) == [] and len(drive.seen) == 1  # not retried either


def test_drive_small_file_served_directly(drive: Server, tmp_path: Path) -> None:
    drive.routes["/gd/uc"] = lambda h, s: h.serve(DATA, s)
    dest = tmp_path / "small.pth"
    assert get(f"https://drive.google.com/open?id={FILE_ID}", dest).sha256 == DIGEST


def test_parse_drive_page_finds_script_confirm_token() -> None:
    page = _gdrive.parse_drive_page(
        '<html><script>var u="/uc?export=download\\u0026confirm=Zz9\\u0026id=x"</script>'
    )
    assert page.confirm_token == "Zz9" and page.title is None


# --------------------------------------------------------------------------------------------------
# Manifests and the subcommand


def visrepro(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    """Run ``visrepro fetch ...`` through the real dispatcher (adds the command if cli lacks it)."""
    if "fetch" not in cli.COMMANDS:
        monkeypatch.setitem(cli.COMMANDS, "fetch", ("benchmark.fetch", "download checkpoints/datasets"))
    return cli.main(["fetch", "--no-progress", "--timeout", "5", *argv])


def test_manifest_keeps_good_files_and_reports_failures(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fetch.time, "sleep", lambda s: None)
    server.routes["/good"] = lambda h, s: h.serve(DATA, s)
    server.routes["/bad"] = lambda h, s: h.serve(b"garbage", s)
    entries = [
        {"name": "broken", "url": server.url("/bad"), "dest": "ckpt/broken.pth", "sha256": DIGEST},
        {"name": "crossvis", "url": server.url("/good"), "dest": "ckpt/crossvis.pth", "sha256": DIGEST},
        {"name": "gone", "url": server.url("/missing"), "dest": "ckpt/gone.pth"},
    ]
    root = tmp_path / "root"
    with pytest.raises(fetch.ManifestFetchError) as info:
        fetch.fetch_manifest(entries, root, progress=False, timeout=5)
    err = info.value
    assert [r.name for r in err.results] == ["crossvis"]
    assert [name for name, _ in err.failures] == ["broken", "gone"]
    assert "2 of 3" in str(err) and "sha256 mismatch" in str(err) and "HTTP 404" in str(err)
    assert sorted(p.name for p in (root / "ckpt").iterdir()) == ["crossvis.pth"]

    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"entries": entries}))
    assert visrepro(monkeypatch, "--manifest", str(manifest), "--root", str(root)) == 1
    out, errout = capsys.readouterr()
    assert f"{DIGEST}  {root / 'ckpt/crossvis.pth'}" in out
    assert "broken" in errout and "gone" in errout
    assert len(server.hits("/good")) == 1  # the second run found it in place


def test_manifest_skips_present_files(server: Server, tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(DATA)
    entries = [{"name": "a", "url": server.url("/a"), "dest": "a.bin", "sha256": DIGEST, "size": len(DATA)}]
    [r] = fetch.fetch_manifest(entries, tmp_path, progress=False)
    assert r.skipped and r.name == "a" and server.seen == []


@pytest.mark.parametrize(
    ("entry", "expect"),
    [
        ({"name": "nourl", "dest": "a.pth"}, "entries[0] (nourl): missing 'url'"),
        (
            {"name": "sha", "url": "http://x.org/a", "dest": "a.pth", "sha256": "xyz"},
            "entries[0] (sha): sha256 must",
        ),
        (
            {"name": "up", "url": "http://x.org/a", "dest": "../a.pth"},
            "entries[0] (up): dest must stay inside",
        ),
        (
            {"name": "abs", "url": "http://x.org/a", "dest": "/etc/a.pth"},
            "entries[0] (abs): dest must be relative",
        ),
        (
            {"name": "typo", "url": "http://x.org/a", "dest": "a", "sha": DIGEST},
            "entries[0] (typo): unknown key(s) 'sha'",
        ),
        (
            {"name": "ftp", "url": "ftp://x.org/a", "dest": "a"},
            "entries[0] (ftp): not an http(s) or file URL",
        ),
        (
            {"name": "dir", "url": "http://x.org/a", "dest": "ckpt/"},
            "entries[0] (dir): dest must name a file",
        ),
    ],
)
def test_bad_manifest_exits_2_naming_file_and_entry(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    entry: dict[str, Any],
    expect: str,
) -> None:
    manifest = tmp_path / "bad.json"
    manifest.write_text(json.dumps([entry]))
    assert visrepro(monkeypatch, "--manifest", str(manifest), "--root", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert f"{manifest}: {expect}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_manifest_not_a_list_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="JSON list of entries"):
        fetch.parse_manifest({"files": []}, file="m.json")
    e = {"name": "a", "url": "http://x.org/a", "dest": "a"}
    with pytest.raises(InputError, match=r"entries\[1\] \(a\): duplicate name"):
        fetch.parse_manifest([e, e], file="m.json")


def test_cli_single_url(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.routes["/f"] = lambda h, s: h.serve(DATA, s)
    out = tmp_path / "m.pth"
    assert visrepro(monkeypatch, server.url("/f"), "--out", str(out), "--sha256", DIGEST) == 0
    assert capsys.readouterr().out == f"{DIGEST}  {out}\n" and out.read_bytes() == DATA
    wrong = "0" * 64
    assert visrepro(monkeypatch, server.url("/f"), "--out", str(tmp_path / "n.pth"), "--sha256", wrong) == 1
    assert "sha256 mismatch" in capsys.readouterr().err and not (tmp_path / "n.pth").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["http://127.0.0.1:1/f"],  # no --out
        [],  # neither URL nor manifest
        ["http://127.0.0.1:1/f", "--out", "x", "--sha256", "nothex"],
        ["http://127.0.0.1:1/f", "--manifest", "m.json"],
    ],
)
def test_cli_bad_arguments_exit_2(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    assert visrepro(monkeypatch, *argv) == 2


def test_configure_and_run_directly(server: Server, tmp_path: Path) -> None:
    server.routes["/f"] = lambda h, s: h.serve(DATA, s)
    parser = argparse.ArgumentParser()
    fetch.configure(parser)
    args = parser.parse_args(
        [server.url("/f"), "--out", str(tmp_path / "f"), "--no-progress", "--timeout", "5"]
    )
    assert fetch.run(args) == 0 and (tmp_path / "f").read_bytes() == DATA


def test_progress_bar_on_a_terminal(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Tty()
    monkeypatch.setattr(fetch.sys, "stderr", term)
    server.routes["/f"] = lambda h, s: h.serve(DATA, s)
    get(server.url("/f"), tmp_path / "model.pth", progress=True, name="crossvis")
    shown = term.getvalue()
    assert "crossvis" in shown and "/300k" in shown  # total from Content-Length


# --------------------------------------------------------------------------------------------------
# A variant's official checkpoint (visrepro fetch --variant): the registry's links, tried in order

R50 = "crossvis_r50.ytvis2019"  # two Drive links in the registry, no sha256 known
R50_IDS = ("1qDFf-Fk2R67iyzwR1_WbZ3IfwYgAR5vu", "1zuBu4XpPlbCjh9jM00jPb5phk5jdl4la")


def _state_dict_bytes() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"model": {"backbone.w": torch.arange(6.0).view(2, 3)}}, buf)
    return buf.getvalue()


def _serve_ids(drive: Server, files: dict[str, bytes]) -> None:
    def uc(h: Handler, s: Seen) -> None:
        body = files.get(s.query["id"][0])
        if body is None:
            h.reply(404, b"no such file", "text/plain")
        else:
            h.serve(body, s)

    drive.routes["/gd/uc"] = uc


def test_variant_checkpoint_skips_a_link_that_is_not_a_checkpoint(
    drive: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = _state_dict_bytes()
    _serve_ids(drive, {R50_IDS[0]: b"PK\x05\x06" + bytes(18), R50_IDS[1]: ckpt})  # a zip, then the model
    out = tmp_path / "checkpoints" / f"{R50}.pth"
    assert visrepro(monkeypatch, "--variant", R50, "--out", str(out)) == 0
    digest = hashlib.sha256(ckpt).hexdigest()
    assert out.read_bytes() == ckpt and capsys.readouterr().out == f"{digest}  {out}\n"
    assert [s.query["id"] for s in drive.hits("/gd/uc")] == [[R50_IDS[0]], [R50_IDS[1]]]
    assert leftovers(out) == [out.name]
    # present and a checkpoint: verified, not downloaded again
    assert visrepro(monkeypatch, "--variant", R50, "--out", str(out)) == 0
    assert len(drive.seen) == 2
    # a recorded sha256 that the present file lacks: downloaded again, and refused by both links
    assert visrepro(monkeypatch, "--variant", R50, "--out", str(out), "--sha256", "0" * 64) == 1
    err = capsys.readouterr().err
    assert f"no link of {R50} gave its checkpoint" in err and err.count("sha256 mismatch") == 2
    assert out.read_bytes() == ckpt  # the file that was there is left as it was


def test_variant_checkpoint_fails_when_no_link_gives_one(
    drive: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve_ids(drive, {R50_IDS[0]: b"not a checkpoint"})
    out = tmp_path / "r50.pth"
    assert visrepro(monkeypatch, "--variant", R50, "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "not a checkpoint" in err and "HTTP 404" in err and R50_IDS[1] in err
    assert leftovers(out) == []


def test_variant_checkpoint_default_out_and_sha256(
    drive: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = _state_dict_bytes()
    _serve_ids(drive, {R50_IDS[0]: ckpt})
    monkeypatch.chdir(tmp_path)
    digest = hashlib.sha256(ckpt).hexdigest()
    assert visrepro(monkeypatch, "--variant", R50, "--sha256", digest) == 0
    assert (tmp_path / "checkpoints" / f"{R50}.pth").read_bytes() == ckpt


def test_variant_without_a_link_verifies_a_file_placed_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "cico_condinst_r101.ovis"  # the README gives no link for it
    out = tmp_path / f"{name}.pth"
    assert visrepro(monkeypatch, "--variant", name, "--out", str(out)) == 2
    assert f"no official checkpoint URL is known for {name}" in capsys.readouterr().err
    out.write_bytes(b"garbage")
    assert visrepro(monkeypatch, "--variant", name, "--out", str(out)) == 2
    assert "not the checkpoint of" in capsys.readouterr().err
    out.write_bytes(_state_dict_bytes())
    assert visrepro(monkeypatch, "--variant", name, "--out", str(out)) == 0
    wrong = "0" * 64
    assert visrepro(monkeypatch, "--variant", name, "--out", str(out), "--sha256", wrong) == 2
    assert f"sha256 is not {wrong}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--variant", "no_such.variant"],
        ["--variant", R50, "--size", "3"],
        ["--variant", R50, "--sha256", "nothex"],
        ["http://127.0.0.1:1/f", "--variant", R50],
        ["--manifest", "m.json", "--variant", R50],
    ],
)
def test_variant_bad_arguments_exit_2(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    assert visrepro(monkeypatch, *argv) == 2


# --------------------------------------------------------------------------------------------------
# file: URLs (the reference weights the repository ships)


def test_file_url_is_copied_verified_and_atomic(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(DATA)
    dest = tmp_path / "out" / "copy.bin"
    r = fetch.download(src.resolve().as_uri(), dest, sha256=DIGEST, progress=False)
    assert dest.read_bytes() == DATA and r.sha256 == DIGEST and r.size == len(DATA) and not r.skipped
    assert leftovers(dest) == [dest.name]
    # present and verified: not copied again
    assert fetch.download(src.resolve().as_uri(), dest, sha256=DIGEST, progress=False).skipped


def test_file_url_with_other_bytes_keeps_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(DATA[:-1] + b"\x00")
    dest = tmp_path / "out" / "copy.bin"
    with pytest.raises(fetch.ChecksumError, match="sha256"):
        fetch.download(src.resolve().as_uri(), dest, sha256=DIGEST, progress=False)
    assert leftovers(dest) == []
    with pytest.raises(fetch.FetchError, match="no such file"):
        fetch.download((tmp_path / "absent.bin").resolve().as_uri(), dest, progress=False)
    assert leftovers(dest) == []


def test_shipped_reference_weights_fetch_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The small models' registry entries name the weights the repository ships and their sha256;
    ``visrepro fetch --variant`` copies and verifies them, and refuses a file with other bytes."""
    from benchmark.registry import get_variant_cfg

    for name in ("crossvis_tiny.toyvis", "cico_yolact_tiny.toyvis"):
        cfg = get_variant_cfg(name)
        assert cfg.checkpoint_sha256 is not None
        out = tmp_path / f"{name}.pth"
        assert visrepro(monkeypatch, "--variant", name, "--out", str(out)) == 0
        assert hashlib.sha256(out.read_bytes()).hexdigest() == cfg.checkpoint_sha256
        assert capsys.readouterr().out == f"{cfg.checkpoint_sha256}  {out}\n"
    out.write_bytes(b"tampered")  # a present file with other bytes is replaced by the shipped one
    assert visrepro(monkeypatch, "--variant", name, "--out", str(out)) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == cfg.checkpoint_sha256
    wrong = "0" * 64  # a digest the shipped file lacks: refused, nothing kept
    assert visrepro(monkeypatch, "--variant", name, "--out", str(tmp_path / "w.pth"), "--sha256", wrong) == 1
    assert "sha256 mismatch" in capsys.readouterr().err and not (tmp_path / "w.pth").exists()
