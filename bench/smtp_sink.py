"""A local SMTP sink for the dispatch benchmark: an aiosmtpd server that accepts every message, counts it,
and throws the bytes away. It offers PIPELINING (RFC 2920), as the relays nurture sends through do.

Runs in a process of its own (so its CPU is not the benchmark's), and keeps its counters in shared memory
(`multiprocessing.Value`) that the benchmark reads:

    count     messages accepted (250 sent back), in total
    distinct  distinct recipients seen, in total

`bench/dispatch.py` starts it with `start_sink()`. On its own, for poking at it by hand:

    python bench/smtp_sink.py --port 2525      # prints the count every second; Ctrl-C to stop
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class CountingHandler:
    """aiosmtpd handler: count, remember the recipient, keep the first message's bytes (for sizing), drop
    the rest."""

    def __init__(self, count: Any, distinct: Any, sample_path: str | None) -> None:
        self.count = count
        self.distinct = distinct
        self.sample_path = sample_path
        self.seen: set[str] = set()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001, ANN201
        """PIPELINING offered, as Postfix, Exim and the big relays offer it (aiosmtpd reads pipelined
        commands in order, but does not say so itself). smtplib ignores it; nurture's client uses it."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        if self.sample_path is not None:
            Path(self.sample_path).write_bytes(envelope.original_content or envelope.content)
            self.sample_path = None
        new = 0
        for rcpt in envelope.rcpt_tos:
            if rcpt not in self.seen:
                self.seen.add(rcpt)
                new += 1
        # The handler runs in the controller's event-loop thread; the lock is for the readers elsewhere.
        with self.count.get_lock():
            self.count.value += 1
        if new:
            with self.distinct.get_lock():
                self.distinct.value += new
        return "250 Message accepted for delivery"


def serve(host: str, port: int, count: Any, distinct: Any, ready: Any, stop: Any,
          sample_path: str | None = None) -> None:
    """The sink process's main: serve until `stop` is set or the parent goes away."""
    from aiosmtpd.controller import Controller

    # Ctrl-C reaches the whole foreground process group; the parent decides when the sink stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    handler = CountingHandler(count, distinct, sample_path)
    controller = Controller(handler, hostname=host, port=port, data_size_limit=10_000_000,
                            ready_timeout=30)
    controller.start()
    ready.set()
    try:
        while not stop.wait(0.5):
            if os.getppid() != parent:  # the benchmark died without stopping us
                break
    finally:
        controller.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Sink:
    host: str
    port: int
    process: multiprocessing.process.BaseProcess
    _count: Any
    _distinct: Any
    _stop: Any

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def count(self) -> int:
        return self._count.value

    @property
    def distinct(self) -> int:
        return self._distinct.value

    def close(self) -> None:
        if self.process.is_alive():
            self._stop.set()
            self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def start_sink(host: str = "127.0.0.1", port: int | None = None, sample_path: str | None = None) -> Sink:
    """Start the sink in a fresh (spawned) process and wait until it accepts connections."""
    ctx = multiprocessing.get_context("spawn")
    count = ctx.Value("q", 0)
    distinct = ctx.Value("q", 0)
    ready = ctx.Event()
    stop = ctx.Event()
    port = port or free_port()
    process = ctx.Process(target=serve, name="smtp-sink", daemon=True,
                          args=(host, port, count, distinct, ready, stop, sample_path))
    process.start()
    sink = Sink(host, port, process, count, distinct, stop)
    if not ready.wait(60) or not process.is_alive():
        sink.close()
        raise RuntimeError(f"the SMTP sink did not start on {host}:{port}")
    return sink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args(argv)
    sink = start_sink(args.host, args.port)
    print(f"sink listening on {sink.url}", flush=True)
    try:
        last = -1
        while sink.process.is_alive():
            time.sleep(1)
            if sink.count != last:
                last = sink.count
                print(f"count={last} distinct={sink.distinct}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
