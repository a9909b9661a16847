"""`nurture dev` (what `make run` runs): web, worker and tick together on embedded defaults.

Redis comes from REDIS_URL, else one already answering on localhost:6379, else a private redis-server
started here with its data under var/redis/. Ctrl-C stops everything this started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from sqlmodel import Session

from nurture.config import ConfigError, Settings, load_settings, write_missing_secrets
from nurture.store.console import count_users
from nurture.store.db import make_engine, upgrade

# Threads, not sync workers: a sync worker is held by one connection until it sends a request, so two idle
# sockets (a browser's preconnects) stop a 2-worker site for the 30 s timeout. A gthread worker gives a new
# connection at most a few seconds of a thread before parking it in its poller. The control socket is off:
# its default path is one per user, shared by every gunicorn on the machine. The Procfile says the same.
GUNICORN_OPTIONS = ("--worker-class", "gthread", "--workers", "2", "--threads", "8", "--no-control-socket")

INSTALL_HINT = "no Redis found: install one with `sudo apt-get install -y redis-server` (or set REDIS_URL)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_answers(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
    except (RedisError, OSError, ValueError):
        return False


def start_private_redis(var_dir: Path) -> tuple[str, subprocess.Popen] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    data = var_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "60 1",
         "--appendonly", "no", "--logfile", str(data / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        if redis_answers(url):
            return url, process
        time.sleep(0.1)
    process.terminate()
    return None


def find_redis(settings: Settings) -> tuple[str, subprocess.Popen | None] | None:
    if settings.redis_url:
        return (settings.redis_url, None) if redis_answers(settings.redis_url) else None
    if redis_answers("redis://localhost:6379/0"):
        return "redis://localhost:6379/0", None
    started = start_private_redis(settings.var_dir)
    return started


def gunicorn_command(bind: str) -> list[str]:
    """The web process: gunicorn (from this interpreter's environment) serving the app factory."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return [str(gunicorn), "--bind", bind, *GUNICORN_OPTIONS, "--access-logfile", "-", "nurture.web:create_app()"]


def run(port: int) -> int:
    try:
        generated = write_missing_secrets()  # the embedded setup asks a newcomer for no secret
        settings = load_settings()
    except ConfigError as exc:
        print(f"nurture: configuration error: {exc}", file=sys.stderr)
        return 2
    found = find_redis(settings)
    if found is None:
        print(f"nurture: {INSTALL_HINT}" if not settings.redis_url else
              f"nurture: REDIS_URL={settings.redis_url} does not answer", file=sys.stderr)
        return 1
    redis_url, private_redis = found
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with Session(engine) as session:
        accounts = count_users(session)
    env = {**os.environ, "REDIS_URL": redis_url, "NURTURE_ROOT": str(Path.cwd()),
           "BASE_URL": os.environ.get("BASE_URL", f"http://localhost:{port}")}
    children = [
        subprocess.Popen(gunicorn_command(f"127.0.0.1:{port}"), env=env),
        subprocess.Popen([sys.executable, str(Path.cwd() / "worker.py")], env=env),
    ]
    print_banner(settings, port, redis_url, private_redis is not None, generated, accounts)
    return supervise(children, private_redis)


def print_banner(settings: Settings, port: int, redis_url: str, private: bool, generated: list[Path],
                 accounts: int = 0) -> None:
    base = f"http://localhost:{port}"
    login = (f"log in with your account ({accounts} exist: .venv/bin/nurture users list)" if accounts else
             "no accounts yet: create the first with .venv/bin/nurture users add you@example.com")
    secrets = f"\n    generated    {', '.join(map(str, generated))} (keep them: links are signed with them)" \
        if generated else ""
    print(f"""
  nurture is running
    console      {base}/   the lifecycle map; {login}
    signup form  {base}/forms/beginners-guide   (embeds: .venv/bin/nurture forms snippet beginners-guide)
    health       {base}/healthz
    API          curl -H "Authorization: Bearer $(cat {settings.var_dir}/api_key)" \\
                      -H 'Content-Type: application/json' {base}/api/contacts \\
                      -d '{{"email": "ann@example.com", "first_name": "Ann", "sequence": "lead-nurture"}}'
    or           .venv/bin/nurture contacts add ann@example.com --name "Ann Lee" --sequence lead-nurture
    email        {"written to " + str(settings.outbox_dir) if settings.email_backend == "outbox" else "sent by SMTP"}
    database     {settings.database_url}
    redis        {redis_url}{" (private, data in var/redis)" if private else ""}
    queue        {settings.queue_name}{secrets}
  Ctrl-C stops everything.
""", flush=True)


def supervise(children: list[subprocess.Popen], private_redis: subprocess.Popen | None) -> int:
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                print(f"nurture: {child.args[0]} exited with {child.returncode}; stopping", file=sys.stderr)
                stopping, code = True, 1
        time.sleep(0.3)
    for process in [*children, *([private_redis] if private_redis else [])]:
        if process.poll() is None:
            process.terminate()
    for process in [*children, *([private_redis] if private_redis else [])]:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    print("nurture: stopped", flush=True)
    return code
