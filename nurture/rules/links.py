"""Click and open tracking: links rewritten to /c/<token>, the optional open pixel, UTM tags, bot marks.

Links are rewritten per message after rendering (a regex over ~5 KB of HTML: microseconds), because the
token signs the delivery id. Our own links (unsubscribe, preferences, confirm) are never wrapped: a mail
scanner "clicking" them must not count as engagement, and they must work without a redirect.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_HREF = re.compile(r'(<a\b[^>]*?\bhref=")(https?://[^"]+)(")', re.IGNORECASE)
# Security gateways and link scanners that fetch every link in a message as it arrives.
SCANNER_AGENTS = ("bot", "spider", "crawler", "scanner", "proofpoint", "mimecast", "barracuda", "safelinks",
                  "urldefense", "symantec", "fireeye", "python-requests", "curl/", "headless")
INSTANT = timedelta(seconds=10)  # no person reads an email and clicks a link this fast


def track_links(html: str, own_base_url: str, wrap: Callable[[str], str]) -> str:
    """Every http(s) link in `html` that is not one of ours, replaced by `wrap(url)`."""

    def replace(match: re.Match[str]) -> str:
        url = match[2].replace("&amp;", "&")
        if url.startswith(own_base_url):
            return match[0]
        return f"{match[1]}{wrap(url)}{match[3]}"

    return _HREF.sub(replace, html)


def add_pixel(html: str, pixel_url: str) -> str:
    tag = f'<img src="{pixel_url}" width="1" height="1" alt="" style="display:block;border:0">'
    index = html.lower().rfind("</body>")
    return html[:index] + tag + html[index:] if index >= 0 else html + tag


def with_utm(url: str, tags: dict[str, str]) -> str:
    """`url` with UTM parameters added — never replacing ones the author already put there."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {key for key, _ in query}
    query += [(f"utm_{key}", value) for key, value in tags.items() if f"utm_{key}" not in present]
    return urlunsplit(parts._replace(query=urlencode(query)))


def looks_automated(user_agent: str | None, sent_at: datetime | None, now: datetime) -> bool:
    agent = (user_agent or "").lower()
    return not agent or any(word in agent for word in SCANNER_AGENTS) or (
        sent_at is not None and now - sent_at < INSTANT)
