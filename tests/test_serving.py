"""The web process as it is deployed: gunicorn, started exactly the way the Procfile and `nurture dev` start
it, keeps answering while idle connections are open (what a browser's preconnects leave behind), and
creates no control socket at the one path every gunicorn of a user shares."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nurture.cli.devserver import gunicorn_command
from tests.conftest import ROOT, free_port, worker_env

# A failure bound, not a speed requirement: a sync worker held by an idle socket answers after its 30 s
# timeout; one that is not held answers at once.
ANSWER_TIMEOUT = 10
START_ATTEMPTS = 300  # x 0.1 s: gunicorn importing the app on a loaded machine


def procfile_web(port: int) -> list[str]:
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    return ["bash", "-c", line.removeprefix("web:").strip()]


def dev_web(port: int) -> list[str]:
    return gunicorn_command(f"127.0.0.1:{port}")


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_TIMEOUT)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def wait_until_serving(process: subprocess.Popen, port: int) -> None:
    for _ in range(START_ATTEMPTS):
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else "gunicorn exited"
        try:
            if get(port, "/healthz") == 200:
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail("gunicorn did not start serving")


@pytest.fixture(params=[procfile_web, dev_web], ids=["Procfile", "nurture dev"])
def served(request: pytest.FixtureRequest, project: Path, sqlite_url: str,
           tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """(port, home) of a gunicorn started the way the Procfile or `nurture dev` starts it."""
    port, home, cwd = free_port(), tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = worker_env(project, sqlite_url, PORT=str(port), HOME=str(home),
                     PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    process = subprocess.Popen(request.param(port), env=env, cwd=cwd, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_serving(process, port)
        yield port, home
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def test_it_answers_while_two_idle_connections_are_open(served: tuple[int, Path]) -> None:
    port, _ = served
    idle = [socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT) for _ in range(2)]
    try:
        assert [get(port, "/healthz") for _ in range(3)] == [200, 200, 200]
    finally:
        for sock in idle:
            sock.close()


def test_it_leaves_no_control_socket_at_the_shared_path(served: tuple[int, Path], tmp_path: Path) -> None:
    _, home = served
    assert not (home / ".gunicorn").exists()
    assert not list((tmp_path / "cwd").iterdir())
