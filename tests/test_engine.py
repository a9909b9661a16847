"""The pure engine and the sequence model's parsers: durations, days, clock times, DST and due dates.

Every time is built explicitly (tzinfo=UTC); nothing here reads the clock.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nurture.rules import engine
from nurture.rules.engine import (
    Due,
    Finished,
    NotYet,
    Send,
    add_delay,
    contact_zone,
    decide,
    due_at,
    first_due,
    local_to_utc,
    next_due,
    next_opening,
    retry_at,
)
from nurture.rules.sequence import DAY_SETS, Delay, Sequence, Step, Wait, parse_clock, parse_days, parse_duration

NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")
TOKYO = ZoneInfo("Asia/Tokyo")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")

PACKAGE = Path(engine.__file__).resolve().parent


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(tz: tzinfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A wall-clock time in `tz` (first occurrence when repeated), as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=tz).astimezone(UTC)


def wall(moment: datetime, tz: tzinfo) -> tuple[int, int, int, int, int]:
    """What the contact's clock shows at `moment`: (year, month, day, hour, minute)."""
    shown = moment.astimezone(tz)
    return shown.year, shown.month, shown.day, shown.hour, shown.minute


NO_WAIT = Wait()


def step(step_id: str, wait: Wait = NO_WAIT) -> Step:
    return Step(id=step_id, kind="educate", channel="email", template=f"lead/{step_id}", subject="Hi", wait=wait)


def three_step_sequence() -> Sequence:
    return Sequence(
        id="demo",
        name="Demo",
        stage="nurture-prospects",
        steps=(
            step("welcome"),
            step("tips", Wait(delay=Delay(days=2), at=time(10, 0), days=DAY_SETS["weekdays"])),
            step("offer", Wait(delay=Delay(seconds=90 * 60))),
        ),
    )


# --- parse_duration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2d 4h", Delay(days=2, seconds=4 * 3600)),
        ("90m", Delay(seconds=90 * 60)),
        ("45s", Delay(seconds=45)),
        ("1d12h", Delay(days=1, seconds=12 * 3600)),
        ("0s", Delay()),
        ("1d 12h 30m", Delay(days=1, seconds=12 * 3600 + 30 * 60)),
        ("3d", Delay(days=3)),
        ("24h", Delay(seconds=86400)),
        ("  2d  ", Delay(days=2)),
    ],
)
def test_it_parses_a_duration_into_calendar_days_and_elapsed_seconds(text: str, expected: Delay) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["2 days", "", "10", "-1h", "h", "2w", "1.5h", "2d 4", "d2"])
def test_it_rejects_a_malformed_duration_with_a_readable_message(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration") as info:
        parse_duration(text)
    assert "'2d 4h'" in str(info.value)


@pytest.mark.parametrize("value", [2, None, 2.5, ["2d"]])
def test_it_rejects_a_duration_that_is_not_text(value: object) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("delay", "text"),
    [
        (Delay(days=2, seconds=4 * 3600), "2d 4h"),
        (Delay(seconds=90 * 60), "1h 30m"),
        (Delay(seconds=45), "45s"),
        (Delay(), "0s"),
        (Delay(days=1, seconds=3600 + 60 + 1), "1d 1h 1m 1s"),
        (Delay(days=7), "7d"),
    ],
)
def test_a_delay_prints_as_a_duration_that_parses_back_to_itself(delay: Delay, text: str) -> None:
    assert str(delay) == text
    assert parse_duration(str(delay)) == delay


@pytest.mark.parametrize("text", ["2d 4h", "90m", "45s", "1d12h", "0s", "1d 12h 30m"])
def test_a_parsed_duration_survives_a_round_trip_through_its_text(text: str) -> None:
    delay = parse_duration(text)
    assert parse_duration(str(delay)) == delay


# --- parse_days -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("weekdays", {0, 1, 2, 3, 4}),
        ("weekends", {5, 6}),
        ("every day", {0, 1, 2, 3, 4, 5, 6}),
        ("daily", {0, 1, 2, 3, 4, 5, 6}),
        ("  Weekdays ", {0, 1, 2, 3, 4}),
        (["mon", "fri"], {0, 4}),
        (["tue", "thu"], {1, 3}),
        (["sat", "sun", "sat"], {5, 6}),
        ("Mon", {0}),
        ("sun", {6}),
        (["Monday", "WEDNESDAY"], {0, 2}),
    ],
)
def test_it_parses_the_days_a_step_may_be_sent_on(value: object, expected: set[int]) -> None:
    assert parse_days(value) == frozenset(expected)


@pytest.mark.parametrize("value", [[], None, True, 5, {"mon": 1}, "funday", ["mon", "frx"], "week days", [""]])
def test_it_rejects_days_it_does_not_know(value: object) -> None:
    with pytest.raises(ValueError):
        parse_days(value)


def test_an_unknown_day_name_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="unknown day 'frx'"):
        parse_days(["mon", "frx"])


# --- parse_clock ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10:00", time(10, 0)),
        ("9:05", time(9, 5)),
        ("09:05", time(9, 5)),
        ("00:00", time(0, 0)),
        ("23:59", time(23, 59)),
        (" 18:30 ", time(18, 30)),
        (600, time(10, 0)),  # YAML 1.1 reads an unquoted 10:00 as 600 (sexagesimal)
        (545, time(9, 5)),  # unquoted 9:05
        (0, time(0, 0)),
        (1439, time(23, 59)),
    ],
)
def test_it_parses_a_clock_time(value: object, expected: time) -> None:
    assert parse_clock(value) == expected


@pytest.mark.parametrize("value", ["25:00", "noon", "24:00", "10:60", "10", "10:0", "", None, 1440, -1, "10:00:00"])
def test_it_rejects_a_time_of_day_that_is_not_hh_mm(value: object) -> None:
    with pytest.raises(ValueError, match="bad time of day"):
        parse_clock(value)


@pytest.mark.parametrize("value", [True, False])
def test_it_rejects_a_yaml_boolean_as_a_time_of_day(value: bool) -> None:
    # `at: yes` / `at: no` reach parse_clock as booleans; bool is an int subclass, so they must not pass the
    # sexagesimal branch as 00:01 / 00:00.
    with pytest.raises(ValueError, match="bad time of day"):
        parse_clock(value)


# --- contact_zone / local_to_utc ------------------------------------------------------------------------------


def test_a_known_timezone_name_gives_that_zone() -> None:
    assert contact_zone("Europe/Paris") == PARIS


@pytest.mark.parametrize("name", [None, "", "Not/AZone", "Mars/Olympus_Mons", "../etc/passwd", "America/New_York "])
def test_a_contact_without_a_usable_timezone_is_treated_as_utc(name: str | None) -> None:
    assert contact_zone(name) is UTC


@pytest.mark.parametrize("name", ["America", "Europe"])
def test_a_timezone_name_that_is_a_region_folder_is_treated_as_utc_not_an_error(name: str) -> None:
    # contact_zone promises "never an error mid-batch"; a region folder name is not a zone.
    assert contact_zone(name) is UTC


def test_a_contact_without_a_timezone_gets_at_and_on_in_utc() -> None:
    wait = Wait(at=time(10, 0))
    assert due_at(wait, utc(2026, 6, 3, 8), contact_zone(None)) == utc(2026, 6, 3, 10)
    assert due_at(wait, utc(2026, 6, 3, 11), contact_zone("Nowhere/Land")) == utc(2026, 6, 4, 10)


def test_local_to_utc_converts_an_ordinary_wall_clock_time() -> None:
    assert local_to_utc(datetime(2026, 7, 1, 10, 0), PARIS) == utc(2026, 7, 1, 8)
    assert local_to_utc(datetime(2026, 1, 15, 10, 0), NEW_YORK) == utc(2026, 1, 15, 15)


def test_local_to_utc_moves_a_time_in_the_spring_forward_gap_past_the_gap() -> None:
    assert local_to_utc(datetime(2026, 3, 8, 2, 30), NEW_YORK) == utc(2026, 3, 8, 7, 30)  # 03:30 EDT


def test_local_to_utc_takes_the_first_occurrence_of_a_repeated_time() -> None:
    assert local_to_utc(datetime(2026, 11, 1, 1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT


def test_local_to_utc_ignores_a_fold_already_set_on_the_input() -> None:
    assert local_to_utc(datetime(2026, 11, 1, 1, 30, fold=1), NEW_YORK) == utc(2026, 11, 1, 5, 30)


# --- add_delay ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "start_local", "expected_local"),
    [
        # New York, spring forward on Sunday 2026-03-08 (02:00 EST -> 03:00 EDT): only 23 real hours pass.
        (NEW_YORK, (2026, 3, 7, 9, 0), (2026, 3, 8, 9, 0)),
        # New York, fall back on Sunday 2026-11-01 (02:00 EDT -> 01:00 EST): 25 real hours pass.
        (NEW_YORK, (2026, 10, 31, 9, 0), (2026, 11, 1, 9, 0)),
        # Paris, spring forward on Sunday 2026-03-29 (02:00 CET -> 03:00 CEST).
        (PARIS, (2026, 3, 28, 9, 0), (2026, 3, 29, 9, 0)),
        # Paris, fall back on Sunday 2026-10-25 (03:00 CEST -> 02:00 CET).
        (PARIS, (2026, 10, 24, 9, 0), (2026, 10, 25, 9, 0)),
    ],
)
def test_it_keeps_the_wall_clock_time_across_a_dst_change(
    tz: ZoneInfo, start_local: tuple[int, ...], expected_local: tuple[int, ...]
) -> None:
    start = local(tz, *start_local)
    moved = add_delay(start, Delay(days=1), tz)
    assert wall(moved, tz) == expected_local
    assert moved.tzinfo is UTC


def test_a_day_wait_over_spring_forward_is_23_real_hours_and_over_fall_back_25() -> None:
    spring = local(NEW_YORK, 2026, 3, 7, 9)
    autumn = local(NEW_YORK, 2026, 10, 31, 9)
    assert add_delay(spring, Delay(days=1), NEW_YORK) - spring == timedelta(hours=23)
    assert add_delay(autumn, Delay(days=1), NEW_YORK) - autumn == timedelta(hours=25)


def test_several_calendar_days_across_a_dst_change_keep_the_wall_clock_time() -> None:
    start = local(PARIS, 2026, 3, 27, 10)  # Friday 10:00 CET
    assert wall(add_delay(start, Delay(days=3), PARIS), PARIS) == (2026, 3, 30, 10, 0)


@pytest.mark.parametrize(
    ("tz", "start_local", "expected_local"),
    [
        (NEW_YORK, (2026, 3, 7, 9, 0), (2026, 3, 8, 10, 0)),  # spring forward: 24h later the clock reads 10:00
        (NEW_YORK, (2026, 10, 31, 9, 0), (2026, 11, 1, 8, 0)),  # fall back: 24h later the clock reads 08:00
        (PARIS, (2026, 3, 28, 9, 0), (2026, 3, 29, 10, 0)),
        (PARIS, (2026, 10, 24, 9, 0), (2026, 10, 25, 8, 0)),
    ],
)
def test_hours_are_elapsed_time_so_the_wall_clock_shifts_across_a_dst_change(
    tz: ZoneInfo, start_local: tuple[int, ...], expected_local: tuple[int, ...]
) -> None:
    start = local(tz, *start_local)
    moved = add_delay(start, Delay(seconds=24 * 3600), tz)
    assert moved - start == timedelta(hours=24)
    assert wall(moved, tz) == expected_local


def test_a_day_wait_landing_in_the_spring_forward_gap_lands_just_after_it() -> None:
    start = local(NEW_YORK, 2026, 3, 7, 2, 30)  # 02:30 EST the day before; 02:30 does not exist on 2026-03-08
    moved = add_delay(start, Delay(days=1), NEW_YORK)
    assert moved == utc(2026, 3, 8, 7, 30)
    assert wall(moved, NEW_YORK) == (2026, 3, 8, 3, 30)
    assert moved.astimezone(NEW_YORK).tzname() == "EDT"


def test_a_day_wait_landing_on_a_repeated_autumn_time_takes_the_first_occurrence() -> None:
    start = local(NEW_YORK, 2026, 10, 31, 1, 30)  # 01:30 EDT
    moved = add_delay(start, Delay(days=1), NEW_YORK)
    assert moved == utc(2026, 11, 1, 5, 30)
    assert wall(moved, NEW_YORK) == (2026, 11, 1, 1, 30)
    assert moved.astimezone(NEW_YORK).tzname() == "EDT"


def test_days_and_hours_combine_as_wall_clock_days_then_elapsed_hours() -> None:
    start = local(NEW_YORK, 2026, 3, 7, 9)
    moved = add_delay(start, Delay(days=1, seconds=4 * 3600), NEW_YORK)
    assert wall(moved, NEW_YORK) == (2026, 3, 8, 13, 0)


def test_a_zero_delay_returns_the_start_itself() -> None:
    start = utc(2026, 5, 5, 12, 34, 56)
    assert add_delay(start, Delay(), NEW_YORK) == start


def test_a_day_wait_in_utc_is_exactly_24_hours() -> None:
    assert add_delay(utc(2026, 3, 7, 9), Delay(days=1), UTC) == utc(2026, 3, 8, 9)


# --- next_opening / due_at ------------------------------------------------------------------------------------


def test_a_wait_without_at_or_on_opens_at_the_moment_itself() -> None:
    moment = utc(2026, 6, 6, 3, 17)
    assert next_opening(moment, Wait(), NEW_YORK) == moment


def test_at_falls_the_same_day_when_the_moment_is_before_that_time() -> None:
    moment = local(LOS_ANGELES, 2026, 6, 3, 8, 15)
    assert next_opening(moment, Wait(at=time(10, 0)), LOS_ANGELES) == local(LOS_ANGELES, 2026, 6, 3, 10)


def test_at_falls_the_next_day_when_the_moment_is_after_that_time() -> None:
    moment = local(LOS_ANGELES, 2026, 6, 3, 10, 1)
    assert next_opening(moment, Wait(at=time(10, 0)), LOS_ANGELES) == local(LOS_ANGELES, 2026, 6, 4, 10)


def test_exactly_at_the_at_time_counts_as_due_then() -> None:
    moment = local(TOKYO, 2026, 6, 3, 10, 0)
    assert next_opening(moment, Wait(at=time(10, 0)), TOKYO) == moment


def test_one_second_after_the_at_time_waits_for_the_next_day() -> None:
    moment = local(TOKYO, 2026, 6, 3, 10, 0) + timedelta(seconds=1)
    assert next_opening(moment, Wait(at=time(10, 0)), TOKYO) == local(TOKYO, 2026, 6, 4, 10)


def test_at_is_read_on_the_contacts_clock_not_utc() -> None:
    # 23:00 UTC on Tuesday is already 08:00 Wednesday in Tokyo: 10:00 Tokyo that Wednesday is 01:00 UTC.
    assert next_opening(utc(2026, 6, 2, 23), Wait(at=time(10, 0)), TOKYO) == utc(2026, 6, 3, 1)


@pytest.mark.parametrize("tz", [TOKYO, LOS_ANGELES])
def test_at_with_weekdays_skips_a_weekend(tz: ZoneInfo) -> None:
    friday_afternoon = local(tz, 2026, 3, 13, 15)  # Friday 15:00 local
    due = due_at(Wait(at=time(10, 0), days=DAY_SETS["weekdays"]), friday_afternoon, tz)
    assert due == local(tz, 2026, 3, 16, 10)  # Monday 10:00 local
    assert due.astimezone(tz).weekday() == 0


def test_at_with_weekdays_in_tokyo_is_monday_morning_local_which_is_sunday_night_utc() -> None:
    due = due_at(Wait(at=time(10, 0), days=DAY_SETS["weekdays"]), utc(2026, 3, 13, 6), TOKYO)
    assert due == utc(2026, 3, 16, 1)


def test_at_with_weekdays_on_a_weekday_morning_is_the_same_day() -> None:
    tuesday_morning = local(LOS_ANGELES, 2026, 3, 17, 9)
    due = due_at(Wait(at=time(10, 0), days=DAY_SETS["weekdays"]), tuesday_morning, LOS_ANGELES)
    assert due == local(LOS_ANGELES, 2026, 3, 17, 10)


def test_at_on_a_single_allowed_day_after_its_time_waits_a_whole_week() -> None:
    monday_noon = local(PARIS, 2026, 6, 1, 12)
    due = next_opening(monday_noon, Wait(at=time(10, 0), days=frozenset({0})), PARIS)
    assert due == local(PARIS, 2026, 6, 8, 10)


def test_at_with_a_day_list_picks_the_next_listed_day() -> None:
    wednesday = local(NEW_YORK, 2026, 6, 3, 9)
    due = next_opening(wednesday, Wait(at=time(18, 30), days=parse_days(["tue", "thu"])), NEW_YORK)
    assert due == local(NEW_YORK, 2026, 6, 4, 18, 30)


def test_on_alone_on_an_allowed_day_returns_the_moment_itself() -> None:
    wednesday = local(LOS_ANGELES, 2026, 6, 3, 23, 45)
    assert next_opening(wednesday, Wait(days=DAY_SETS["weekdays"]), LOS_ANGELES) == wednesday


def test_on_alone_on_a_day_not_allowed_moves_to_the_start_of_the_next_allowed_day() -> None:
    saturday = local(LOS_ANGELES, 2026, 6, 6, 14, 20)
    due = next_opening(saturday, Wait(days=DAY_SETS["weekdays"]), LOS_ANGELES)
    assert due == local(LOS_ANGELES, 2026, 6, 8, 0, 0)  # Monday 00:00 Los Angeles = 07:00 UTC
    assert due == utc(2026, 6, 8, 7)


def test_on_alone_judges_the_day_on_the_contacts_calendar() -> None:
    # Friday 20:00 UTC is already Saturday 05:00 in Tokyo: a weekday-only step waits for Monday 00:00 Tokyo.
    due = next_opening(utc(2026, 6, 5, 20), Wait(days=DAY_SETS["weekdays"]), TOKYO)
    assert due == local(TOKYO, 2026, 6, 8, 0, 0)


def test_on_weekends_moves_a_three_day_wait_forward_to_saturday() -> None:
    tuesday = local(PARIS, 2026, 6, 2, 11)
    due = due_at(Wait(delay=Delay(days=3), days=DAY_SETS["weekends"]), tuesday, PARIS)
    assert due == local(PARIS, 2026, 6, 6, 0, 0)


def test_at_in_the_spring_forward_gap_lands_just_after_the_gap() -> None:
    due = next_opening(local(NEW_YORK, 2026, 3, 8, 0, 30), Wait(at=time(2, 30)), NEW_YORK)
    assert due == utc(2026, 3, 8, 7, 30)  # 03:30 EDT


def test_at_means_the_same_local_time_in_winter_and_summer() -> None:
    wait = Wait(at=time(10, 0))
    assert due_at(wait, local(PARIS, 2026, 1, 10, 6), PARIS) == utc(2026, 1, 10, 9)
    assert due_at(wait, local(PARIS, 2026, 7, 10, 6), PARIS) == utc(2026, 7, 10, 8)


@pytest.mark.parametrize(
    ("start_local", "expected_local"),
    [
        ((2026, 6, 1, 15, 0), (2026, 6, 4, 10, 0)),  # Monday 15:00 -> Wednesday 15:00 -> Thursday 10:00
        ((2026, 6, 1, 8, 0), (2026, 6, 3, 10, 0)),  # Monday 08:00 -> Wednesday 08:00 -> Wednesday 10:00
    ],
)
def test_a_two_day_wait_then_at_follows_the_documented_examples(
    start_local: tuple[int, ...], expected_local: tuple[int, ...]
) -> None:
    due = due_at(Wait(delay=Delay(days=2), at=time(10, 0)), local(NEW_YORK, *start_local), NEW_YORK)
    assert wall(due, NEW_YORK) == expected_local


def test_a_two_day_wait_then_weekday_at_skips_to_monday_as_documented() -> None:
    thursday = local(NEW_YORK, 2026, 6, 4, 16)  # Thursday 16:00 -> Saturday 16:00 -> Monday 10:00
    due = due_at(Wait(delay=Delay(days=2), at=time(10, 0), days=DAY_SETS["weekdays"]), thursday, NEW_YORK)
    assert wall(due, NEW_YORK) == (2026, 6, 8, 10, 0)


def test_an_empty_day_set_is_an_error_rather_than_a_loop() -> None:
    with pytest.raises(ValueError, match="empty"):
        next_opening(utc(2026, 6, 1), Wait(at=time(10, 0), days=frozenset()), UTC)


# --- first_due / next_due -------------------------------------------------------------------------------------


def test_the_first_step_is_due_its_wait_after_enrollment() -> None:
    enrolled = utc(2026, 6, 5, 18, 0)  # Friday 14:00 New York
    assert first_due(three_step_sequence(), enrolled, NEW_YORK) == Due("welcome", enrolled)


def test_the_first_step_honours_its_own_wait() -> None:
    sequence = Sequence(id="s", name="S", stage="capture-leads", steps=(step("a", Wait(delay=Delay(seconds=3600))),))
    assert first_due(sequence, utc(2026, 6, 5, 18), UTC) == Due("a", utc(2026, 6, 5, 19))


def test_a_sequence_without_steps_has_nothing_due() -> None:
    empty = Sequence(id="s", name="S", stage="capture-leads", steps=())
    assert first_due(empty, utc(2026, 6, 5), UTC) is None


def test_the_next_step_is_timed_from_when_the_previous_one_was_done() -> None:
    done = local(NEW_YORK, 2026, 6, 4, 16)  # Thursday 16:00 New York
    due = next_due(three_step_sequence(), "welcome", done, NEW_YORK)
    assert due == Due("tips", local(NEW_YORK, 2026, 6, 8, 10))  # +2d = Saturday 16:00 -> Monday 10:00


def test_the_step_after_that_uses_its_own_elapsed_wait() -> None:
    done = utc(2026, 6, 8, 14, 0)
    assert next_due(three_step_sequence(), "tips", done, NEW_YORK) == Due("offer", utc(2026, 6, 8, 15, 30))


def test_after_the_last_step_nothing_is_due() -> None:
    assert next_due(three_step_sequence(), "offer", utc(2026, 6, 8), NEW_YORK) is None


def test_after_a_step_id_the_sequence_no_longer_has_nothing_is_due() -> None:
    assert next_due(three_step_sequence(), "gone", utc(2026, 6, 8), NEW_YORK) is None


def test_steps_are_found_by_id_not_position() -> None:
    sequence = three_step_sequence()
    assert sequence.step("offer") == sequence.steps[2]
    assert sequence.step_after("welcome") == sequence.steps[1]
    assert sequence.step("nope") is None


# --- decide ---------------------------------------------------------------------------------------------------


def test_a_step_due_in_the_past_is_sent() -> None:
    sequence = three_step_sequence()
    now = utc(2026, 6, 8, 12)
    assert decide(sequence, "tips", now - timedelta(minutes=5), now) == Send(sequence.steps[1])


def test_a_step_due_exactly_now_is_sent() -> None:
    sequence = three_step_sequence()
    now = utc(2026, 6, 8, 12)
    assert decide(sequence, "welcome", now, now) == Send(sequence.steps[0])


def test_a_step_without_a_due_time_is_sent() -> None:
    sequence = three_step_sequence()
    assert decide(sequence, "welcome", None, utc(2026, 6, 8)) == Send(sequence.steps[0])


def test_a_step_due_later_is_not_sent_yet_and_says_until_when() -> None:
    now = utc(2026, 6, 8, 12)
    later = now + timedelta(seconds=1)
    assert decide(three_step_sequence(), "tips", later, now) == NotYet(later)


def test_an_enrollment_past_its_last_step_is_finished() -> None:
    decision = decide(three_step_sequence(), None, None, utc(2026, 6, 8))
    assert decision == Finished("sequence complete")


def test_an_enrollment_at_a_step_id_that_no_longer_exists_is_finished_with_the_reason() -> None:
    decision = decide(three_step_sequence(), "edu-9", utc(2026, 6, 1), utc(2026, 6, 8))
    assert isinstance(decision, Finished)
    assert "edu-9" in decision.reason
    assert "demo" in decision.reason


# --- retry_at -------------------------------------------------------------------------------------------------


def test_retries_follow_the_backoff_list_then_give_up() -> None:
    now = utc(2026, 6, 8, 12)
    backoff = (60, 300, 1800)
    assert retry_at(1, now, backoff) == now + timedelta(seconds=60)
    assert retry_at(2, now, backoff) == now + timedelta(seconds=300)
    assert retry_at(3, now, backoff) == now + timedelta(seconds=1800)
    assert retry_at(4, now, backoff) is None
    assert retry_at(10, now, backoff) is None


def test_with_an_empty_backoff_a_failure_is_never_retried() -> None:
    assert retry_at(1, utc(2026, 6, 8), ()) is None


def test_the_default_backoff_gives_five_retries() -> None:
    from nurture.config import Settings

    now = utc(2026, 6, 8)
    backoff = Settings.model_fields["retry_backoff_seconds"].default
    times = [retry_at(n, now, backoff) for n in range(1, len(backoff) + 2)]
    assert times[:-1] == [now + timedelta(seconds=s) for s in backoff]
    assert times[-1] is None


# --- purity ---------------------------------------------------------------------------------------------------

FORBIDDEN_MODULES = {"flask", "rq", "sqlmodel", "sqlalchemy", "jinja2", "twilio", "redis"}


def _imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def _clock_reads(tree: ast.AST) -> list[str]:
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"now", "utcnow", "today", "time", "monotonic"}:
            if isinstance(node.value, ast.Name) and node.value.id in {"datetime", "date", "time"}:
                reads.append(f"{node.value.id}.{node.attr}")
    return reads


PURE_MODULES = ["engine.py", "sequence.py", "conditions.py"]
STDLIB_ALLOWED = {"__future__", "dataclasses", "datetime", "zoneinfo", "re", "collections", "typing", "operator"}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_the_engine_modules_import_no_framework_database_or_template_library(module: str) -> None:
    source = (PACKAGE / module).read_text(encoding="utf-8")
    imported = _imported_modules(ast.parse(source))
    assert imported, "the source should import something (the check itself must see imports)"
    assert imported & FORBIDDEN_MODULES == set()
    assert imported <= STDLIB_ALLOWED | {"nurture"}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_the_engine_modules_never_read_the_clock(module: str) -> None:
    source = (PACKAGE / module).read_text(encoding="utf-8")
    assert _clock_reads(ast.parse(source)) == []
    for call in ("datetime.now", "utcnow", "time.time(", "date.today"):
        assert call not in source


def test_the_clock_read_detector_does_catch_a_clock_read() -> None:
    assert _clock_reads(ast.parse("from datetime import datetime\nx = datetime.now()\ny = time.time()")) == [
        "datetime.now",
        "time.time",
    ]
