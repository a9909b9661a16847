"""What makes building a message cheap must leave the message as it was: runs of the compiled template
encoded once (nurture.content.qp) give exactly the bytes of encoding the whole rendered text, whatever the
message changed around them, and the link tokens are itsdangerous's own."""

from __future__ import annotations

import binascii
import random

from nurture.content.qp import Runs, encode, static_blocks
from nurture.delivery.channels.email import compose_email, track
from nurture.delivery.context import template_context
from nurture.store.models import Contact

PIECES = ["a", "b", " ", "\t", "=", ".", "é", "€", "\n", "\n", "\r\n", "\r", "x" * 70, '<a href="x">', "\x00",
          "\x7f", "  \n", "=\n", "\t\n", "From ", "-", "{{ name }}", "{% if x %}"]


def whole(text: str) -> bytes:
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    return binascii.b2a_qp(normalised.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def test_it_encodes_any_text_exactly_as_encoding_it_whole() -> None:
    chance = random.Random(16)
    for _ in range(3000):
        template = "".join(chance.choice(PIECES) for _ in range(chance.randint(0, 40)))
        # A "message": the template's text with some lines dropped, doubled or changed, as rendering does.
        lines = template.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        message = "\n".join(line if chance.random() < 0.7 else chance.choice(["", line * 2, "Ann = 1 "])
                            for line in lines)
        blocks = static_blocks(template)
        assert encode(message, blocks) == whole(message), (template, message)
        assert encode(template, blocks) == whole(template)


def test_runs_learned_from_messages_encode_any_text_exactly_as_encoding_it_whole() -> None:
    chance = random.Random(17)
    for _ in range(500):
        template = "".join(chance.choice(PIECES) for _ in range(chance.randint(0, 60)))
        lines = template.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        runs = Runs(static_blocks(template))
        for _ in range(8):  # three to learn from (some the same), then the learned runs in use
            message = "\n".join(line if chance.random() < 0.8 else chance.choice(["", line * 2, "Ann = 1 "])
                                 for line in lines)
            assert encode(message, runs) == whole(message), (template, message)


def test_it_learns_the_lines_every_message_had_and_not_those_that_differ() -> None:
    layout = "".join(f"<p style='margin:0; padding:0'>the brand's line {i}, the same for all</p>\n" for i in range(3))
    runs = Runs()
    for name in ("Ann", "Bo", "Ann", "Chidi"):  # the second Ann is the same message again: not counted
        message = f"{layout}<h1>Hi {name}</h1>\n{layout}end"
        assert encode(message, runs) == whole(message)
    assert not runs.learning
    assert [run for run, _ in runs.blocks] == [layout.encode(), layout.encode()]
    assert encode(f"{layout}<h1>Hi Dana</h1>\n{layout}", runs) == whole(f"{layout}<h1>Hi Dana</h1>\n{layout}")


def test_it_uses_the_runs_of_unchanging_lines_and_not_those_with_tags_or_links() -> None:
    source = "".join(f"<p>plain line {i} of the layout, long enough to be worth a run</p>\n" for i in range(4))
    source += '<a href="https://example.com">x</a>\n<p>{{ contact.first_name }}</p>\n' + source + "end"
    blocks = static_blocks(source)
    assert len(blocks) == 2
    assert all(b"{{" not in run and b"href=" not in run for run, _ in blocks)
    assert all(run.endswith(b"\n") for run, _ in blocks)


def test_a_starter_email_is_byte_for_byte_what_encoding_it_whole_gives(make_runtime, sqlite_url, clock) -> None:
    rt = make_runtime(sqlite_url, TRACK_CLICKS="true", TRACK_OPENS="true")
    now = clock()
    contact = Contact(id=7, email="ann@example.com", first_name="Zoë", last_name="Lee", created_at=now,
                      updated_at=now, fields={"class_name": "Wheel = throwing "})
    checked = 0
    for sequence in rt.sequences.all():
        for step in sequence.steps:
            if step.channel != "email" or not step.template:
                continue
            token = rt.signer.unsubscribe_token(41)
            context = template_context(rt, contact, sequence, step, token, 41)
            content = track(rt, rt.catalog.render_email(step.template, step.subject, context), 41, token)
            assert content.html_blocks, step.template  # the layout's runs are there to be used
            data = compose_email(rt, contact, sequence, step, 41, now).data
            assert whole(content.html) in data and whole(content.text) in data, step.template
            checked += 1
    assert checked >= 5


def test_the_per_message_tokens_are_itsdangerous_tokens_exactly() -> None:
    """The signer made once (nurture.rules.tokens._Dumps) must sign as itsdangerous does: links in mail
    already sent carry tokens made the old way."""
    from itsdangerous import URLSafeSerializer

    from nurture.rules.tokens import LinkSigner

    secret = "a-secret-key-of-some-length-0123456789"
    signer = LinkSigner(secret)
    for delivery_id in (0, 41, 10**12):
        url = f"https://example.com/{'p' * (delivery_id % 97)}?q=é&x=1"
        assert signer.unsubscribe_token(delivery_id) == URLSafeSerializer(secret, salt="nurture.unsubscribe").dumps(
            delivery_id)
        assert signer.click_token(delivery_id, url) == URLSafeSerializer(secret, salt="nurture.click").dumps(
            [delivery_id, url])
        assert signer.clicked(signer.click_token(delivery_id, url)) == (delivery_id, url)


def test_the_date_header_is_what_the_email_package_writes() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from nurture.content.mail import _date_header

    moment = datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    for _ in range(2000):
        assert _date_header(moment) == format_datetime(moment)
        moment += timedelta(days=3, hours=7, minutes=13, seconds=29)


def test_the_mailto_unsubscribe_subject_is_the_token_quoted() -> None:
    from urllib.parse import quote

    from nurture.delivery.channels.email import _unsubscribe_mailto
    from nurture.rules.tokens import LinkSigner

    signer = LinkSigner("a-secret-key-of-some-length-0123456789")
    for delivery_id in (0, 7, 41, 99_999, 10**12):
        token = signer.unsubscribe_token(delivery_id)
        assert _unsubscribe_mailto("help@x.example", token) == (
            f"mailto:help@x.example?subject={quote('unsubscribe ' + token)}")


def test_the_to_header_is_what_formataddr_writes() -> None:
    """A plain ASCII name skips formataddr (its two regexes); anything it would quote, escape or encode
    takes it. The same text either way."""
    from email.utils import formataddr

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from nurture.content.mail import _address, one_line

    @settings(max_examples=1000, deadline=None)
    @given(name=st.text(alphabet=st.sampled_from(["A", "b", " ", "é", '"', "\\", "(", ")", ".", ",", ":", ";", "<",
                                                  ">", "@", "[", "]", "\t", "\r", "\n", "-", "'", "ë"]), max_size=12),
           address=st.sampled_from(["ann@example.com", "o'hara+x@example.org", "a.b@c.d"]))
    def same(name: str, address: str) -> None:
        assert _address(name, address) == formataddr((one_line(name), one_line(address)), charset="utf-8")

    same()


def test_a_built_message_knows_whether_a_line_starts_with_a_dot() -> None:
    """OutgoingEmail.dot_free (the SMTP client then skips the dot-stuffing scan) is exactly "no line of
    the bytes starts with '.'", whatever the text, its runs, learned runs, soft breaks and headers."""
    from datetime import UTC, datetime

    from nurture.content.mail import Envelope, build_email
    from nurture.content.rendering import RenderedEmail
    from nurture.delivery.transports.smtp_client import dot_stuffed

    chance = random.Random(18)
    dots = PIECES + [".", ".x", "x" * 75 + ".", "x" * 74 + "=.", "\n.\n", ". ", "\n..\n"]
    envelope = Envelope(mail_from="Juniper <hello@juniper.test>", to_address="ann@example.com", to_name="Ann",
                        message_id="<1@juniper.test>", date=datetime(2026, 12, 6, tzinfo=UTC), list_id="x <y.z>")
    seen = set()
    for _ in range(400):
        template = "".join(chance.choice(dots) for _ in range(chance.randint(0, 50)))
        runs = Runs(static_blocks(template))
        for _ in range(5):
            lines = template.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            text = "\n".join(line if chance.random() < 0.8 else chance.choice(["", ".", line * 2]) for line in lines)
            built = build_email(envelope, RenderedEmail(subject="Hi", html=text, text=text[::-1],
                                                        html_blocks=runs, text_blocks=()))
            dotted = built.data.startswith(b".") or b"\n." in built.data
            assert built.dot_free is not dotted, (template, text)
            assert dot_stuffed(built.data, built.dot_free) == dot_stuffed(built.data)
            seen.add(dotted)
    assert seen == {True, False}
