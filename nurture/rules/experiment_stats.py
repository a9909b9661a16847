"""The arithmetic that judges an experiment: a rate's confidence interval, the difference of two rates,
and how many more contacts it takes before the difference can be told at all.

Pure, standard library only (statistics.NormalDist for the normal quantiles). The methods, so that anyone
can check the figures by hand:

- a rate's 95% interval: Wilson's score interval (Wilson 1927), which stays inside [0, 1] and behaves at
  0 and 100%, unlike the textbook p ± 1.96·√(p(1-p)/n);
- the difference of two rates: Newcombe's hybrid score interval ("method 10", Newcombe 1998), built from
  the two Wilson intervals; a difference is called only when that interval leaves out 0;
- the contacts needed: the normal-approximation sample size for two proportions with unequal allocation
  (Chow, Shao & Wang, *Sample Size Calculations in Clinical Research*, §4.2), two-sided α = 5%, power 80%,
  to detect a relative change of MIN_EFFECT (20%) on the baseline rate. The baseline is the pooled rate
  with one success and one failure added (Laplace), so that it is defined before the first click. With
  more than two arms each is compared with the first, at α divided by the number of comparisons
  (Bonferroni).

The verdict waits for that sample size and then reads the interval once: peeking at a p-value every day
and stopping at the first "significant" one calls far more false winners than 5%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

ALPHA = 0.05
POWER = 0.8
MIN_EFFECT = 0.2  # the smallest relative change worth detecting: 10% -> 12% clicks


def z_for(alpha: float) -> float:
    """The two-sided normal quantile: 1.959964 for alpha 0.05."""
    return NormalDist().inv_cdf(1 - alpha / 2)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def wilson(successes: int, n: int, z: float | None = None) -> Interval:
    """Wilson's score interval for successes/n (95% unless `z` says otherwise); [0, 1] for n = 0."""
    if n <= 0:
        return Interval(0.0, 1.0)
    z = z_for(ALPHA) if z is None else z
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def difference(k1: int, n1: int, k2: int, n2: int, z: float | None = None) -> Interval:
    """Newcombe's interval for p1 - p2 (method 10: from the two Wilson intervals)."""
    p1, p2 = (k1 / n1 if n1 else 0.0), (k2 / n2 if n2 else 0.0)
    a, b = wilson(k1, n1, z), wilson(k2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - a.low) ** 2 + (b.high - p2) ** 2)
    high = d + math.sqrt((a.high - p1) ** 2 + (p2 - b.low) ** 2)
    return Interval(low, high)


def contacts_needed(baseline: float, share_a: float, share_b: float, comparisons: int = 1,
                    effect: float = MIN_EFFECT) -> float:
    """Contacts in all (of which `share_a` go to arm a and `share_b` to arm b) to tell `baseline` from
    `baseline·(1+effect)` with two-sided α = 5% (over `comparisons`) and 80% power:

        N = (z_{1-α/2m} + z_{power})² · (p1(1-p1)/share_a + p2(1-p2)/share_b) / (p2 - p1)²
    """
    p1 = min(max(baseline, 1e-9), 1 - 1e-9)
    p2 = min(p1 * (1 + effect), 1 - 1e-9)
    z = z_for(ALPHA / comparisons) + NormalDist().inv_cdf(POWER)
    return z * z * (p1 * (1 - p1) / share_a + p2 * (1 - p2) / share_b) / (p2 - p1) ** 2


@dataclass(frozen=True)
class Arm:
    """One arm's record: `n` contacts, `k` of them succeeded (clicked, or reached the goal)."""

    id: str
    weight: float  # its share of the contacts, as the file sets it
    n: int
    k: int

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else 0.0

    @property
    def interval(self) -> Interval:
        return wilson(self.k, self.n)


@dataclass(frozen=True)
class Comparison:
    """An arm against the first (the control, or the holdout): the difference with its interval."""

    arm: Arm
    control: Arm
    interval: Interval

    @property
    def difference(self) -> float:
        return self.arm.rate - self.control.rate

    @property
    def clear(self) -> bool:
        return self.interval.excludes_zero()


@dataclass(frozen=True)
class Verdict:
    more_needed: int  # contacts still needed before the first verdict (0: enough)
    comparisons: tuple[Comparison, ...] = ()  # once there are enough: each arm against the first

    @property
    def ready(self) -> bool:
        return self.more_needed == 0


def more_needed(arms: list[Arm], effect: float = MIN_EFFECT) -> int:
    """How many more contacts (over all arms) until every arm has its share of the sample size."""
    total_n = sum(a.n for a in arms)
    baseline = (sum(a.k for a in arms) + 1) / (total_n + 2)
    weight = sum(a.weight for a in arms)
    control, others = arms[0], arms[1:]
    needed = max(contacts_needed(baseline, control.weight / weight, arm.weight / weight, len(others), effect)
                 for arm in others)
    return max(0, math.ceil(needed) - total_n)


def judge(arms: list[Arm], effect: float = MIN_EFFECT) -> Verdict:
    """Not enough data yet (and how many more contacts), or each arm against the first."""
    if len(arms) < 2:
        raise ValueError("an experiment needs two arms")
    more = more_needed(arms, effect)
    if more:
        return Verdict(more)
    z = z_for(ALPHA / (len(arms) - 1))
    control = arms[0]
    return Verdict(0, tuple(Comparison(arm, control, difference(arm.k, arm.n, control.k, control.n, z))
                            for arm in arms[1:]))


def about(n: int) -> int:
    """A count of contacts rounded up to two significant figures: 'about 7,700', not 'about 7,651'."""
    if n < 100:
        return n
    step = 10 ** (len(str(n)) - 2)
    return -(-n // step) * step
