"""Properties of parse_event: whatever arrives, the answer is a command or an InvalidEvent, never a crash;
and valid events always name exactly the images they were given."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from handler.errors import InvalidEvent
from handler.models.events import IMAGE_ID_PATTERN, ExportCommand, ScanCommand, parse_event
from tests.support.builders import examples

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
image_ids = st.from_regex(IMAGE_ID_PATTERN, fullmatch=True)
# Keys every accepted shape looks at, so that generated dicts reach deep into the parser.
event_keys = st.sampled_from(
    [
        "specversion", "id", "source", "type", "subject", "data", "data_base64", "detail-type", "detail",
        "httpMethod", "headers", "body", "isBase64Encoded", "ImageId", "ImageIds", "imageId", "image_id",
        "ResourceId", "TOSBucket", "TOSPrefix", "LookbackHours", "ImageNamePrefix", "Tags", "State",
    ]
)  # fmt: skip
nearly_valid_values = (
    json_values
    | image_ids
    | st.lists(image_ids | json_scalars, max_size=5)
    | st.sampled_from(["1.0", "faas.timer.event", "", "POST", "demo-exports", "nightly", True])
)
nearly_valid_values = nearly_valid_values | st.dictionaries(event_keys, nearly_valid_values, max_size=5)


def event_like() -> st.SearchStrategy[dict[str, Any]]:
    """Dicts built from the keys the parser knows, with values near and far from valid."""
    flat = st.dictionaries(event_keys | st.text(max_size=8), nearly_valid_values, max_size=6)
    as_text = flat.map(json.dumps)
    timers = st.fixed_dictionaries(
        {"specversion": st.just("1.0"), "type": st.just("faas.timer.event")},
        optional={"id": json_scalars, "data": nearly_valid_values | as_text},
    )
    clouds = st.fixed_dictionaries(
        {"specversion": st.just("1.0"), "id": json_scalars},
        optional={"data": nearly_valid_values | as_text, "subject": image_ids | json_scalars},
    )
    https = st.fixed_dictionaries(
        {"httpMethod": st.just("POST"), "body": as_text | nearly_valid_values},
        optional={
            "headers": st.dictionaries(st.sampled_from(["x-request-id", "X-Request-Id"]), json_scalars),
            "isBase64Encoded": st.booleans(),
        },
    )
    encoded = as_text.map(lambda text: {"httpMethod": "POST", "isBase64Encoded": True, "body": b64(text)})
    return flat | timers | clouds | https | encoded


def b64(text: str) -> str:
    """Base64 of UTF-8 text, as an API gateway sends a binary body."""
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


def parses_or_refuses(event: object) -> None:
    """The one thing parse_event may raise is InvalidEvent, and its message stays short."""
    outcome: object
    try:
        outcome = parse_event(event)
    except InvalidEvent as error:
        outcome = error
    if isinstance(outcome, InvalidEvent):
        assert len(str(outcome)) < 700
    else:
        assert isinstance(outcome, ScanCommand | ExportCommand)


@settings(max_examples=examples(300), deadline=None)
@given(json_values)
def test_any_json_value_is_a_command_or_an_invalid_event(event: object) -> None:
    """No JSON value makes the parser crash: it answers with a command or a clear refusal."""
    parses_or_refuses(event)


@settings(max_examples=examples(400), deadline=None)
@given(event_like())
def test_any_event_like_dict_is_a_command_or_an_invalid_event(event: dict[str, Any]) -> None:
    """Near-miss CloudEvents, timers, HTTP and direct events never crash the parser."""
    parses_or_refuses(event)


def deduplicated(ids: list[str]) -> tuple[str, ...]:
    """The ids in first-seen order, each once."""
    return tuple(dict.fromkeys(ids))


batches = st.lists(image_ids, min_size=1, max_size=30).flatmap(
    lambda ids: st.lists(st.sampled_from(ids), min_size=len(ids), max_size=len(ids) + 10).map(
        lambda extra: ids + extra
    )
)


@settings(max_examples=examples(100), deadline=None)
@given(batches, st.sampled_from(["direct", "timer", "http"]))
def test_valid_batches_name_exactly_their_images(ids: list[str], shape: str) -> None:
    """Direct, timer and HTTP events export every id they name, once each, in the order named."""
    direct = {"ImageIds": ids}
    shapes: dict[str, dict[str, Any]] = {
        "direct": direct,
        "timer": {"specversion": "1.0", "id": "t", "type": "faas.timer.event", "data": json.dumps(direct)},
        "http": {"httpMethod": "POST", "body": b64(json.dumps(direct)), "isBase64Encoded": True},
    }
    command = parse_event(shapes[shape])
    assert isinstance(command, ExportCommand)
    assert command.trigger == shape
    assert command.image_ids == deduplicated(ids)


@settings(max_examples=examples(100), deadline=None)
@given(image_ids, st.sampled_from(["ImageId", "imageId", "image_id", "ResourceId"]), st.booleans())
def test_valid_single_image_events_name_their_image(image_id: str, key: str, as_text: bool) -> None:
    """A CloudEvent naming one image, under any accepted spelling, exports exactly that image."""
    data: object = {key: image_id}
    event = {
        "specversion": "1.0",
        "id": "e",
        "source": "s",
        "type": "t",
        "data": json.dumps(data) if as_text else data,
    }
    assert parse_event(event) == ExportCommand(trigger="event", event_id="e", image_ids=(image_id,))


@settings(max_examples=examples(100), deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "LookbackHours": st.floats(min_value=0.01, max_value=8760),
            "ImageNamePrefix": st.text(min_size=1, max_size=20),
            "Tags": st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=5),
            "TOSPrefix": st.from_regex(r"\A[A-Za-z0-9]{1,30}\Z"),
        },
    )
)
def test_valid_timer_payloads_become_the_scan_they_describe(payload: dict[str, Any]) -> None:
    """Every valid timer payload without ImageIds becomes a scan carrying exactly its options."""
    command = parse_event(
        {"specversion": "1.0", "id": "t", "type": "faas.timer.event", "data": json.dumps(payload)}
    )
    assert command == ScanCommand(
        trigger="timer",
        event_id="t",
        tos_prefix=payload.get("TOSPrefix"),
        lookback_hours=payload.get("LookbackHours"),
        image_name_prefix=payload.get("ImageNamePrefix"),
        tags=payload.get("Tags", {}),
    )
