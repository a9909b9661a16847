"""What a text costs and what a reply means: segment counting, opt-out/in keywords, where a number is.

Pure: no I/O, no clock. Used by the SMS channel, the Twilio webhooks and `nurture check`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone
from phonenumbers.phonenumberutil import is_number_type_geographical

from nurture.rules.engine import next_in_window
from nurture.rules.sequence import Window
from nurture.rules.us_area_states import state_for

# --- Length and cost ---------------------------------------------------------------------------------------

# GSM 03.38: the basic table costs one 7-bit unit a character; the extension table two (escape + char).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
# A single GSM-7 text holds 160 characters; once split, each part carries a 7-byte header and holds 153.
# UCS-2 (UTF-16) holds 70, or 67 a part: one character outside GSM-7 makes the whole text UCS-2 and so
# costs about twice as many segments.
GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

# What to type instead of the characters word processors and phones slip in.
PLAIN_ALTERNATIVES = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u00a0": "a normal space", "\u2009": "a normal space", "\u202f": "a normal space",
    "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u2022": "-", "\u00b4": "'", "`": "'",
}


@dataclass(frozen=True)
class Segments:
    """How a text will be split and billed."""

    encoding: str  # "GSM-7" | "UCS-2"
    characters: int  # as the encoding counts them: GSM-7 septets, or UTF-16 code units
    count: int

    def __str__(self) -> str:
        return f"{self.count} segment{'s' * (self.count != 1)} ({self.encoding}, {self.characters} characters)"


@dataclass(frozen=True)
class OutgoingSms:
    """One finished text, as the transport gets it."""

    to: str  # E.164
    body: str
    message_id: str  # nurture's own id (the provider's comes back from send())
    status_callback: str | None = None  # where the provider reports queued/sent/delivered/failed
    locale: str | None = None  # whose localized template was used (None: the default file); for `why`

    @property
    def segments(self) -> Segments:
        return segments(self.body)


def is_gsm7(text: str) -> bool:
    return all(ch in GSM_BASIC or ch in GSM_EXTENDED for ch in text)


def _units(text: str, gsm: bool) -> list[int]:
    """The cost of each character in encoding units; a unit pair is never split across segments."""
    if gsm:
        return [2 if ch in GSM_EXTENDED else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]  # an emoji is a UTF-16 surrogate pair


def _parts(units: list[int], size: int) -> int:
    parts, used = 1, 0
    for unit in units:
        if used + unit > size:
            parts, used = parts + 1, 0
        used += unit
    return parts


def segments(text: str) -> Segments:
    """The encoding, length and number of segments of `text`, as carriers bill it."""
    gsm = is_gsm7(text)
    units = _units(text, gsm)
    single, part = (GSM_SINGLE, GSM_PART) if gsm else (UCS2_SINGLE, UCS2_PART)
    total = sum(units)
    count = 1 if total <= single else _parts(units, part)
    return Segments("GSM-7" if gsm else "UCS-2", total, count)


@dataclass(frozen=True)
class Ucs2Character:
    char: str
    name: str
    line: int  # first line it appears on (1-based)
    count: int

    @property
    def advice(self) -> str:
        plain = PLAIN_ALTERNATIVES.get(self.char)
        return f"use {plain if ' ' in plain else repr(plain)} instead" if plain else "remove it if you can"

    def __str__(self) -> str:
        shown = repr(self.char) if self.char.isspace() else self.char
        return f"{shown} ({self.name})"


def ucs2_characters(text: str) -> list[Ucs2Character]:
    """Every distinct character in `text` that GSM-7 cannot carry, in order of first appearance."""
    found: dict[str, list[int]] = {}
    for number, line in enumerate(text.splitlines() or [text], start=1):
        for ch in line:
            if ch not in GSM_BASIC and ch not in GSM_EXTENDED:
                found.setdefault(ch, [number, 0])[1] += 1
    return [Ucs2Character(ch, unicodedata.name(ch, f"U+{ord(ch):04X}"), line, count)
            for ch, (line, count) in found.items()]


OPT_OUT_NOTICE = "Reply STOP to opt out."


def with_opt_out_notice(body: str, brand: str, notice: str = OPT_OUT_NOTICE) -> str:
    """The first text to a number says who sends it and how to stop (CTIA): the brand is added unless the
    text already names it. `notice`: the same words in the contact's language."""
    prefix = "" if brand.casefold() in body.casefold() else f"{brand}: "
    return f"{body}\n\n{prefix}{notice}"


# --- Keywords ----------------------------------------------------------------------------------------------

# CTIA and the carriers' standard keywords (Twilio honours the same set by itself), and the French ones
# Canadian carriers honour (CWTA: ARRET, AIDE; French carriers use STOP itself).
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
                     "ARRET", "ARRÊT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO", "AIDE"})


def keyword(body: str) -> str | None:
    """"stop", "start" or "help" when the whole reply is one of those keywords, else None.

    Any case; surrounding spaces and a trailing full stop or exclamation mark are ignored ("Stop." is as
    clear as "STOP"). Only the whole message counts, as with Twilio: "don't stop" is a reply, not an opt-out.
    """
    word = body.strip().rstrip(".!").strip().upper()
    if word in OPT_OUT:
        return "stop"
    if word in OPT_IN:
        return "start"
    if word in HELP:
        return "help"
    return None


FRENCH_KEYWORDS = frozenset({"ARRET", "ARRÊT", "AIDE"})


def keyword_locale(body: str) -> str | None:
    """"fr" when the keyword itself is French (ARRET, AIDE): the language to answer a number nurture knows
    nothing else about in."""
    return "fr" if body.strip().rstrip(".!").strip().upper() in FRENCH_KEYWORDS else None


# --- Where a number is -------------------------------------------------------------------------------------

US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
    "Connecticut": "CT", "Delaware": "DE", "District of Columbia": "DC", "Washington D.C.": "DC",
    "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN",
    "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO",
    "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ",
    "New Mexico": "NM", "New York": "NY", "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH",
    "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA",
    "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "Washington State": "WA",  # what phonenumbers calls it for the area codes 206, 253, 360, 425, 509, 564
}
_STATE_CODES = frozenset(US_STATES.values())


def known_region(region: str) -> bool:
    """A country code (GB) or a US state (US-FL): what SMS_HOURS_BY_REGION may name."""
    country, _, state = region.partition("-")
    return country in phonenumbers.SUPPORTED_REGIONS and (not state or (country == "US" and state in _STATE_CODES))


def _parse(phone: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None


def regions_of(phone: str) -> tuple[str, ...]:
    """The regions a number belongs to, most specific first: ("US-FL", "US") for a Florida area code.

    US states come from the area code (phonenumbers' geocoding data, as a table of prefixes: see
    nurture.rules.us_area_states). That is what the stricter state laws go by too: Florida and Oklahoma
    presume an in-state area code means a resident.
    """
    number = _parse(phone)
    country = phonenumbers.region_code_for_number(number) if number else None
    if not country or country == "ZZ":
        return ()
    if country != "US":
        return (country,)
    state = _us_state(number) if number else ""
    return (f"US-{state}", "US") if state else ("US",)


def _us_state(number: phonenumbers.PhoneNumber) -> str:
    """The state phonenumbers' geocoder would name for a US number, by the same steps: a number of no
    known type, or of a type that is not tied to a place (toll-free), has none."""
    kind = phonenumbers.number_type(number)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN or not is_number_type_geographical(kind, number.country_code):
        return ""
    return state_for(phonenumbers.national_significant_number(number))


def zones_of(phone: str) -> tuple[tzinfo, ...]:
    """The timezones a number's prefix implies: one for most (a US area code), several for some mobile
    ranges (Australian mobiles span five)."""
    number = _parse(phone)
    if number is None:
        return ()
    zones = []
    for name in phone_timezone.time_zones_for_number(number):
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError, OSError):  # "Etc/Unknown" for numbers it cannot place
            continue
    return tuple(zones)


def window_for(regions: Iterable[str], default: Window, by_region: Mapping[str, Window]) -> Window:
    """The sending window of the most specific region configured (US-FL before US), else the default."""
    return next((by_region[r] for r in regions if r in by_region), default)


def next_allowed(moment: datetime, window: Window, zones: tuple[tzinfo, ...]) -> datetime:
    """The first instant at or after `moment` inside `window` in every one of `zones`.

    Several zones happen when only the number is known and its prefix spans zones: the text then waits
    until it is daytime in all of them (the most restrictive reading). Should no minute satisfy them all
    (zones more hours apart than the window leaves), the first zone decides.
    """
    if not zones:
        raise ValueError("no timezone to apply the window in")
    candidate = moment
    for _ in range(4 * len(zones) + 4):
        latest = max(next_in_window(candidate, window, zone) for zone in zones)
        if latest == candidate:
            return candidate
        candidate = latest
    return next_in_window(moment, window, zones[0])
