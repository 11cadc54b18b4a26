"""Token buckets of the gateway's rate limits (gateway/edge.py), with the clock given by the test."""

from __future__ import annotations

import pytest
from limits import parse_many

from gateway.edge import Buckets

WHO = ("acme", "alice")


def takes(buckets: Buckets, count: int, now: float, who: tuple[str, ...] = WHO) -> list[bool]:
    return [buckets.take(who, now) is None for _ in range(count)]


def test_a_fresh_client_bursts_the_window_and_is_then_refused_until_a_token_is_back() -> None:
    buckets = Buckets(parse_many("10/minute"))  # 10 tokens, one back every 6 s
    assert takes(buckets, 11, now=0.0) == [True] * 10 + [False]
    window, wait = buckets.take(WHO, 1.0)  # type: ignore[misc]
    assert window.amount == 10 and wait == pytest.approx(5.0)
    assert takes(buckets, 2, now=7.0) == [True, False]  # a token back at 6 s, not two by 7 s


def test_the_tightest_of_several_windows_refuses() -> None:
    buckets = Buckets(parse_many("3/second;5/minute"))
    assert takes(buckets, 3, now=0.0) == [True, True, True]
    assert takes(buckets, 1, now=0.0) == [False]  # the second's three are spent
    assert takes(buckets, 3, now=1.0) == [True, True, False]  # the second's are back, the minute has 2 left
    window, wait = buckets.take(WHO, 1.0)  # type: ignore[misc]
    assert window.amount == 5 and wait == pytest.approx(11.0)  # a token every 12 s; 1/12 of one came back since 0


def test_clients_have_buckets_of_their_own() -> None:
    buckets = Buckets(parse_many("1/hour"))
    assert takes(buckets, 2, now=0.0) == [True, False]
    assert takes(buckets, 1, now=0.0, who=("acme", "bob")) == [True]


def test_headers_describe_the_window_with_fewest_tokens() -> None:
    buckets = Buckets(parse_many("100/second;4/minute"))
    buckets.take(WHO, 0.0)
    assert buckets.headers(WHO) == {"RateLimit-Limit": "4", "RateLimit-Remaining": "3", "RateLimit-Reset": "15"}


def test_a_bucket_full_again_is_forgotten_at_the_next_sweep_and_starts_full() -> None:
    buckets = Buckets(parse_many("2/minute"))
    assert takes(buckets, 3, now=0.0) == [True, True, False]
    buckets.take(("acme", "carol"), 30.0)
    buckets.take(("acme", "dave"), 61.0)  # a sweep: alice's last take was a minute ago, carol's not
    assert set(buckets.buckets) == {("acme", "carol"), ("acme", "dave")}
    assert takes(buckets, 3, now=61.0) == [True, True, False]


def test_an_off_budget_counts_nothing() -> None:
    buckets = Buckets([])
    assert takes(buckets, 1000, now=0.0) == [True] * 1000
    assert buckets.headers(WHO) == {}
