"""Reading settings (`load_settings`: no side effects) and the start-up step that may write files
(`startup_settings`: the embedded setup's secrets, then the settings)."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values
from pydantic import ValidationError

from nurture.config.errors import SECRETS, from_validation
from nurture.config.settings import Settings

# The starter content's sender: who the demo studio is (BRAND_NAME, MAIL_FROM, POSTAL_ADDRESS). Any
# variable may be set there; the environment wins over it.
BRAND_FILE = "brand.env"


def project_paths(env: Mapping[str, str], root: Path | None = None) -> tuple[Path, Path]:
    """(project folder, local state folder): NURTURE_ROOT, else `root`, else the working directory; VAR_DIR,
    else the project's var/."""
    project = Path(env.get("NURTURE_ROOT") or root or Path.cwd()).resolve()
    return project, Path(env.get("VAR_DIR") or project / "var")


def _brand_values(project: Path) -> dict[str, str]:
    path = project / BRAND_FILE
    return {name: value for name, value in dotenv_values(path).items() if value} if path.is_file() else {}


def load_settings(env: Mapping[str, str] | None = None, root: Path | None = None) -> Settings:
    """Build `Settings` from `env` (default: the process environment), the project's brand.env under it,
    and the secrets kept in VAR_DIR. Writes nothing. Raises `ConfigError` naming the first bad variable."""
    given = {name: value for name, value in (os.environ if env is None else env).items() if value != ""}
    project, var_dir = project_paths(given, root)
    values = {**_brand_values(project), **given, "NURTURE_ROOT": project, "VAR_DIR": var_dir}
    try:
        return Settings(_secrets_dir=var_dir if var_dir.is_dir() else None, **values)
    except ValidationError as exc:
        raise from_validation(exc) from None


def write_missing_secrets(env: Mapping[str, str] | None = None, root: Path | None = None) -> list[Path]:
    """Generate VAR_DIR/secret_key and VAR_DIR/api_key where the environment sets no SECRET_KEY or API_KEY
    and the file is missing, so the embedded setup never asks a newcomer for a secret. Returns the files
    written (mode 0600)."""
    env = os.environ if env is None else env
    _, var_dir = project_paths(env, root)
    written = []
    for name in SECRETS:
        path = var_dir / name.lower()
        if not env.get(name) and not path.exists() and _create_once(path, secrets.token_urlsafe(32) + "\n"):
            written.append(path)
    return written


def _create_once(path: Path, text: str) -> bool:
    """Write `path` whole or not at all. When web and worker start together, the second keeps the first's
    key instead of replacing it (links signed with a lost key stop working), and never reads a half-written
    file: the key is written aside and linked into place, which fails if the name exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.link(aside, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(aside)


def startup_settings(env: Mapping[str, str] | None = None, root: Path | None = None) -> Settings:
    """What a process does when it starts (web, worker, `nurture` commands, `nurture dev`): write the
    missing secret files, then read the settings."""
    write_missing_secrets(env, root)
    return load_settings(env, root)
