"""The database works out each contact's funnel groups (store.funnel_groups, what the fold and the reader
use) exactly as their definition in Python does (rules.funnel_members.members), key for key and to the
microsecond, on SQLite and PostgreSQL: over the mixed rows of test_funnel_exact's World, and over the
awkward ones — text outside ASCII, quotes, backslashes and control characters in an error or a reason, a
version named `*`, events without a version, bot clicks, re-entries, a goal before and after a send. And a
rollup folded by an older fold (keys with \\u escapes) still counts right and is put right by the next."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import timedelta

from sqlalchemy import select, text
from sqlmodel import Session

from nurture.rules import funnel_members as fm
from nurture.store import funnel_groups
from nurture.store.models import Delivery, Enrollment, FunnelDay, FunnelDirty, FunnelMember
from tests.funnel_support import fold_all
from tests.test_funnel_exact import World, assert_same, from_rollup

ODD = ("550 «nö» \"quoted\" \\ back\nslash\t\x01 ✓ 😀", "", "plain", "\u2028 line sep", "tab\there")


def _delivery_fact(d: Delivery) -> fm.DeliveryFact:
    return fm.DeliveryFact(d.sequence_version, d.step_id, d.channel, str(d.status), d.provider_status, d.error,
                           d.created_at, d.sent_at)


def expected_members(world: World) -> dict:
    """(contact, sequence) -> funnel_members.members of its rows, from the rows the World wrote."""
    deliveries, events, linked = defaultdict(list), defaultdict(list), defaultdict(list)
    by_id = {d.id: d for d in world.deliveries}
    for d in world.deliveries:
        deliveries[(d.contact_id, d.sequence_id)].append(_delivery_fact(d))
    for e in world.events:
        if e.type in fm.LINKED:
            if e.delivery_id in by_id:
                d = by_id[e.delivery_id]
                linked[(e.contact_id, d.sequence_id)].append(fm.LinkedFact(e.type, _delivery_fact(d)))
        elif e.type in fm.EVENT_KINDS and e.data.get("sequence") is not None:
            events[(e.contact_id, e.data["sequence"])].append(
                fm.EventFact(e.type, e.data.get("version"), e.data.get("step"), e.data.get("reason"),
                             not e.data.get("bot"), e.occurred_at))
    pairs = {*deliveries, *events, *linked}
    found = {pair: fm.members(deliveries[pair], events[pair], linked[pair]) for pair in pairs}
    return {pair: groups for pair, groups in found.items() if groups}


def sql_members(world: World) -> dict:
    """The same, worked out by funnel_groups.members_query for every pair the triggers marked."""
    found: dict = defaultdict(dict)
    with Session(world.rt.db) as session:
        pairs = select(FunnelDirty.contact_id, FunnelDirty.sequence_id).distinct().subquery("pairs")
        query = funnel_groups.members_query(pairs, world.rt.db.dialect.name).subquery()
        for contact, sequence, version, key, at in session.execute(select(query)):
            found[(contact, sequence)][(version, key)] = at
    return dict(found)


def stored_members(world: World) -> dict:
    found: dict = defaultdict(dict)
    with Session(world.rt.db) as session:
        for m in session.execute(select(FunnelMember)).scalars():
            found[(m.contact_id, m.sequence_id)][(m.version, m.key)] = m.latest_at
    return dict(found)


def stored_days(world: World) -> Counter:
    with Session(world.rt.db) as session:
        return Counter({(d.sequence_id, d.version, d.key, d.day): d.n
                        for d in session.execute(select(FunnelDay)).scalars() if d.n})


def days_of(members: dict) -> Counter:
    days: Counter = Counter()
    for (_, sequence), groups in members.items():
        for (version, key), at in groups.items():
            days[(sequence, version, key, fm.day_of(at))] += 1
    return days


def awkward_rows(world: World) -> None:
    """A contact with text the JSON quoting must get right, a version named `*`, events naming no version."""
    world.grow(1)
    contact, now = world.contacts[-1], world.now
    with Session(world.rt.db, expire_on_commit=False) as session:
        kinds = (("*", "sent", "email"), ("v1", "skipped", "email"), ("v1", "bounced", "sms"))
        enrollments = []
        for entry, (version, _, _) in enumerate(kinds, start=7):  # (enrollment, step, channel) is unique
            enrollment = Enrollment(contact_id=contact, sequence_id="customer", sequence_version=version,
                                    entry=entry, status="completed", created_at=now, updated_at=now)
            session.add(enrollment)
            session.flush()
            world.enrollments.append(enrollment)
            enrollments.append(enrollment)
        for n, error in enumerate(ODD):
            at = now - timedelta(days=n, microseconds=n)
            for enrollment, (version, status, channel) in zip(enrollments, kinds, strict=True):
                d = Delivery(contact_id=contact, enrollment_id=enrollment.id, sequence_id="customer",
                             sequence_version=version, step_id=f"stép-{n}", channel=channel, status=status,
                             error=error, created_at=at, updated_at=at, sent_at=at if status != "skipped" else None)
                session.add(d)
                session.flush()
                world.deliveries.append(d)
            world._event(session, contact, "email.bounced", {}, d.id, at=at)
            about = {"sequence": "customer", "step": f"stép-{n}"}
            world._event(session, contact, "step.skipped", {**about, "reason": error}, at=at)
            world._event(session, contact, "step.branched", {**about, "version": "*", "reason": error}, at=at)
            world._event(session, contact, "email.clicked", {**about, "version": "*", "bot": n % 2 == 0}, at=at)
            world._event(session, contact, "sms.deferred", about, at=at)
        world._event(session, contact, "sequence.enrolled", {"sequence": "customer", "version": "*"}, at=now)
        world._event(session, contact, "sequence.goal", {"sequence": "customer"}, at=now - timedelta(days=2))
        session.commit()


def test_the_database_works_out_the_groups_python_does(make_runtime, database_url) -> None:
    world = World(make_runtime(database_url), 21)
    world.grow(40)
    awkward_rows(world)
    wanted = expected_members(world)
    assert any("«nö»" in key for groups in wanted.values() for _, key in groups)
    assert sql_members(world) == wanted


def test_the_fold_stores_those_groups_and_their_days(make_runtime, database_url, clock) -> None:
    world = World(make_runtime(database_url), 22)
    world.grow(30)
    awkward_rows(world)
    fold_all(world.rt)
    assert stored_members(world) == expected_members(world)
    assert stored_days(world) == days_of(expected_members(world))
    clock.advance(days=1)
    world.now = clock()
    world.grow(10)
    world.change_statuses()
    world.click_later()
    world.scrub_errors()
    fold_all(world.rt)
    assert stored_members(world) == expected_members(world)
    assert stored_days(world) == days_of(expected_members(world))
    assert_same(world, from_rollup)


def _escaped(key: str) -> str:
    return json.dumps(json.loads(key), separators=(",", ":"))  # ensure_ascii: the older fold's keys


def test_keys_an_older_fold_wrote_with_escapes_count_as_the_same_groups(make_runtime, database_url) -> None:
    world = World(make_runtime(database_url), 23)
    world.grow(20)
    awkward_rows(world)
    fold_all(world.rt)
    with Session(world.rt.db) as session:  # what the fold before this one left: \u escapes in the keys
        for table in ("funnel_member", "funnel_day"):
            for (key,) in session.execute(text(f"SELECT DISTINCT key FROM {table}")).all():
                if _escaped(key) != key:
                    session.execute(text(f"UPDATE {table} SET key = :old WHERE key = :new"),
                                    {"old": _escaped(key), "new": key})
        session.commit()
    assert any(_escaped(k) != k for groups in expected_members(world).values() for _, k in groups)
    assert_same(world, from_rollup)  # read as they are
    world.click_later()  # some of the awkward contact's groups move, read half old, half new
    assert_same(world, from_rollup)
    with Session(world.rt.db) as session:  # everyone folded again: the keys come back as they are written now
        session.execute(FunnelDirty.__table__.insert().from_select(  # type: ignore[attr-defined]
            ["contact_id", "sequence_id"], select(FunnelMember.contact_id, FunnelMember.sequence_id).distinct()))
        session.commit()
    fold_all(world.rt)
    assert stored_members(world) == expected_members(world)
    assert_same(world, from_rollup)
