"""Fetch one file over HTTP(S) safely: quiet, complete or not at all.

Shared by the weights (`weights.download_file`: Keras' ImageNet files, md5-checked; every chapter that
loads them) and the reader's photo (`images.photo` with a URL, decoded before it is kept; every chapter
that shows a photo).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

PROBE_TIMEOUT = 3.0  # seconds; an offline machine answers at once, a firewalled one within this
DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte before a download is given up
CHUNK = 1 << 20  # bytes read, hashed and written at a time


class DownloadError(ValueError):
    """A download failed; the message names the URL and what went wrong; `status` is the HTTP status
    code when the server answered with an error (404 …), else None."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def size_in_words(n: int) -> str:
    """Bytes in words, decimal units as download pages use: '58.9 MB', '35.4 kB', '12 bytes'."""
    if n >= 10**6:
        return f"{n / 10**6:.1f} MB"
    return f"{n / 10**3:.1f} kB" if n >= 10**3 else f"{n} bytes"


def unreachable(url: str) -> str | None:
    """Why the host of `url` cannot be reached, in words, or None when it answers: connects once
    (within PROBE_TIMEOUT) so that an offline machine fails at once, not after DOWNLOAD_TIMEOUT."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT).close()
    except OSError as err:  # in words: "[Errno -2] Name or service not known" says little to a reader
        if isinstance(err, socket.gaierror):
            return "no network (the name does not resolve)"
        if isinstance(err, TimeoutError):
            return f"no answer within {PROBE_TIMEOUT:g} s"
        return err.strerror or str(err)
    return None


def download(
    url: str,
    local: Path,
    *,
    md5: str | None = None,
    check: Callable[[Path, str], None] | None = None,
    name: str | None = None,
) -> Path:
    """Fetch `url` into `local` and print ONE line (what, how big, from where, how long); no progress bar.

    The bytes go to a temporary file beside `local` (hashed as they arrive when `md5` is given) and are
    renamed into place only when they are all there (the Content-Length, where the server sends one), the
    md5 matches, and `check(temporary_path, content_type)` returns without raising. On any failure
    (network error, transfer cut short, wrong md5, a failed check, an interrupt) nothing is left behind:
    `DownloadError` names the URL and the problem; an exception raised by `check` passes through as it is.
    `name` is what the printed line calls the file (default: `local.name`).
    """
    name, host = name or local.name, urlsplit(url).hostname
    start = time.perf_counter()
    part = None
    try:
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, part = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".part", dir=local.parent)
        digest, size = hashlib.md5(), 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            announced = response.headers.get("Content-Length")
            content_type = response.headers.get_content_type() if "Content-Type" in response.headers else ""
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
                if md5 is not None:
                    digest.update(chunk)
                size += len(chunk)
        if announced is not None and size != int(announced):  # urllib returns a cut transfer as a short one
            raise DownloadError(f"download of {url} was cut short: {size:,} of {int(announced):,} bytes arrived")
        if md5 is not None and digest.hexdigest() != md5:
            raise DownloadError(f"download of {url} failed its hash check: md5 is {digest.hexdigest()}, not {md5}")
        if check is not None:
            check(Path(part), content_type)
        os.replace(part, local)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"download of {url} failed: HTTP {err.code} {err.reason}", err.code) from None
    except urllib.error.URLError as err:
        raise DownloadError(f"download of {url} failed: {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:  # timeouts, resets, a full disk, a broken response
        raise DownloadError(f"download of {url} failed: {err or type(err).__name__}") from None
    finally:
        if part is not None:
            Path(part).unlink(missing_ok=True)  # already gone when the rename succeeded
    print(f"Downloaded {name} ({size_in_words(size)}) from {host} in {time.perf_counter() - start:.1f} s", flush=True)
    return local
