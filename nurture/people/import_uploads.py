"""Where an uploaded CSV waits between its preview and its import: VAR_DIR/imports/<token>.csv.

On disk, not in the session: the session is a signed cookie (4 KB), and a file of 100,000 rows is ~8 MB.
The token is random (an upload cannot be guessed by another account) and is checked against its pattern
before it names a file, so no path can be made of it. Uploads are removed after their import, and any
left behind (a preview never imported) after a day.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

MAX_BYTES = 50 * 1024 * 1024  # ~600,000 rows of a typical export
KEEP_SECONDS = 24 * 3600
TOKEN = re.compile(r"^[A-Za-z0-9_-]{24}$")


class UnknownUpload(LookupError):
    """No upload by this token: never made, already imported, or cleared after a day."""


def folder(var_dir: Path) -> Path:
    return var_dir / "imports"


def save(var_dir: Path, data: bytes, name: str) -> str:
    """Keep the upload; its token. Clears uploads older than a day on the way."""
    target = folder(var_dir)
    target.mkdir(parents=True, exist_ok=True)
    _clear_old(target)
    token = secrets.token_urlsafe(18)
    (target / f"{token}.csv").write_bytes(data)
    (target / f"{token}.name").write_text(name[:200], encoding="utf-8")
    return token


def load(var_dir: Path, token: str) -> tuple[bytes, str]:
    """(the file's bytes, its name as uploaded). Raises UnknownUpload."""
    if not TOKEN.match(token):
        raise UnknownUpload(token)
    for suffix in (".csv", ".importing"):  # waiting, or taken by an import that runs now
        try:
            data = (folder(var_dir) / f"{token}{suffix}").read_bytes()
            return data, (folder(var_dir) / f"{token}.name").read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
    raise UnknownUpload(token)


def claim(var_dir: Path, token: str) -> tuple[bytes, str]:
    """Take the upload for its import: renamed first (atomic), so that of two clicks on Import only one
    runs it; the other finds no upload. Raises UnknownUpload."""
    if not TOKEN.match(token):
        raise UnknownUpload(token)
    waiting, taken = folder(var_dir) / f"{token}.csv", folder(var_dir) / f"{token}.importing"
    try:
        waiting.rename(taken)
    except FileNotFoundError:
        raise UnknownUpload(token) from None
    return taken.read_bytes(), (folder(var_dir) / f"{token}.name").read_text(encoding="utf-8")


def remove(var_dir: Path, token: str) -> None:
    if TOKEN.match(token):
        for suffix in (".csv", ".importing", ".name"):
            (folder(var_dir) / f"{token}{suffix}").unlink(missing_ok=True)


def _clear_old(target: Path) -> None:
    cutoff = time.time() - KEEP_SECONDS  # the file's age on this disk: not the injected clock's business
    for path in target.glob("*.*"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
