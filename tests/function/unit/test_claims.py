"""Claims, the pure part: the tag value, when a claim holds, how report claims count, and the one order in
which every copy of the function grants start claims under the cap."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handler.core.claims import (
    CLAIM_KEY,
    CLAIM_MARGIN_SECONDS,
    NO_CLAIM,
    Claim,
    claim_lasts,
    claim_of,
    granted_starts,
    millis,
)
from handler.core.tracking import DEST_KEY, STATE_KEY
from handler.models.api import Image
from tests.support.builders import NOW


def image(image_id: str, claim: Claim | str | None = None, state: str = "exporting") -> Image:
    tags = {STATE_KEY: state, DEST_KEY: "tos://b-1/nightly"}
    if claim is not None:
        tags[CLAIM_KEY] = claim if isinstance(claim, str) else claim.value
    return Image.from_api(
        {
            "ImageId": image_id,
            "Status": "available",
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }
    )


def start(holder: str, *, seconds_ago: float = 0, lasts: float = 900) -> Claim:
    return Claim.new("start", holder, now=NOW - timedelta(seconds=seconds_ago), lasts=lasts)


@given(
    holder=st.text(st.characters(codec="ascii", categories=("L", "N", "P")), min_size=1, max_size=200),
    lasts=st.floats(0, 100_000),
    reports=st.integers(0, 1000),
)
def test_a_claim_reads_back_as_written(holder: str, lasts: float, reports: int) -> None:
    """Whatever the holder's id, the value parses back to the claim (ids are cut to 100 characters and lose
    their spaces, so the value stays within the 256 a tag value holds)."""
    for claim in (
        Claim.new("start", holder, now=NOW, lasts=lasts),
        Claim.new("report", holder, now=NOW, lasts=lasts, reports=reports),
    ):
        assert Claim.parse(claim.value) == claim
        assert len(claim.value) <= 256


@pytest.mark.parametrize(
    "value", [NO_CLAIM, "", "done", "start 1 2", "start a b holder", "report 1 2 x t-1 holder", "stop 1 2 h"]
)
def test_a_value_this_function_never_writes_claims_nothing(value: str) -> None:
    """``none``, a value edited by hand or cut short holds no claim: the image is free to claim."""
    assert Claim.parse(value) is None
    assert claim_of(image("image-a", value)) is None


def test_a_claim_holds_until_its_holders_budget_and_the_margin_are_over() -> None:
    claim = Claim.new("start", "run-1", now=NOW, lasts=claim_lasts(900))
    assert claim.fresh(NOW + timedelta(seconds=900 + CLAIM_MARGIN_SECONDS - 1))
    assert not claim.fresh(NOW + timedelta(seconds=900 + CLAIM_MARGIN_SECONDS))
    # a budget that is not known to end (a test's, a CLI run) still gives a time a datetime can hold
    assert claim_lasts(1e12) == 86400 + CLAIM_MARGIN_SECONDS


def test_a_report_claim_left_in_place_counts_one_more_report() -> None:
    """A report claim still on the image means its end was reported and the retag did not follow: the next
    claim counts one more (a retag that keeps failing is noticed); over a start claim the count starts at 1."""
    first = Claim.new("report", "run-1", now=NOW, lasts=60, reports=1)
    again = first.renewed(now=NOW, lasts=60, holder="run-2")
    assert (again.reports, again.holder) == (2, "run-2")
    assert start("run-1").renewed(now=NOW, lasts=60, holder="run-2").reports == 1


def test_start_claims_are_granted_in_one_order_after_the_exports_in_flight() -> None:
    """Cap 3, one export in flight: of four fresh start claims, the two oldest (then by holder) are granted,
    whichever copy computes it; an expired start claim counts as in flight (its fate is the follow-up's)."""
    listed = [
        image("image-busy"),  # in flight, no claim
        image("image-b1", start("run-b", seconds_ago=1)),
        image("image-a1", start("run-a", seconds_ago=1)),
        image("image-a2", start("run-a", seconds_ago=0)),
        image("image-c1", start("run-c", seconds_ago=3)),
    ]
    assert granted_starts(listed, cap=3, finished=(), now=NOW) == {"image-c1", "image-a1"}
    assert granted_starts(list(reversed(listed)), cap=3, finished=(), now=NOW) == {"image-c1", "image-a1"}
    stale = image("image-old", start("run-z", seconds_ago=2000, lasts=10))
    assert granted_starts([stale, *listed], cap=3, finished=(), now=NOW) == {"image-c1"}


def test_exports_the_follow_up_found_finished_leave_their_slots_free() -> None:
    listed = [image("image-done"), image("image-new", start("run-a"))]
    assert granted_starts(listed, cap=1, finished=(), now=NOW) == frozenset()
    assert granted_starts(listed, cap=1, finished=("image-done",), now=NOW) == {"image-new"}


def test_claim_times_are_the_writers_clock_in_milliseconds() -> None:
    claim = start("run-1", lasts=1.5)
    assert claim.since == millis(NOW)
    assert claim.until - claim.since == 1500
