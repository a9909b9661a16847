"""A segment counted in SQL (nurture.store.segments) gives the same members as the pure definition judged
contact by contact over all their events (the brute force), on SQLite and PostgreSQL: over 10,000 generated
contacts for the conditions a marketer writes, and over randomly built conditions (hypothesis) on fewer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from nurture.rules.segments import Segment
from nurture.store import segments as store
from tests.segments_support import NOW, PLANS, SCORING, STAGES, TAGS, BruteForce, database, segment

CONDITIONS = [
    {"tag": "vip"},
    {"tag": "5"},
    {"field": {"plan": "pro"}},
    {"field": {"visits": 3}},
    {"field": {"visits": "3"}},
    {"field": {"visits": True}},
    {"field": {"visits": None}},
    {"field": {"plan": "pro", "city": "Portland"}},
    {"stage": ["customer", "repeat-customer"]},
    {"score": ">= 10"},
    {"score": "< 3"},
    {"score": "== 0"},
    {"event": "purchase"},
    {"event": "purchase", "within": "30d"},
    {"event": "rating", "where": {"score": ">= 9"}},
    {"event": "rating", "where": {"score": 9}},
    {"event": "purchase", "where": {"amount": "> 50", "product": "wheel-course"}},
    {"event": "purchase", "where": {"amount": "80"}},
    {"event": "email.clicked", "within": "14d", "where": {"step": "edu-1"}},
    {"consent": "email"},
    {"consent": "sms"},
    {"engaged": "30d"},
    {"inactive": "90d"},
    {"not": {"engaged": "60d"}},
    {"all": [{"stage": "lead"}, {"engaged": "30d"}, {"consent": "email"}]},
    {"any": [{"tag": "vip"}, {"score": "> 20"}, {"not": {"field": {"plan": "free"}}}]},
    {"all": [{"stage": "customer"}, {"event": "purchase", "within": "90d"}, {"not": {"tag": "kids"}}]},
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """10,000 contacts, ~40,000 events, on a SQLite file and on a fresh PostgreSQL database."""
    from tests.conftest import _postgres_database

    if request.param == "sqlite":
        engine = database(f"sqlite:///{tmp_path_factory.mktemp('segments') / 'n.db'}", 10_000)
        yield engine
        engine.dispose()
        return
    for url in _postgres_database():
        engine = database(url, 10_000)
        yield engine
        engine.dispose()


@pytest.fixture(scope="module")
def brute(generated: Engine) -> BruteForce:
    return BruteForce(generated)


def _sql_ids(engine: Engine, seg: Segment) -> list[int]:
    with Session(engine) as session:
        ids, after = [], None
        while page := store.member_ids(session, seg, NOW, after_id=after, limit=3000, scoring=SCORING):
            ids += page
            after = page[-1]
        return ids


@pytest.mark.parametrize("condition", CONDITIONS, ids=[str(c) for c in CONDITIONS])
def test_it_counts_what_the_brute_force_counts_over_10000_contacts(generated: Engine, brute: BruteForce,
                                                                   condition: dict) -> None:
    seg = segment("s", condition)
    expected = brute.member_ids(seg)
    with Session(generated) as session:
        assert store.count(session, seg, NOW, SCORING) == len(expected)
    assert _sql_ids(generated, seg) == expected
    assert 0 < len(expected) < 10_000, "a condition that matches nobody or everybody proves little"


def test_it_counts_a_segment_built_on_other_segments(generated: Engine, brute: BruteForce) -> None:
    engaged = segment("engaged", {"engaged": "30d"})
    customers = segment("customers", {"stage": ["customer", "repeat-customer"]})
    both = segment("engaged-customers", {"all": [{"segment": "engaged"}, {"not": {"segment": "customers"}}]},
                   {"engaged": engaged, "customers": customers})
    expected = brute.member_ids(both)
    with Session(generated) as session:
        assert store.count(session, both, NOW, SCORING) == len(expected) > 0
        assert store.members_among(session, both, expected[:50] + [10_001], NOW, SCORING) == set(expected[:50])


def test_without_scoring_rules_the_score_does_not_decay(generated: Engine) -> None:
    seg = segment("hot", {"score": ">= 10"})
    with Session(generated) as session:
        assert store.count(session, seg, NOW) > store.count(session, seg, NOW, SCORING)


# --- randomly built conditions --------------------------------------------------------------------------------

DURATIONS = st.sampled_from(["1d", "7d", "30d", "90d", "180d"])
SCALARS = st.sampled_from(["3", "pro", "Portland", "", 3, 0, 1, 3.0, 9.5, True, False, None, 12])
COMPARISONS = st.builds(lambda op, n: f"{op} {n}", st.sampled_from([">=", "<=", ">", "<", "==", "!="]),
                        st.sampled_from([0, 1, 3, 9, 9.5, 10, 50, 80.5]))
LEAVES = st.one_of(
    st.builds(lambda t: {"tag": t}, st.sampled_from(TAGS)),
    st.builds(lambda k, v: {"field": {k: v}}, st.sampled_from(["plan", "visits", "city", "missing"]),
              st.one_of(SCALARS, st.sampled_from(PLANS))),
    st.builds(lambda s: {"stage": s}, st.lists(st.sampled_from(STAGES), min_size=1, max_size=3, unique=True)),
    st.builds(lambda c: {"score": c}, COMPARISONS),
    st.builds(lambda t, w, where: {"event": t, **({"within": w} if w else {}), **({"where": where} if where else {})},
              st.sampled_from(["purchase", "rating", "email.opened", "email.clicked", "class-booked"]),
              st.one_of(st.none(), DURATIONS),
              st.one_of(st.none(), st.dictionaries(st.sampled_from(["score", "amount", "product", "step", "bot"]),
                                                   st.one_of(SCALARS, COMPARISONS), max_size=2))),
    st.builds(lambda c: {"consent": c}, st.sampled_from(["email", "sms"])),
    st.builds(lambda d: {"engaged": d}, DURATIONS),
    st.builds(lambda d: {"inactive": d}, DURATIONS),
)
CONDITION_TREES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=3)),
                            st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=3)),
                            st.builds(lambda c: {"not": c}, inner)),
    max_leaves=6)


@pytest.fixture(params=["sqlite", "postgresql"])
def small(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    from tests.conftest import _postgres_database

    urls = ([f"sqlite:///{tmp_path_factory.mktemp('small') / 'n.db'}"] if request.param == "sqlite"
            else _postgres_database())
    for url in urls:
        engine = database(url, 600, seed=7)
        yield engine
        engine.dispose()


def test_any_condition_counts_the_same_in_sql_and_python(small: Engine) -> None:
    brute = BruteForce(small)

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(CONDITION_TREES)
    def same(condition: dict) -> None:
        seg = segment("random", condition)
        with Session(small) as session:
            assert store.member_ids(session, seg, NOW, limit=1000, scoring=SCORING) == brute.member_ids(seg)

    same()
