"""Quoted-printable for messages built from a compiled template: the template's unchanging runs of lines are
encoded once per template version, and a message encodes only what it changed.

`binascii.b2a_qp` is C, but over a 13 KB email it was still the largest part of building it (~0.1 ms here,
more than the Jinja render). It encodes each line on its own (trailing whitespace before a line break and
the soft breaks at 76 columns depend only on that line), so a text cut at line breaks encodes to exactly
the bytes of the text encoded whole. `encode` cuts the rendered text around the runs found in it, takes
their bytes as they were encoded at compile time and encodes the rest; tests/test_message_building.py holds it to
byte equality with encoding the whole text.
"""

from __future__ import annotations

import binascii

Blocks = tuple[tuple[bytes, bytes], ...]  # (a run of whole lines in UTF-8, its quoted-printable bytes)

# Lines a message may change after rendering: links are rewritten for click tracking, the open pixel goes
# before </body>. A run holding one would never be found in a message, so such lines end runs.
_VOLATILE = ("{{", "{%", "{#", "href=", "</body")
_SHORTEST = 80  # a shorter run costs its search more than it saves
_HEAD = 32  # a run is searched for by its first bytes, then compared whole: finding a long needle is slow


def _normalised(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if b"\r" in data else data


def _span(data: bytes) -> bytes:
    # b2a_qp soft-wraps with bare LF when the input has no CRLF; SMTP wants CRLF everywhere.
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def static_blocks(source: str) -> Blocks:
    """The runs of whole lines of a template's source that hold no Jinja tag (nor anything tracking
    rewrites), each ending with its line break, in order, with their quoted-printable bytes."""
    runs: list[str] = []
    current: list[str] = []
    for line in source.replace("\r\n", "\n").replace("\r", "\n").split("\n")[:-1]:  # the last has no break
        if any(mark in line for mark in _VOLATILE):
            runs.append("".join(current))
            current = []
        else:
            current.append(line + "\n")
    runs.append("".join(current))
    return tuple((run.encode(), _span(run.encode())) for run in runs if len(run) >= _SHORTEST)


class Runs:
    """A compiled template part's runs: first those of its source (static_blocks), then, once it has built
    a few messages, the runs of whole lines those messages all had, as they came out of rendering and
    click tracking.

    The source cannot say which tags render the same for everyone: the brand's name, the support address,
    the postal address, a fixed link with an inline style hundreds of characters long. Three different
    messages can: a line they all carry is likely in the next one too, and a line that holds a token or a
    contact's name differs between them. What is learned is only ever used as the source's runs are (found
    whole at a line start in the message, else skipped), so a wrong guess costs a search, never a byte:
    for the starter thank-you email the part encoded per message fell from ~2,500 to ~1,000 characters."""

    LEARN_FROM = 3  # distinct messages whose common lines become the runs

    def __init__(self, blocks: Blocks = ()) -> None:
        self._use(blocks)
        self._common: set[bytes] | None = None
        self._last: bytes | None = None
        self._seen = 0

    def _use(self, blocks: Blocks) -> None:
        # One assignment (a reader sees the old runs or the new ones), each with whether a line of its
        # encoded bytes starts with "." (what SMTP's DATA must double: see encode_marked).
        self.plan = tuple((run, encoded, dot_line(encoded)) for run, encoded in blocks)

    @property
    def blocks(self) -> Blocks:
        return tuple((run, encoded) for run, encoded, _ in self.plan)

    def __bool__(self) -> bool:
        return bool(self.plan)

    @property
    def learning(self) -> bool:
        return self._seen < self.LEARN_FROM

    def learn(self, data: bytes) -> None:
        """Take one message's (normalised UTF-8) text into account; after the last one, swap the runs."""
        if data == self._last:  # the same message again (a preview, a resend): it says nothing new
            return
        lines = data.split(b"\n")[:-1]  # whole lines only: the last piece has no line break
        self._common = set(lines) if self._common is None else self._common.intersection(lines)
        self._last, self._seen = data, self._seen + 1
        if not self.learning:
            self._use(_runs_of(lines, self._common))
            self._common = self._last = None


def _runs_of(lines: list[bytes], common: set[bytes]) -> Blocks:
    """The runs of consecutive `lines` that are all in `common`, each with its line breaks, encoded."""
    runs: list[bytes] = []
    current: list[bytes] = []
    for line in lines + [None]:  # type: ignore[list-item]  (None: the end, closing the last run)
        if line is not None and line in common:
            current.append(line + b"\n")
        elif current:
            runs.append(b"".join(current))
            current = []
    return tuple((run, _span(run)) for run in runs if len(run) >= _SHORTEST)


def encode(text: str, blocks: Blocks | Runs = ()) -> bytes:
    """`text` quoted-printable with CRLF line ends. Each of `blocks` found at a line start (in order, after
    the previous one found) is taken as encoded already; a block the message does not have is skipped."""
    return encode_marked(text, blocks)[0]


def encode_marked(text: str, blocks: Blocks | Runs = ()) -> tuple[bytes, bool]:
    """`encode`, and whether a line of the result starts with "." — known for the runs from when they were
    encoded, looked for only in what this message encoded itself: the SMTP client then need not scan the
    whole message for the lines DATA must dot-stuff (~12 µs over 13 KB)."""
    data = _normalised(text.encode("utf-8"))
    if isinstance(blocks, Runs):
        if blocks.learning:
            blocks.learn(data)
        plan = blocks.plan
    else:
        plan = tuple((run, encoded, dot_line(encoded)) for run, encoded in blocks)
    encoded: list[bytes] = []
    cursor, dotted = 0, False
    for block, block_bytes, block_dotted in plan:
        at = data.find(block[:_HEAD], cursor)
        if at < 0 or (at > 0 and data[at - 1] != 10) or not data.startswith(block, at):  # 10: "\n"
            continue
        if at > cursor:  # every span and every block starts a line: they are cut at line breaks
            span = _span(data[cursor:at])
            encoded.append(span)
            dotted = dotted or dot_line(span)
        encoded.append(block_bytes)
        dotted = dotted or block_dotted
        cursor = at + len(block)
    span = _span(data[cursor:])
    encoded.append(span)
    return b"".join(encoded), dotted or dot_line(span)


def dot_line(encoded: bytes) -> bool:
    """Whether a line of `encoded` (which starts a line) starts with "."."""
    return encoded.startswith(b".") or b"\n." in encoded
