"""Webhooks out: messages/s through nurture (fan-out from the Event table, claim by conditional UPDATE, sign,
POST, record the attempt) against a bare loop of urllib3 POSTs of the same bodies to the same local receiver,
measured in one sitting on SQLite. Not a target of issue 16; the figure says what the bookkeeping costs.

    .venv/bin/python bench/webhooks_out.py [--messages 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import log, machine, project_env, project_runtime  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from nurture.delivery import webhook_views, webhooks  # noqa: E402
from nurture.people.contacts import ContactInput, upsert_contact  # noqa: E402
from nurture.store.db import upgrade  # noqa: E402
from nurture.store.models import WebhookMessage  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Accept(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    n = parser.parse_args().messages
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/in"
    with tempfile.TemporaryDirectory() as tmp:
        env = project_env(Path(tmp), f"sqlite:///{tmp}/nurture.db", WEBHOOK_SECRET_CRM=SECRET,
                          WEBHOOKS_ALLOW_PRIVATE="true")
        (Path(env["NURTURE_ROOT"]) / "webhooks.yaml").write_text(f"endpoints:\n  - name: crm\n    url: {url}\n"
                                                 "    events: [contact.created]\n    secret_env: WEBHOOK_SECRET_CRM\n")
        rt = project_runtime(env)
        upgrade(rt.db)
        webhooks.deliver_due(rt)  # the endpoint's first sight
        with Session(rt.db) as session:
            for i in range(n):
                upsert_contact(session, ContactInput(email=f"c{i}@example.com"), rt.clock())
            session.commit()
        started = time.perf_counter()
        delivered = 0
        while delivered < n:
            counts = webhooks.deliver_due(rt, limit=n)
            if counts["failed"] or not any(counts.values()):
                raise SystemExit(f"not delivering: {counts}; {webhook_views.attempt_log(rt)[:1]}")
            delivered += counts["delivered"]
        ours = time.perf_counter() - started
        with Session(rt.db) as session:
            bodies = [m.body.encode() for m in session.exec(select(WebhookMessage))]
        import urllib3
        started = time.perf_counter()
        for body in bodies:  # the same bodies, one new connection each as nurture makes (no keep-alive pool)
            pool = urllib3.HTTPConnectionPool("127.0.0.1", server.server_address[1], maxsize=1)
            pool.urlopen("POST", "/in", body=body, headers={"content-type": "application/json"}, retries=False)
            pool.close()
        bare = time.perf_counter() - started
    server.shutdown()
    log(machine())
    print(f"webhooks out: {n / ours:.0f} messages/s through nurture, {n / bare:.0f}/s bare POSTs: "
          f"ratio {bare / ours:.2f}; {1000 * (ours - bare) / n:.2f} ms of bookkeeping a message")


if __name__ == "__main__":
    main()
