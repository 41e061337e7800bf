"""The in-flight cap: how many exports a run may still start, and what the images past the cap are told."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from handler.core.in_flight import Slots, Tracked, free_slots


def test_no_cap_leaves_every_slot_free_and_a_full_cap_none() -> None:
    """Unset, there is no limit; with as many in flight as the cap (or more) no export may start."""
    assert free_slots(None, 3) is None
    assert free_slots(3, 0) == 3
    assert free_slots(4, 5) == 0


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=-5, max_value=60))
def test_the_free_slots_never_pass_the_cap(cap: int, in_flight: int) -> None:
    """Starting the free slots' worth of exports never takes the count in flight past the cap."""
    slots = free_slots(cap, in_flight)
    assert slots is not None
    assert 0 <= slots <= cap
    assert max(0, in_flight) + slots <= max(cap, in_flight)


def test_a_scan_queues_what_the_cap_holds_and_named_images_are_deferred() -> None:
    """Two free slots: two exports go, the third image is queued (scan) or deferred (named), with the cap."""
    for scan, status in ((True, "queued"), (False, "deferred")):
        slots = Slots(Tracked(cap=3, in_flight=1), scan=scan)
        for _ in range(2):
            assert not slots.exhausted
            slots.take()
        assert slots.exhausted
        held = slots.held("img-3")
        assert held.status == status
        assert held.reason is not None
        assert "EXPORT_MAX_IN_FLIGHT=3" in held.reason
        # the count as it stands when the image is held: the one counted before, and this run's two
        assert "3 export(s) in flight (2 started by this run)" in held.reason


def test_a_held_image_before_any_start_gives_the_count_found() -> None:
    """A full cap found by the follow-up: the reason gives that count, with no starts of this run."""
    slots = Slots(Tracked(cap=2, in_flight=2), scan=True)
    assert slots.exhausted
    assert "2 export(s) in flight; a later run" in (slots.held("img-1").reason or "")


def test_exports_that_could_not_be_counted_hold_every_export_back() -> None:
    """Unknown in flight: no slot at all, and the reason says why."""
    slots = Slots(Tracked(cap=5, in_flight=None), scan=True)
    assert slots.exhausted
    assert "could not be counted" in (slots.held("img-1").reason or "")


def test_without_a_cap_or_tracking_nothing_is_held() -> None:
    """No cap (or tracking off): every due image may start."""
    for tracked in (None, Tracked(cap=None, in_flight=7)):
        slots = Slots(tracked, scan=True)
        for _ in range(100):
            slots.take()
        assert not slots.exhausted
