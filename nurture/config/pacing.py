"""Deliverability settings: the PACING_*, EMAIL_RATE, WARMUP_* and REPUTATION_* variables.

`DeliverabilitySettings()` alone is the default: no pace (every receiving domain at the relay's full
speed), no warm-up, and the reputation guard on at the thresholds mailbox providers and Amazon SES use
(5% bounces, 0.1% complaints over the last 1,000 sends).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from nurture.config.values import backoff
from nurture.rules.pacing import GROUPS

_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")


def parse_rate(value: object) -> object:
    """"10" or "10/s" (per second), "600/m", "3600/h": messages per second; 0 is no limit."""
    if not isinstance(value, str):
        return value
    match = _RATE.match(value)
    if not match:
        raise ValueError(f"expected a rate like 14/s, 600/m or 20000/h, got {value!r}")
    return float(match.group(1)) / _PER[match.group(2) or "s"]


def parse_group_rates(value: object) -> object:
    """PACING_RATES="gmail=10/s,outlook=5/s,yahoo=5/s,other=20/s": the pace per receiving domain group."""
    if not isinstance(value, str):
        return value
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, given = part.partition("=")
        if name.strip() not in GROUPS:
            raise ValueError(f"unknown domain group {name.strip()!r} (groups: {', '.join(GROUPS)})")
        rates[name.strip()] = parse_rate(given)  # type: ignore[assignment]
    return rates


def parse_schedule(value: object) -> object:
    """WARMUP_DAILY="50,100,200": the daily cap on day 1, 2, 3 ... of the warm-up (no cap after it)."""
    if not isinstance(value, str):
        return value
    try:
        caps = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated daily caps like 50,100,200, got {value!r}") from None
    if not caps or min(caps) < 1:
        raise ValueError("needs at least one daily cap, each at least 1")
    return caps


def parse_share(value: object) -> object:
    """"5%" or "0.05"."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"expected a share like 5% or 0.05, got {value!r}") from None
    return value


Rate = Annotated[float, BeforeValidator(parse_rate), Field(ge=0)]
Share = Annotated[float, BeforeValidator(parse_share), Field(gt=0, le=1)]


def _doubling() -> tuple[int, ...]:
    # 50 on the first day, doubling for two weeks (to 409,600): what mailbox providers' guides suggest
    # for a new domain or IP. A real schedule belongs to the relay's advice; WARMUP_DAILY sets it.
    return tuple(50 * 2 ** day for day in range(14))


class DeliverabilitySettings(BaseModel):
    """Built from the whole environment mapping; each field reads the variable it is aliased to."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True)

    # The relay's own quota (Amazon SES: "maximum send rate"), shared by every worker. 0: no limit.
    email_rate: Rate = Field(0.0, alias="EMAIL_RATE")
    group_rates: Annotated[dict[str, float], BeforeValidator(parse_group_rates)] = Field(
        default_factory=dict, alias="PACING_RATES")
    # A 421/451/454 "slow down" backs the domain group off for these seconds, growing with each one.
    throttle_backoff: Annotated[tuple[int, ...], BeforeValidator(backoff)] = Field(
        (60, 300, 900, 3600), alias="PACING_BACKOFF")
    warmup_start: date | None = Field(None, alias="WARMUP_START")  # day 1 of a new sending domain's warm-up
    warmup_daily: Annotated[tuple[int, ...], BeforeValidator(parse_schedule)] = Field(
        default_factory=_doubling, alias="WARMUP_DAILY")
    guard: bool = Field(True, alias="REPUTATION_GUARD")
    window: int = Field(1000, ge=10, alias="REPUTATION_WINDOW")  # the last N sends the rates are over
    # Fewer sends than this in the window: no verdict (one complaint in the first ten sends is not a rate).
    min_sends: int = Field(200, ge=1, alias="REPUTATION_MIN_SENDS")
    max_bounce_rate: Share = Field(0.05, alias="REPUTATION_MAX_BOUNCE_RATE")
    max_complaint_rate: Share = Field(0.001, alias="REPUTATION_MAX_COMPLAINT_RATE")

    @property
    def paced(self) -> bool:
        """Whether any rate or a warm-up applies: without one, only a relay's "slow down" paces."""
        return bool(self.email_rate or any(self.group_rates.values()) or self.warmup_start)
