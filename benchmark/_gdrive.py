"""Google Drive public links: file ids, the download endpoint and the large-file confirm page.

Drive serves small public files directly from ``/uc?export=download&id=<ID>``. For files too large
to be virus-scanned it answers an HTML page instead, and the file comes only from a follow-up
request carrying a confirm token. Over the years that token has been handed out three ways:

1. a ``download_warning*`` cookie whose value is the token (repeat the request with
   ``&confirm=<token>``);
2. a "download anyway" link in the page containing ``confirm=<token>``;
3. (current) a ``<form id="download-form" action="https://drive.usercontent.google.com/download">``
   with hidden inputs (``id``, ``export``, ``confirm``, ``uuid``): the file is at the form's action
   with those inputs as the query string.

This module only parses; the HTTP side is in :mod:`benchmark.fetch`. The host names are looked up
in :data:`DRIVE_BASES` at call time, so tests can point the whole flow at a loopback server.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

__all__ = [
    "DRIVE_BASES",
    "DrivePage",
    "confirm_url",
    "drive_download_url",
    "drive_file_id",
    "is_drive_url",
    "parse_drive_page",
]

#: Base URLs of the Drive front end and of the host the newer confirm form points at. Injectable:
#: tests replace these with a loopback server.
DRIVE_BASES: dict[str, str] = {
    "drive": "https://drive.google.com",
    "usercontent": "https://drive.usercontent.google.com",
}

#: Host names whose links are recognised as Drive links (besides those in :data:`DRIVE_BASES`).
_DRIVE_HOSTS = frozenset({"drive.google.com", "docs.google.com", "drive.usercontent.google.com"})
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{10,}$")
_FILE_PATH_RE = re.compile(r"^(?:/u/\d+)?/file/d/([^/?#]+)")
_CONFIRM_RE = re.compile(r"[?&]confirm=([0-9A-Za-z_-]+)")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _is_drive_origin(url: str) -> bool:
    scheme, host, port = _origin(url)
    if scheme in ("http", "https") and host in _DRIVE_HOSTS:
        return True
    return (scheme, host, port) in {_origin(b) for b in DRIVE_BASES.values()}


def is_drive_url(url: str) -> bool:
    """Whether ``url`` points at Google Drive (or at the configured stand-in for it)."""
    return _is_drive_origin(url)


def drive_file_id(url: str) -> str | None:
    """The file id of a Drive link, or ``None`` when ``url`` is not a Drive link at all.

    Recognises ``/file/d/<ID>/view?...`` (and ``/edit``, bare ``/file/d/<ID>``), ``/open?id=<ID>``,
    ``/uc?id=<ID>`` and ``drive.usercontent.google.com/download?id=<ID>``.

    Raises:
        ValueError: ``url`` is on Drive but is not a link to one file (a folder, a bad id).
    """
    if not _is_drive_origin(url):
        return None
    parts = urlsplit(url)
    match = _FILE_PATH_RE.match(parts.path)
    candidate: str | None
    if match:
        candidate = match.group(1)
    else:
        ids = parse_qs(parts.query).get("id")
        candidate = ids[0] if ids and parts.path.rstrip("/").endswith(("/open", "/uc", "/download")) else None
    if candidate is None:
        raise ValueError(f"not a link to a single Google Drive file (folders are not supported): {url}")
    if not _ID_RE.match(candidate):
        raise ValueError(f"Google Drive link with a malformed file id {candidate!r}: {url}")
    return candidate


def drive_download_url(file_id: str) -> str:
    """The direct-download endpoint of a Drive file."""
    return f"{DRIVE_BASES['drive'].rstrip('/')}/uc?export=download&id={quote(file_id, safe='')}"


@dataclass
class DrivePage:
    """What matters in an HTML page Drive answered instead of the file."""

    title: str | None = None
    form_action: str | None = None
    form_fields: list[tuple[str, str]] = field(default_factory=list)
    confirm_token: str | None = None


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = DrivePage()
        self._in_title = False
        self._title: list[str] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "title" and self.page.title is None:
            self._in_title = True
        elif tag == "form" and a.get("id") == "download-form" and self.page.form_action is None:
            self._in_form = True
            self.page.form_action = a.get("action", "")
        elif tag == "input" and self._in_form:
            if a.get("type", "text").lower() == "hidden" and a.get("name"):
                self.page.form_fields.append((a["name"], a.get("value", "")))
        elif tag == "a" and self.page.confirm_token is None:
            match = _CONFIRM_RE.search(a.get("href", ""))
            if match:
                self.page.confirm_token = match.group(1)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.page.title = " ".join("".join(self._title).split()) or None
        elif tag == "form":
            self._in_form = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)


def parse_drive_page(text: str) -> DrivePage:
    """Find the title, the ``download-form`` and any ``confirm=`` token in a Drive HTML page."""
    parser = _PageParser()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # HTMLParser is lenient; never let a odd page hide the real error
        pass
    page = parser.page
    if page.title is None and parser._title:
        page.title = " ".join("".join(parser._title).split()) or None
    if page.confirm_token is None:
        # Links built by scripts (``...\u0026confirm=XYZ``) are not <a> tags.
        unescaped = html.unescape(text).replace("\\u0026", "&").replace("\\u003d", "=")
        match = _CONFIRM_RE.search(unescaped)
        if match:
            page.confirm_token = match.group(1)
    return page


def confirm_url(page: DrivePage, page_url: str, file_id: str, cookies: dict[str, str]) -> str | None:
    """The follow-up URL that gets the file past the confirm page, or ``None`` if there is none.

    Args:
        page: The parsed HTML answer.
        page_url: Where the page came from (relative form actions are resolved against it).
        file_id: The Drive file id.
        cookies: Cookie name -> value for the Drive hosts (the ``download_warning*`` one matters).
    """
    if page.form_action is not None:
        action = urljoin(page_url, page.form_action or page_url)
        if _is_drive_origin(action) or _origin(action) == _origin(page_url):
            fields = list(page.form_fields)
            if not any(name == "id" for name, _ in fields):
                fields.insert(0, ("id", file_id))
            sep = "&" if urlsplit(action).query else "?"
            return f"{action}{sep}{urlencode(fields)}" if fields else action
    warning = sorted(
        (name, value) for name, value in cookies.items() if name.startswith("download_warning") and value
    )
    if warning:
        # Prefer the cookie for this file when there are several (a shared session).
        token = next((v for n, v in warning if n.endswith(file_id)), warning[0][1])
        return f"{drive_download_url(file_id)}&confirm={quote(token, safe='')}"
    if page.confirm_token:
        return f"{drive_download_url(file_id)}&confirm={quote(page.confirm_token, safe='')}"
    return None
