"""What every command shares: one clear line and an exit code for a failure, and the runtime built once."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from nurture.config import ConfigError, startup_settings
from nurture.runtime import build_runtime
from nurture.store.db import upgrade


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"nurture: {message}", err=True)
    sys.exit(code)


def with_runtime(command: Callable[..., Any]) -> Callable[..., Any]:
    """Build the runtime (settings read once, strictly) and migrate the database before the command runs."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            rt = build_runtime(startup_settings())
        except ConfigError as exc:
            fail(f"configuration error: {exc}", 2)
        upgrade(rt.db)
        return command(rt, *args, **kwargs)

    return wrapper
