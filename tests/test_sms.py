"""What a text costs and what a reply means: GSM-7 vs UCS-2 segments, keywords, where a number is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest

from nurture.rules.sms import keyword, regions_of, segments, ucs2_characters, with_opt_out_notice

ROOT = Path(__file__).resolve().parent.parent


def test_a_plain_text_of_160_characters_is_one_gsm7_segment() -> None:
    assert str(segments("x" * 160)) == "1 segment (GSM-7, 160 characters)"


def test_one_character_more_splits_it_into_parts_of_153() -> None:
    assert segments("x" * 161).count == 2
    assert segments("x" * 306).count == 2
    assert segments("x" * 307).count == 3


def test_a_curly_quote_makes_the_whole_text_ucs2_and_halves_what_a_segment_holds() -> None:
    plain = "Hi Ann, you're booked! " * 4  # 92 characters
    curly = plain.replace("'", "\u2019")
    assert segments(plain) == segments(plain).__class__("GSM-7", 92, 1)
    assert (segments(curly).encoding, segments(curly).count) == ("UCS-2", 2)


def test_extension_characters_count_twice_and_are_never_split_across_parts() -> None:
    assert segments("€" * 80).characters == 160 and segments("€" * 80).count == 1
    # 152 plain + one two-unit "{" would end exactly at 154 > 153: the pair moves to the next part.
    assert segments("x" * 152 + "{" + "x" * 150).count == 2
    assert segments("x" * 152 + "{" + "x" * 152).count == 3


def test_an_emoji_is_a_surrogate_pair_in_ucs2() -> None:
    assert segments("\U0001f600" * 35) == segments("\U0001f600" * 35).__class__("UCS-2", 70, 1)
    assert segments("\U0001f600" * 36).count == 2


def test_it_names_each_character_that_forces_ucs2_with_its_first_line_and_a_plain_alternative() -> None:
    found = ucs2_characters("Hi there,\nyou\u2019re booked\u00a0today \U0001f3fa\nsee you\u2019")
    assert [(str(f), f.line, f.count) for f in found] == [
        ("\u2019 (RIGHT SINGLE QUOTATION MARK)", 2, 2),
        ("'\\xa0' (NO-BREAK SPACE)", 2, 1),
        ("\U0001f3fa (AMPHORA)", 2, 1),
    ]
    assert [f.advice for f in found] == ["use \"'\" instead", "use a normal space instead", "remove it if you can"]


def test_accents_gsm7_has_are_not_reported_and_those_it_lacks_are() -> None:
    assert ucs2_characters("Café Ñoño ¡Hola! ¿Qué tal? Müller £5 €3 [ok] ~x~") == []
    assert [c.char for c in ucs2_characters("Zoë bought a jarrón")] == ["ë", "ó"]


@pytest.mark.parametrize("body", ["STOP", "stop", "  Stop  ", "Stop.", "STOPALL", "unsubscribe", "Cancel", "END",
                                  "quit", "REVOKE", "optout", "stop!\n"])
def test_every_opt_out_keyword_in_any_case_stops(body: str) -> None:
    assert keyword(body) == "stop"


@pytest.mark.parametrize("body", ["START", "yes", " Unstop "])
def test_start_yes_and_unstop_opt_back_in(body: str) -> None:
    assert keyword(body) == "start"


@pytest.mark.parametrize("body", ["HELP", "info", " Help "])
def test_help_and_info_ask_for_help(body: str) -> None:
    assert keyword(body) == "help"


@pytest.mark.parametrize("body", ["don't stop", "stop texting me please", "STOP STOP", "yes please", "", "7"])
def test_anything_else_is_a_reply_not_a_keyword(body: str) -> None:
    assert keyword(body) is None


def test_a_us_number_knows_its_state_from_the_area_code() -> None:
    assert regions_of("+13055550123") == ("US-FL", "US")
    assert regions_of("+12125550123") == ("US-NY", "US")  # "New York, NY"
    assert regions_of("+12065550123") == ("US-WA", "US")  # "Washington State"
    assert regions_of("+15095550123") == ("US-WA", "US")
    assert regions_of("+442079460000") == ("GB",)
    assert regions_of("not a number") == ()


def test_the_first_text_names_the_brand_unless_it_already_does() -> None:
    notice = with_opt_out_notice("See you Saturday!", "Juniper")
    assert notice == "See you Saturday!\n\nJuniper: Reply STOP to opt out."
    named = with_opt_out_notice("Juniper here: see you!", "Juniper")
    assert named == "Juniper here: see you!\n\nReply STOP to opt out."


def test_a_us_numbers_state_is_the_one_phonenumbers_geocoder_names() -> None:
    """nurture.rules.us_area_states is a table made from the geocoder's data: it must say what the geocoder
    says, for every US prefix the geocoder knows (and the numbers around them)."""
    from phonenumbers import geocoder
    from phonenumbers.geodata import GEOCODE_DATA

    from nurture.rules.sms import _STATE_CODES, US_STATES

    def by_geocoder(phone: str) -> tuple[str, ...]:
        number = phonenumbers.parse(phone, None)
        place = geocoder.description_for_number(number, "en")
        state = US_STATES.get(place) or place.rpartition(", ")[2]
        return (f"US-{state}", "US") if state in _STATE_CODES else ("US",)

    checked = 0
    for prefix in (key for key in GEOCODE_DATA if key.startswith("1")):
        for filler in ("5550123456", "2345678901", "9876543210"):
            phone = "+" + (prefix + filler)[:11]
            if phonenumbers.region_code_for_number(phonenumbers.parse(phone, None)) == "US":
                assert regions_of(phone) == by_geocoder(phone), phone
                checked += 1
    assert checked > 50_000


def test_no_process_loads_phonenumbers_geocoding_data() -> None:
    """The geocoder's data for every country and language is ~100 MB in each process that imports it."""
    code = ("import sys, worker, nurture.web, nurture.cli, nurture.jobs; "
            "sys.exit('phonenumbers.geodata' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120).returncode == 0
