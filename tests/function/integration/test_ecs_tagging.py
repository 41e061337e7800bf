"""Tagging images through the ECS client (respx): TagResources queries, batches, key rules."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from handler.adapters.ecs import TAG_BATCH_LIMIT, TaggingReport, validate_tag_key
from handler.adapters.signing import Credentials
from handler.errors import TerminalApiError, UnknownOutcomeError
from tests.support.builders import api_error, api_ok, ecs_client
from tests.support.fakes import FakeClock

ENDPOINT = "https://open.volcengineapi.com"
CREDS = Credentials("AKLTcanaryaccess0000", "canary-secret-key-value")
TRACKING = {"image-exporter:state": "exporting", "image-exporter:dest": "tos://my-bucket/imgexport"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


# The ECS client these tests drive, at ENDPOINT with CREDS.
make_client = functools.partial(ecs_client, credentials=CREDS, attempts=3)


def queries(route: Any) -> list[dict[str, str]]:
    return [dict(parse_qsl(c.request.url.query.decode(), keep_blank_values=True)) for c in route.calls]


@respx.mock
def test_tagging_sends_the_exact_flattened_query(clock: FakeClock) -> None:
    """TagResources goes out with ResourceType=image, ResourceIds.N and Tags.N.Key/Value in the given order."""
    route = respx.get(ENDPOINT).mock(return_value=api_ok())
    report = make_client(clock).tag_images(["image-a", "image-b"], TRACKING, deadline=2000)
    assert report == TaggingReport(done=("image-a", "image-b"))
    assert queries(route) == [
        {
            "Action": "TagResources",
            "Version": "2020-04-01",
            "ResourceType": "image",
            "ResourceIds.1": "image-a",
            "ResourceIds.2": "image-b",
            "Tags.1.Key": "image-exporter:state",
            "Tags.1.Value": "exporting",
            "Tags.2.Key": "image-exporter:dest",
            "Tags.2.Value": "tos://my-bucket/imgexport",
        }
    ]
    raw = route.calls.last.request.url.query.decode()
    assert "Tags.2.Value=tos%3A%2F%2Fmy-bucket%2Fimgexport" in raw


@respx.mock
def test_images_are_tagged_fifty_a_request_without_repeats(clock: FakeClock) -> None:
    """120 images (one named twice) take three requests of 50, 50 and 20 ids, in order."""
    route = respx.get(ENDPOINT).mock(return_value=api_ok())
    ids = [f"image-{n:03d}" for n in range(120)]
    report = make_client(clock).tag_images([*ids, ids[0]], TRACKING, deadline=2000)
    sent = queries(route)
    assert [sum(k.startswith("ResourceIds.") for k in q) for q in sent] == [
        TAG_BATCH_LIMIT,
        TAG_BATCH_LIMIT,
        20,
    ]
    assert [q[f"ResourceIds.{n}"] for q in sent for n in range(1, 51) if f"ResourceIds.{n}" in q] == ids
    assert report.done == tuple(ids)


@respx.mock
def test_a_refused_batch_is_reported_beside_its_images_and_the_rest_go_on(clock: FakeClock) -> None:
    """A 403 on one request leaves its images untracked with the error; the other batches are still tagged."""
    route = respx.get(ENDPOINT).mock(side_effect=[api_error(403, "AccessDenied"), api_ok()])
    ids = [f"image-{n:03d}" for n in range(60)]
    report = make_client(clock).tag_images(ids, TRACKING, deadline=2000)
    assert route.call_count == 2
    assert report.done == tuple(ids[50:])
    assert report.failed_ids == tuple(ids[:50])
    (failure,) = report.failures
    assert failure.error.code == "AccessDenied"


@respx.mock
def test_a_lost_answer_is_sent_again_because_tagging_is_idempotent(clock: FakeClock) -> None:
    """A read timeout on TagResources is retried (setting a tag twice changes nothing)."""
    route = respx.get(ENDPOINT).mock(side_effect=[httpx.ReadTimeout("slow"), api_ok()])
    report = make_client(clock).tag_images(["image-a"], TRACKING, deadline=2000)
    assert report.done == ("image-a",)
    assert route.call_count == 2


@respx.mock
def test_tagging_failing_after_every_attempt_is_reported_not_raised(clock: FakeClock) -> None:
    """When the retry budget runs out the images are reported untracked with the last error."""
    route = respx.get(ENDPOINT).mock(side_effect=httpx.ReadTimeout("slow"))
    report = make_client(clock, attempts=2).tag_images(["image-a"], TRACKING, deadline=2000)
    assert report.failed_ids == ("image-a",)
    assert isinstance(report.failures[0].error, UnknownOutcomeError)
    assert route.call_count == 2


@respx.mock
def test_no_images_send_nothing(clock: FakeClock) -> None:
    """Tagging no images makes no request at all."""
    route = respx.get(ENDPOINT).mock(return_value=api_ok())
    assert make_client(clock).tag_images([], TRACKING, deadline=2000) == TaggingReport()
    assert route.call_count == 0


@pytest.mark.parametrize(
    ("tags", "named"),
    [
        ({"volc:owner": "x"}, "volc:owner"),
        ({"SYS:thing": "x"}, "SYS:thing"),
        ({"bad#key": "x"}, "bad#key"),
        ({"": "x"}, "''"),
        ({"k" * 129: "x"}, "k" * 129),
        ({"ok": "v" * 257}, "'ok'"),
        ({f"k{n}": "v" for n in range(21)}, "tags"),
        ({}, "tags"),
    ],
)
@respx.mock
def test_bad_tags_are_refused_naming_the_key_before_sending(
    clock: FakeClock, tags: dict[str, str], named: str
) -> None:
    """A reserved, malformed or too long key, a too long value, or more than 20 tags: an error naming it."""
    route = respx.get(ENDPOINT).mock(return_value=api_ok())
    with pytest.raises(TerminalApiError) as caught:
        make_client(clock).tag_images(["image-a"], tags, deadline=2000)
    assert named in caught.value.message
    assert route.call_count == 0


@respx.mock
def test_keys_with_every_allowed_character_are_accepted(clock: FakeClock) -> None:
    """Letters (any script), digits, spaces and _ . : / = + - @ make a valid key of up to 128 characters."""
    route = respx.get(ENDPOINT).mock(return_value=api_ok())
    tags = {"Team 名_.:/=+-@9": "v", "k" * 128: "v" * 256}
    assert make_client(clock).tag_images(["image-a"], tags, deadline=2000).done == ("image-a",)
    assert route.call_count == 1


ALLOWED_PUNCTUATION = " _.:/=+-@"


@given(st.text(alphabet=st.sampled_from("abcXYZ019" + ALLOWED_PUNCTUATION), min_size=1, max_size=128))
def test_any_key_of_allowed_characters_is_valid_unless_reserved(key: str) -> None:
    """A key of letters, digits and _ . : / = + - @ or spaces passes, unless it starts with volc: or sys:."""
    reserved = key.lower().startswith(("volc:", "sys:"))
    try:
        validate_tag_key(key)
    except TerminalApiError:
        assert reserved
    else:
        assert not reserved


@given(st.text(min_size=1, max_size=20), st.sampled_from("#$%&*()[]{}|\\;'\",<>?!\n\t"))
def test_a_key_with_any_other_punctuation_is_refused_naming_it(text: str, bad: str) -> None:
    """A key holding a character outside the documented set is refused, and the error shows the key."""
    key = text + bad
    with pytest.raises(TerminalApiError) as caught:
        validate_tag_key(key)
    assert repr(key) in caught.value.message
