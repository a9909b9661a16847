"""SMS quiet hours: a text waits for the next allowed minute in the recipient's local time — across
timezones, daylight saving changes, regions with stricter hours, and numbers that span several zones."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from nurture.config import SmsSettings
from nurture.delivery.channels.sms import quiet_until, recipient_zones
from nurture.rules.sequence import Window
from nurture.rules.sms import next_allowed, window_for
from nurture.store.models import Contact

DAYTIME = Window(time(8), time(21))
LA, NY, LONDON, TOKYO = (ZoneInfo(z) for z in ("America/Los_Angeles", "America/New_York", "Europe/London",
                                               "Asia/Tokyo"))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)


def contact(phone: str | None, timezone: str | None = None) -> Contact:
    return Contact(email="a@example.com", phone=phone, timezone=timezone, created_at=utc(2026, 1, 1),
                   updated_at=utc(2026, 1, 1))


def test_a_text_due_at_23_local_goes_out_at_08_the_next_morning() -> None:
    assert next_allowed(local(LA, 2026, 6, 10, 23, 0), DAYTIME, (LA,)) == local(LA, 2026, 6, 11, 8, 0)


def test_a_text_due_inside_the_window_goes_at_once() -> None:
    due = local(LA, 2026, 6, 10, 12, 34, 56)
    assert next_allowed(due, DAYTIME, (LA,)) == due


def test_the_window_opens_at_08_00_and_closes_at_21_00_sharp() -> None:
    assert next_allowed(local(LA, 2026, 6, 10, 7, 59, 59), DAYTIME, (LA,)) == local(LA, 2026, 6, 10, 8, 0)
    assert next_allowed(local(LA, 2026, 6, 10, 8, 0), DAYTIME, (LA,)) == local(LA, 2026, 6, 10, 8, 0)
    assert next_allowed(local(LA, 2026, 6, 10, 20, 59, 59), DAYTIME, (LA,)) == local(LA, 2026, 6, 10, 20, 59, 59)
    assert next_allowed(local(LA, 2026, 6, 10, 21, 0), DAYTIME, (LA,)) == local(LA, 2026, 6, 11, 8, 0)


def test_the_same_instant_is_night_in_one_place_and_day_in_another() -> None:
    instant = utc(2026, 6, 10, 23, 0)  # 00:00 in London, 08:00 in Tokyo, 16:00 in Los Angeles
    assert next_allowed(instant, DAYTIME, (LONDON,)) == local(LONDON, 2026, 6, 11, 8, 0)
    assert next_allowed(instant, DAYTIME, (TOKYO,)) == instant
    assert next_allowed(instant, DAYTIME, (LA,)) == instant


def test_on_the_night_clocks_spring_forward_it_still_opens_at_08_local() -> None:
    # US clocks went 02:00 -> 03:00 on Sunday 8 March 2026: 08:00 PDT is 15:00 UTC, not 16:00.
    assert next_allowed(local(LA, 2026, 3, 7, 23, 30), DAYTIME, (LA,)) == utc(2026, 3, 8, 15, 0)


def test_on_the_night_clocks_fall_back_it_still_opens_at_08_local() -> None:
    # ...and 02:00 -> 01:00 on Sunday 1 November 2026: 08:00 PST is 16:00 UTC.
    assert next_allowed(local(LA, 2026, 10, 31, 22, 0), DAYTIME, (LA,)) == utc(2026, 11, 1, 16, 0)
    # Europe changed a week earlier (25 October): 08:00 GMT is 08:00 UTC.
    assert next_allowed(utc(2026, 10, 24, 22, 0), DAYTIME, (LONDON,)) == utc(2026, 10, 25, 8, 0)


def test_several_zones_wait_until_it_is_daytime_in_all_of_them() -> None:
    # 13:00 UTC: 08:00 in New York, 05:00 in Los Angeles. Both are daytime from 16:00 UTC.
    assert next_allowed(utc(2026, 6, 10, 13, 0), DAYTIME, (NY, LA)) == local(LA, 2026, 6, 10, 8, 0)
    # 02:30 UTC: 19:30 in Los Angeles, but 22:30 in New York -> the next morning in Los Angeles.
    assert next_allowed(utc(2026, 6, 11, 2, 30), DAYTIME, (NY, LA)) == local(LA, 2026, 6, 11, 8, 0)


def test_zones_too_far_apart_to_share_a_minute_fall_back_to_the_first() -> None:
    short = Window(time(9), time(12))
    assert next_allowed(utc(2026, 6, 10, 20, 0), short, (LONDON, TOKYO)) == local(LONDON, 2026, 6, 11, 9, 0)


def test_a_region_with_stricter_hours_wins_over_the_default() -> None:
    by_region = {"US-FL": Window(time(8), time(20))}
    assert window_for(("US-FL", "US"), DAYTIME, by_region) == Window(time(8), time(20))
    assert window_for(("US-NY", "US"), DAYTIME, by_region) == DAYTIME
    assert window_for(("US-NY", "US"), DAYTIME, {"US": Window(time(9), time(20))}) == Window(time(9), time(20))


def test_a_florida_number_waits_from_20_00_and_a_new_york_one_does_not() -> None:
    sms = SmsSettings()  # the defaults: 08:00-21:00, and 08:00-20:00 for Florida, Oklahoma and Maryland
    at_2030_eastern = local(NY, 2026, 6, 10, 20, 30)
    assert quiet_until(sms, contact("+13055550123"), at_2030_eastern) == local(NY, 2026, 6, 11, 8, 0)  # Miami
    assert quiet_until(sms, contact("+12125550123"), at_2030_eastern) == at_2030_eastern  # Manhattan


def test_the_contacts_own_timezone_comes_before_its_numbers() -> None:
    moved_to_tokyo = contact("+12125550123", "Asia/Tokyo")
    assert recipient_zones(moved_to_tokyo) == (TOKYO,)
    assert recipient_zones(contact("+12125550123")) == (NY,)
    assert recipient_zones(contact("+12125550123", "Not/AZone")) == (NY,)  # a bad name is ignored, not fatal
    assert len(recipient_zones(contact("+61412345678"))) > 1  # Australian mobiles span several zones
    assert recipient_zones(contact("+999")) == (UTC,)  # nothing to go on: UTC
