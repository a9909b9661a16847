"""P2 render: what rendering and building one starter email costs beyond the Jinja render itself.

    python bench/render.py [--template customer/thank-you] [--rounds 15] [--calls 300]

In one process, taking turns round after round (the median of the rounds is printed), it times the CPU
spent per message:

  jinja      the compiled subject, HTML and text templates rendered with a prepared context: the Jinja
             render alone, the part no design can skip.
  compose    what the send path calls for every email (`nurture.delivery.channels.email.compose_email`):
             the context and signed links, the render, click tracking, the headers and the MIME bytes,
             each call with a clock reading of its own, as the send path's.
  mime       the stdlib floor of serialising that message: both rendered parts quoted-printable encoded
             by `binascii.b2a_qp` (C) and joined; the headers and boundaries are left out of it.
  premailer  one premailer call on the rendered (not yet inlined) HTML: what a design that inlines CSS per
             message would pay on top of everything else.

Targets (issue 16): compose - jinja <= 0.1 ms + mime, and premailer / (compose - jinja) >= 25.
Each call gets its own contact and delivery id, so nothing is served from a per-message cache.
"""

from __future__ import annotations

import argparse
import binascii
import itertools
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from harness import interleaved, log, machine, project_env, project_runtime, summary

from nurture.content.rendering import flatten, inline_css
from nurture.delivery.channels.email import compose_email
from nurture.delivery.context import template_context
from nurture.rules.sequence import Sequence, Step
from nurture.runtime import Runtime
from nurture.store.models import Contact

FIRST_NAMES = ["Ann", "Bo", "Chidi", "Dana", "Eun-ji", "Farid", "Greta", "Hugo", "Ines", "Jae"]


def contacts(now: datetime, count: int) -> list[Contact]:
    return [Contact(id=i + 1, email=f"render{i:05d}@example.com", first_name=FIRST_NAMES[i % 10],
                    last_name=f"Render{i}", fields={"class_name": "Wheel throwing for beginners"}, tags=["bench"],
                    created_at=now, updated_at=now) for i in range(count)]


def find_step(rt: Runtime, template: str) -> tuple[Sequence, Step]:
    for sequence in rt.sequences.all():
        for step in sequence.steps:
            if step.channel == "email" and step.template == template:
                return sequence, step
    raise SystemExit(f"no email step of a loaded sequence uses template {template!r}")


def measure(rt: Runtime, sequence: Sequence, step: Step, rounds: int, calls: int) -> dict[str, float]:
    now = datetime.now(UTC)
    people = contacts(now, 1000)
    compiled = rt.catalog.email(step.template)
    subject = rt.catalog.subject(step.subject)
    contexts = itertools.cycle([template_context(rt, c, sequence, step, rt.signer.unsubscribe_token(c.id), c.id)
                                for c in people])
    composing = itertools.cycle(people)
    message = compose_email(rt, people[0], sequence, step, 1, now)
    rendered = rt.catalog.render_email(step.template, step.subject, next(contexts))
    # The naive design: the template flattened but not inlined, rendered, then premailer per message.
    assert rt.env.loader is not None
    plain = rt.env.from_string(flatten(f"{step.template}.html", lambda n: rt.env.loader.get_source(rt.env, n)[0]))
    plain_html = plain.render(next(contexts))

    def jinja() -> None:
        context = next(contexts)
        # A subject without Jinja syntax is the string itself (TemplateCatalog.subject): nothing to render.
        subject if isinstance(subject, str) else subject.render(context)
        compiled.html.render(context), compiled.text.render(context)

    def compose() -> None:
        contact = next(composing)
        # A clock reading per message, as the send path's: the catalog looks at the template's files once a
        # second of it (the same reading every time would look every time, like a frozen test clock).
        compose_email(rt, contact, sequence, step, contact.id, datetime.now(UTC))

    def mime() -> None:
        b"\r\n".join([binascii.b2a_qp(rendered.text.encode(), istext=True),
                      binascii.b2a_qp(rendered.html.encode(), istext=True)])

    log(f"render: {step.template}: a {len(message.data)}-byte message ({len(rendered.html)} characters of HTML, "
        f"{len(rendered.text)} of text); {rounds} rounds")
    return interleaved({"jinja": (jinja, calls), "compose": (compose, calls), "mime": (mime, calls),
                        "premailer": (lambda: inline_css(plain_html), max(calls // 30, 5))}, rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", default="customer/thank-you", help="an email step's template")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300, help="calls per round (premailer: a 30th of it)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="nurture-bench-render-"))
    try:
        rt = project_runtime(project_env(tmp, f"sqlite:///{tmp / 'unused.db'}"))
        log(f"setup: {machine()}")
        sequence, step = find_step(rt, args.template)
        ms = measure(rt, sequence, step, args.rounds, args.calls)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    beyond = ms["compose"] - ms["jinja"]
    print(f"jinja render {ms['jinja']:.3f} ms; compose {ms['compose']:.3f} ms; beyond jinja {beyond:.3f} ms; "
          f"mime serialisation {ms['mime']:.3f} ms; premailer per message {ms['premailer']:.3f} ms")
    over = beyond - ms["mime"]
    cheaper = ms["premailer"] / beyond
    print(f"beyond jinja - mime = {over:.3f} ms (target <= 0.1); premailer / beyond jinja = {cheaper:.1f}x "
          f"(target >= 25)")
    summary("P2 render", f"{over:.3f} ms beyond Jinja + MIME, {cheaper:.0f}x cheaper than premailer per message",
            "<= 0.1 ms and >= 25x", over <= 0.1 and cheaper >= 25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
