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


def encode(text: str, blocks: Blocks = ()) -> bytes:
    """`text` quoted-printable with CRLF line ends. Each of `blocks` found at a line start (in order, after
    the previous one found) is taken as encoded already; a block the message does not have is skipped."""
    data = _normalised(text.encode("utf-8"))
    encoded: list[bytes] = []
    cursor = 0
    for block, block_bytes in blocks:
        at = data.find(block[:_HEAD], cursor)
        if at < 0 or (at > 0 and data[at - 1] != 10) or not data.startswith(block, at):  # 10: "\n"
            continue
        if at > cursor:
            encoded.append(_span(data[cursor:at]))
        encoded.append(block_bytes)
        cursor = at + len(block)
    encoded.append(_span(data[cursor:]))
    return b"".join(encoded)
