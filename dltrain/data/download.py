"""Downloads that can be trusted: resumed with HTTP Range, verified by SHA-256, renamed atomically.

A file is fetched into ``NAME.part`` beside its target. An interrupted download keeps the part,
and the next call asks the server for the rest (``Range: bytes=N-``); a server that ignores the
range sends the whole file again, and the part starts over. The finished part is verified
(``content_sha256``: the SHA-256 of the gunzipped bytes, the same for every correct copy however
a mirror compressed it; or ``file_sha256`` of the file as served); a mismatch deletes it. Only a
verified file is renamed onto the target, so the cache never holds a partial or corrupt file.

Progress: ``fetch(progress=...)`` calls it as bytes arrive. Code that starts a download deep
inside loading (a ``dataset`` source in ``fit``) finds its callback in ``reporter(file)``, set
for a block of code with ``with reporting(callback):``, so the library never prints and the
data sources need no progress argument.
"""
import contextlib
import contextvars
import gzip
import hashlib
import os
import zlib
from pathlib import Path

from dltrain.errors import DataError

BLOCK = 1 << 16
USER_AGENT = "dltrain (https://github.com/dltrain)"

_reporting = contextvars.ContextVar("dltrain_download_progress", default=None)


@contextlib.contextmanager
def reporting(callback):
    """Within the block, downloads without a progress argument call ``callback(file, done,
    total)`` (None: no reporting)."""
    token = _reporting.set(callback)
    try:
        yield
    finally:
        _reporting.reset(token)


def reporter(file):
    """The ``progress(done, total)`` for a download of ``file`` under ``reporting``, or None."""
    callback = _reporting.get()
    return (lambda done, total: callback(file, done, total)) if callback else None


def cache_dir():
    """Where downloaded datasets live: $DLTRAIN_DATA_DIR, else ~/.cache/dltrain; a relative
    DLTRAIN_DATA_DIR is taken from the current directory (never from a config's folder)."""
    return Path(os.environ.get("DLTRAIN_DATA_DIR") or Path.home() / ".cache" / "dltrain").expanduser().absolute()


def digest(path, content=True, algorithm="sha256"):
    """SHA-256 (or ``algorithm``) of a file's bytes, or (content=True) of its gunzipped bytes
    when it is gzip."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as raw:
        gz = content and raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if gz else raw
        try:
            for block in iter(lambda: stream.read(1 << 20), b""):
                h.update(block)
        except (EOFError, OSError, zlib.error) as error:
            return f"unreadable ({error})"
    return h.hexdigest()


def verify(path, content_sha256=None, file_sha256=None, file_md5=None):
    """None when ``path`` matches its pinned hash, else a sentence saying how it differs."""
    if content_sha256:
        found = digest(path, content=True)
        return None if found == content_sha256 else \
            f"the SHA-256 of its content is {found}, expected {content_sha256}"
    if file_sha256:
        found = digest(path, content=False)
        return None if found == file_sha256 else f"its SHA-256 is {found}, expected {file_sha256}"
    if file_md5:
        found = digest(path, content=False, algorithm="md5")
        return None if found == file_md5 else f"its MD5 is {found}, expected {file_md5}"
    return None


def fetch(url, target, content_sha256=None, file_sha256=None, progress=None, timeout=60,
          file_md5=None):
    """Download ``url`` to ``target`` (resuming, verifying, atomic); return ``target``.

    ``progress(done, total)`` is called as bytes arrive (total None when the server does not say).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    _transfer(url, part, progress, timeout)
    problem = verify(part, content_sha256, file_sha256, file_md5)
    if problem:
        part.unlink(missing_ok=True)
        raise DataError(f"{url} failed verification: {problem}; the download was deleted",
                        fix="run again to download it afresh, or give another mirror.")
    os.replace(part, target)
    return target


def _transfer(url, part, progress, timeout):
    import http.client                # here: 30-45 ms of imports every command would pay otherwise
    import urllib.error
    import urllib.request

    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT,
                                                   **({"Range": f"bytes={offset}-"} if offset else {})})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:         # the part already holds the whole file
            return
        raise DataError(f"downloading {url} failed: HTTP {error.code} {error.reason}",
                        fix="check the name or mirror, or try again later.") from None
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"downloading {url} failed: {getattr(error, 'reason', error)}",
                        fix="check the network connection (or give a local `mirror:`), then "
                            "run again.") from None
    with response:
        resumed = offset and response.status == 206
        done = offset if resumed else 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        try:
            with open(part, "ab" if resumed else "wb") as f:
                for block in iter(lambda: response.read(BLOCK), b""):
                    f.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
                f.flush()
                os.fsync(f.fileno())
        except (OSError, ValueError, http.client.HTTPException) as error:
            raise DataError(f"downloading {url} stopped after {done} bytes ({error}); the part "
                            "is kept and the next run resumes it", fix="run again.") from None
    if total is not None and done < total:
        raise DataError(f"downloading {url} stopped after {done} of {total} bytes; the part is "
                        "kept and the next run resumes it", fix="run again.")
