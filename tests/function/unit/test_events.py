"""Events accepted (docs/contract.md): every shape and spelling becomes the right command; anything else is refused
with a message that names the field."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from handler.errors import InvalidEvent
from handler.models.events import (
    IMAGE_ID_PATTERN,
    DoctorCommand,
    ExportCommand,
    RestoreCommand,
    ScanCommand,
    is_http_event,
    parse_event,
    recognise,
)
from tests.support.events import EVENT_NAMES, EVENTS_DIR, load_event

IMG_A = "image-ybqi99s7yq8rx7mnk44b"
IMG_B = "image-3f7k2m9q1x8w5v6n4b0c"
IMG_C = "image-p8d2r5t7y1u3i9o0a6sl"


def timer(data: object = "", **extra: object) -> dict[str, Any]:
    """A veFaaS timer event (docs/facts.md §6) with the given data."""
    return {
        "id": "timer-1",
        "source": "/faas/event/timer/tm-1",
        "specversion": "1.0",
        "type": "faas.timer.event",
        "datacontenttype": "application/octet-stream",
        "data": data,
        **extra,
    }


def cloud_event(data: object = None, **extra: object) -> dict[str, Any]:
    """A CloudEvents 1.0 event of some product type."""
    return {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "ecs",
        "type": "ecs:Image:Created",
        "data": data,
        **extra,
    }


def http(body: object, *, base64_encoded: bool = False, headers: object = None) -> dict[str, Any]:
    """A veFaaS API-gateway event wrapping ``body``."""
    text = json.dumps(body) if isinstance(body, dict) else body
    if base64_encoded and isinstance(text, str):
        text = base64.b64encode(text.encode()).decode()
    return {
        "httpMethod": "POST",
        "path": "/",
        "headers": headers if headers is not None else {},
        "body": text,
        "isBase64Encoded": base64_encoded,
    }


def refusal(event: object) -> InvalidEvent:
    """The InvalidEvent parse_event raises for ``event``."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(event)
    return caught.value


# --- the sample events --------------------------------------------------------------------------------

SAMPLE_COMMANDS: dict[str, ScanCommand | ExportCommand | RestoreCommand | DoctorCommand] = {
    "restore": RestoreCommand(trigger="direct", image_id="image-ybqi99s7yq8rx7mnk44b"),
    "doctor": DoctorCommand(trigger="direct"),
    "timer_scan": ScanCommand(
        trigger="timer",
        event_id="9cab1030-6e4b-4e26-9b2b-4e6d4f0c9a51",
        tos_prefix="nightly",
        lookback_hours=48,
        image_name_prefix="web-",
        tags={"env": "prod", "team": "platform"},
    ),
    "timer_image_ids": ExportCommand(
        trigger="timer",
        event_id="1f0e7b52-3c4d-4a8e-9f61-2b7d8c9e0a13",
        image_ids=(IMG_A, IMG_B),
        tos_bucket="demo-exports",
    ),
    "timer_empty": ScanCommand(trigger="timer", event_id="5d2a8f14-9b3e-4c71-a6d0-8e4f1b2c3d45"),
    "image_created": ExportCommand(
        trigger="event", event_id="c4e1a9b0-2d3f-4e5a-8b6c-7d8e9f0a1b2c", image_ids=(IMG_A,)
    ),
    "eventbridge": ExportCommand(
        trigger="event", event_id="7bf73129-1428-4cd3-a780-95db273d1602", image_ids=(IMG_C,)
    ),
    "http_direct": ExportCommand(
        trigger="http",
        event_id="req-20240601-081700-4f2a9c",
        image_ids=("image-k4j6h8g2f0d1s3a5q7wz",),
        tos_bucket="demo-exports",
        tos_prefix="adhoc",
    ),
    "direct_single": ExportCommand(
        trigger="direct",
        image_ids=("image-m1n2b3v4c5x6z7l8k9jh",),
        tos_bucket="demo-exports",
        tos_prefix="adhoc",
    ),
    "direct_batch": ExportCommand(
        trigger="direct", image_ids=(IMG_A, IMG_B, IMG_C), tos_bucket="demo-exports"
    ),
}


@pytest.mark.parametrize(("name", "expected"), SAMPLE_COMMANDS.items(), ids=list(SAMPLE_COMMANDS))
def test_each_sample_event_parses_to_its_command(
    name: str, expected: ScanCommand | ExportCommand | RestoreCommand | DoctorCommand
) -> None:
    """Every sample in events/ (which the README shows) becomes the command it documents."""
    assert parse_event(load_event(name)) == expected


def test_the_invalid_sample_is_refused_with_a_clear_message() -> None:
    """events/invalid.json demonstrates an error that names the field and echoes the bad value."""
    error = refusal(load_event("invalid"))
    assert error.field == "ImageId"
    assert str(error) == "ImageId: expected an image id like image-ybqi99s7yq8rx7mnk44b, got 'not-an-image'"


def test_event_names_list_exactly_the_sample_files() -> None:
    """EVENT_NAMES and events/*.json agree, and every sample besides invalid.json has a documented command."""
    assert sorted(EVENT_NAMES) == sorted(path.stem for path in EVENTS_DIR.glob("*.json"))
    assert set(EVENT_NAMES) == {*SAMPLE_COMMANDS, "invalid"}


def leaves(value: object, key: object = None) -> list[tuple[object, str]]:
    """Every (key, string) in a JSON value, looking inside strings (and base64 bodies) that hold JSON."""
    if isinstance(value, dict):
        return [leaf for k, item in value.items() for leaf in leaves(item, k)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in leaves(item, key)]
    if not isinstance(value, str):
        return []
    for decode in (lambda text: text, lambda text: base64.b64decode(text, validate=True).decode()):
        try:
            inner = json.loads(decode(value))
        except ValueError:
            continue
        if isinstance(inner, dict | list):
            return leaves(inner, key)
    return [(key, value)]


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_sample_values_look_real(name: str) -> None:
    """Samples use real-looking ids (image- and 20 lowercase letters or digits) and the demo bucket."""
    found = leaves(load_event(name))
    image_ids = [text for _, text in found if text.startswith("image-")]
    assert all(re.fullmatch(r"image-[a-z0-9]{20}", image_id) for image_id in image_ids)
    assert {text for key, text in found if key == "TOSBucket"} <= {"demo-exports"}
    expected = SAMPLE_COMMANDS.get(name)
    if isinstance(expected, ExportCommand):
        assert set(expected.image_ids) <= set(image_ids)


# --- timer ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        timer(""),
        timer("   \n"),
        timer(None),
        timer("{}"),
        timer({}),
        {k: v for k, v in timer().items() if k != "data"},
        timer('{"TOSBucket": null, "LookbackHours": null, "Tags": null, "ImageNamePrefix": ""}'),
    ],
    ids=["empty", "blank", "null", "empty-object", "object", "missing", "nulls"],
)
def test_timer_without_payload_scans_with_defaults(event: dict[str, Any]) -> None:
    """A timer with nothing to say (or only nulls) scans with the configured defaults."""
    assert parse_event(event) == ScanCommand(trigger="timer", event_id="timer-1")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"LookbackHours": 48}, {"lookback_hours": 48.0}),
        ({"LookbackHours": 0.5}, {"lookback_hours": 0.5}),
        ({"LookbackHours": 8760}, {"lookback_hours": 8760.0}),
        ({"LookbackHours": "72"}, {"lookback_hours": 72.0}),
        ({"ImageNamePrefix": "web-"}, {"image_name_prefix": "web-"}),
        ({"Tags": {"env": "prod", "owner": ""}}, {"tags": {"env": "prod", "owner": ""}}),
        (
            {"TOSBucket": "demo-exports", "TOSPrefix": "Nightly01"},
            {"tos_bucket": "demo-exports", "tos_prefix": "Nightly01"},
        ),
    ],
)
def test_timer_payload_sets_scan_options(payload: dict[str, Any], expected: dict[str, Any]) -> None:
    """Each timer payload key reaches the scan command."""
    command = parse_event(timer(json.dumps(payload)))
    assert command == ScanCommand(trigger="timer", event_id="timer-1", **expected)


@pytest.mark.parametrize(
    "event",
    [
        timer(json.dumps({"ImageIds": [IMG_A, IMG_B, IMG_A]})),
        timer({"ImageIds": [IMG_A, IMG_B]}),
        timer(None, data_base64=base64.b64encode(json.dumps({"ImageIds": [IMG_A, IMG_B]}).encode()).decode()),
        {"type": "faas.timer.event", "id": "timer-1", "data": json.dumps({"ImageIds": [IMG_A, IMG_B]})},
    ],
    ids=["string", "object", "data_base64", "no-specversion"],
)
def test_timer_with_image_ids_exports_exactly_those(event: dict[str, Any]) -> None:
    """A timer naming ImageIds exports those images, duplicates dropped, in order."""
    assert parse_event(event) == ExportCommand(trigger="timer", event_id="timer-1", image_ids=(IMG_A, IMG_B))


def test_timer_with_image_ids_keeps_bucket_and_prefix() -> None:
    """TOSBucket and TOSPrefix apply to a timer's named images too."""
    payload = {"ImageIds": [IMG_A], "TOSBucket": "demo-exports", "TOSPrefix": "t1"}
    command = parse_event(timer(json.dumps(payload)))
    assert command == ExportCommand(
        trigger="timer", event_id="timer-1", image_ids=(IMG_A,), tos_bucket="demo-exports", tos_prefix="t1"
    )


# --- cloud events and EventBridge ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        cloud_event({"ImageId": IMG_A}),
        cloud_event({"imageId": IMG_A}),
        cloud_event({"image_id": IMG_A}),
        cloud_event({"ResourceId": IMG_A}),
        cloud_event({"ResourceId": "i-abc", "ImageId": IMG_A}),
        cloud_event(json.dumps({"ImageId": IMG_A, "Status": "available"})),
        cloud_event(None, subject=IMG_A),
        cloud_event("not json at all", subject=IMG_A),
        cloud_event({"ResourceId": "i-3xkq9"}, subject=IMG_A),
        cloud_event({"ImageId": IMG_A}, subject=IMG_B),
        cloud_event(None, data_base64=base64.b64encode(json.dumps({"ImageId": IMG_A}).encode()).decode()),
    ],
    ids=[
        "ImageId",
        "imageId",
        "image_id",
        "ResourceId",
        "ImageId-beats-ResourceId",
        "json-string",
        "subject",
        "text-data-and-subject",
        "non-image-resource-and-subject",
        "data-beats-subject",
        "data_base64",
    ],
)
def test_cloud_event_naming_an_image_exports_it(event: dict[str, Any]) -> None:
    """Any spelling of the image id in a CloudEvent, or its subject, names the image to export."""
    assert parse_event(event) == ExportCommand(trigger="event", event_id="ce-1", image_ids=(IMG_A,))


def test_cloud_event_data_may_choose_bucket_and_prefix() -> None:
    """A CloudEvent's data can carry TOSBucket and TOSPrefix."""
    event = cloud_event({"ImageId": IMG_A, "TOSBucket": "demo-exports", "TOSPrefix": "ev"})
    command = parse_event(event)
    assert isinstance(command, ExportCommand)
    assert (command.tos_bucket, command.tos_prefix) == ("demo-exports", "ev")


@pytest.mark.parametrize(
    ("detail", "event_id"),
    [
        ({"ImageId": IMG_A, "State": "available"}, "eb-1"),
        ({"ImageId": IMG_A, "State": "pending"}, "eb-1"),
        ({"ImageId": IMG_A, "State": "AVAILABLE"}, "eb-1"),
        ({"imageId": IMG_A}, "eb-1"),
        ({"ImageId": IMG_A}, None),
    ],
    ids=["available", "pending-still-exported", "upper-case", "imageId", "no-id"],
)
def test_eventbridge_event_exports_its_image(detail: dict[str, Any], event_id: str | None) -> None:
    """An EventBridge-style event exports detail.ImageId; the API decides later whether it is available."""
    event: dict[str, Any] = {"detail-type": "EC2 AMI State Change", "source": "aws.ec2", "detail": detail}
    if event_id is not None:
        event["id"] = event_id
    assert parse_event(event) == ExportCommand(trigger="event", event_id=event_id, image_ids=(IMG_A,))


def test_eventbridge_without_detail_type_is_recognised_by_source_and_detail() -> None:
    """An envelope with source and detail but no detail-type is still read as EventBridge."""
    command = parse_event({"source": "custom", "detail": {"ImageId": IMG_A, "TOSPrefix": "eb"}})
    assert command == ExportCommand(trigger="event", image_ids=(IMG_A,), tos_prefix="eb")


@pytest.mark.parametrize(("event_id", "expected"), [(12345, "12345"), ("", None), (None, None)])
def test_event_ids_are_read_leniently(event_id: object, expected: str | None) -> None:
    """A numeric id becomes a string; an empty or null id counts as none."""
    assert parse_event(cloud_event({"ImageId": IMG_A}, id=event_id)).event_id == expected


# --- HTTP -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (http({"ImageId": IMG_A}), ExportCommand(trigger="http", image_ids=(IMG_A,))),
        (http({"ImageId": IMG_A}, base64_encoded=True), ExportCommand(trigger="http", image_ids=(IMG_A,))),
        ({**http(""), "body": {"ImageIds": [IMG_A]}}, ExportCommand(trigger="http", image_ids=(IMG_A,))),
        (
            http({"ImageId": IMG_A}, headers={"X-Request-Id": "req-9"}),
            ExportCommand(trigger="http", event_id="req-9", image_ids=(IMG_A,)),
        ),
        (
            http(cloud_event({"ImageId": IMG_A}), headers={"x-request-id": "req-9"}),
            ExportCommand(trigger="http", event_id="ce-1", image_ids=(IMG_A,)),
        ),
        (http(timer("")), ScanCommand(trigger="http", event_id="timer-1")),
        (
            http(timer(json.dumps({"ImageIds": [IMG_B]}))),
            ExportCommand(trigger="http", event_id="timer-1", image_ids=(IMG_B,)),
        ),
        (
            http({"detail-type": "x", "detail": {"ImageId": IMG_C}}),
            ExportCommand(trigger="http", image_ids=(IMG_C,)),
        ),
        (
            http({"ImageId": IMG_A}, headers={"x-request-id": "r" * 300}),
            ExportCommand(trigger="http", image_ids=(IMG_A,)),
        ),
    ],
    ids=[
        "plain",
        "base64",
        "decoded-body",
        "request-id-header",
        "inner-id-wins",
        "timer-scan",
        "timer-ids",
        "eventbridge",
        "oversized-header-ignored",
    ],
)
def test_http_event_carries_any_other_shape(
    event: dict[str, Any], expected: ScanCommand | ExportCommand
) -> None:
    """An HTTP body holds any accepted event; the command's trigger becomes http."""
    assert parse_event(event) == expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"httpMethod": "POST", "body": "{}"}, True),
        ({"httpMethod": "GET", "headers": {}}, True),
        ({"httpMethod": "POST"}, False),
        ({"body": "{}"}, False),
        ({"ImageId": IMG_A}, False),
        (["httpMethod", "body"], False),
        (None, False),
    ],
)
def test_is_http_event(event: object, expected: bool) -> None:
    """HTTP events are recognised even when their body is unusable, so the answer can be an HTTP 400."""
    assert is_http_event(event) is expected


# --- direct ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "image_ids"),
    [
        ({"ImageId": IMG_A}, (IMG_A,)),
        ({"ImageIds": [IMG_A]}, (IMG_A,)),
        ({"ImageIds": [IMG_B, IMG_A, IMG_B, IMG_C, IMG_A]}, (IMG_B, IMG_A, IMG_C)),
        ({"ImageId": IMG_A, "ImageIds": None}, (IMG_A,)),
        ({"ImageIds": [f"image-{n:020d}" for n in range(100)]}, tuple(f"image-{n:020d}" for n in range(100))),
        ({"ImageIds": [IMG_A] * 150}, (IMG_A,)),
    ],
    ids=["single", "list-of-one", "dedupe-keeps-order", "null-ImageIds", "exactly-100", "150-duplicates"],
)
def test_direct_event_exports_named_images(event: dict[str, Any], image_ids: tuple[str, ...]) -> None:
    """A direct event exports what it names, each image once, in the order given."""
    assert parse_event(event) == ExportCommand(trigger="direct", image_ids=image_ids)


def test_direct_event_nulls_mean_defaults() -> None:
    """A null TOSBucket or TOSPrefix means the configured default."""
    command = parse_event({"ImageId": IMG_A, "TOSBucket": None, "TOSPrefix": None})
    assert command == ExportCommand(trigger="direct", image_ids=(IMG_A,))


def test_force_exports_named_images_again_from_a_direct_event_or_a_timer_payload() -> None:
    """``"Force": true`` on a direct event or a timer payload with ImageIds; false and null mean no."""
    assert parse_event({"ImageId": IMG_A, "Force": True}) == ExportCommand(
        trigger="direct", image_ids=(IMG_A,), force=True
    )
    assert parse_event({"ImageId": IMG_A, "Force": False}) == ExportCommand(
        trigger="direct", image_ids=(IMG_A,)
    )
    assert parse_event({"ImageId": IMG_A, "Force": None}) == ExportCommand(
        trigger="direct", image_ids=(IMG_A,)
    )
    timer = {**load_event("timer_image_ids"), "data": json.dumps({"ImageIds": [IMG_A], "Force": True})}
    command = parse_event(timer)
    assert isinstance(command, ExportCommand)
    assert command.force


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"ImageId": IMG_A, "Force": "true"}, "Force"),
        ({"ImageId": IMG_A, "Force": 1}, "Force"),
        (
            {
                "type": "faas.timer.event",
                "specversion": "1.0",
                "id": "t-1",
                "source": "timer",
                "data": json.dumps({"Force": True}),
            },
            "data.Force",
        ),
    ],
    ids=["a-string", "a-number", "on-a-scan"],
)
def test_force_must_be_a_boolean_on_named_images(event: dict[str, Any], field: str) -> None:
    """A string or number is refused (so "false" never means yes), and a scan cannot be forced: the error
    names the field."""
    assert refusal(event).field == field


# --- rejections -----------------------------------------------------------------------------------------

LONG = "x" * 5000

REJECTIONS: list[tuple[str, object, str, str]] = [
    # (id, event, field, a fragment of the message)
    ("none", None, "", "expected a timer event"),
    ("list", [{"ImageId": IMG_A}], "", "got a list of 1 item"),
    ("python-object", {1, 2}, "", "got a value of type set"),
    ("number", 42, "", "got 42"),
    ("string", "image-ybqi99s7yq8rx7mnk44b", "", "got 'image-ybqi99s7yq8rx7mnk44b'"),
    ("empty-object", {}, "", "got an empty object"),
    ("unknown-shape", {"hello": "world"}, "", "got an object with keys hello"),
    # timer
    ("timer-text", timer("export everything"), "data", "got text that is not JSON"),
    ("timer-list", timer("[1, 2]"), "data", "got a list of 2 items"),
    ("timer-number-data", timer(7), "data", "got 7"),
    (
        "timer-typo",
        timer('{"ImageID": ["image-ybqi99s7yq8rx7mnk44b"]}'),
        "data.ImageID",
        "did you mean ImageIds?",
    ),
    (
        "timer-singular",
        timer('{"ImageId": "image-ybqi99s7yq8rx7mnk44b"}'),
        "data.ImageId",
        "did you mean ImageIds?",
    ),
    ("timer-case", timer('{"lookbackhours": 3}'), "data.lookbackhours", "did you mean LookbackHours?"),
    ("timer-close", timer('{"LookbakHours": 3}'), "data.LookbakHours", "did you mean LookbackHours?"),
    ("timer-unknown", timer('{"Colour": "red", "Size": 1}'), "data.Colour", "also unknown: Size"),
    (
        "timer-ids-null",
        timer('{"ImageIds": null}'),
        "data.ImageIds",
        "expected a list of image ids, got null",
    ),
    ("timer-ids-empty", timer('{"ImageIds": []}'), "data.ImageIds", "got an empty list"),
    (
        "timer-ids-string",
        timer(f'{{"ImageIds": "{IMG_A}"}}'),
        "data.ImageIds",
        "expected a list of image ids",
    ),
    (
        "timer-id-bad",
        timer(json.dumps({"ImageIds": [IMG_A, IMG_B, "foo"]})),
        "data.ImageIds[2]",
        "expected an image id like image-ybqi99s7yq8rx7mnk44b, got 'foo'",
    ),
    ("timer-id-number", timer(json.dumps({"ImageIds": [5]})), "data.ImageIds[0]", "got 5"),
    ("timer-id-upper", timer(json.dumps({"ImageIds": ["image-ABC"]})), "data.ImageIds[0]", "got 'image-ABC'"),
    ("timer-id-newline", timer(json.dumps({"ImageIds": [IMG_A + "\n"]})), "data.ImageIds[0]", "expected"),
    (
        "timer-too-many",
        timer(json.dumps({"ImageIds": [f"image-{n}" for n in range(101)]})),
        "data.ImageIds",
        "split the batch",
    ),
    (
        "timer-ids-and-lookback",
        timer(json.dumps({"ImageIds": [IMG_A], "LookbackHours": 3})),
        "data.LookbackHours",
        "scan only",
    ),
    (
        "timer-ids-and-tags",
        timer(json.dumps({"ImageIds": [IMG_A], "Tags": {"a": "b"}})),
        "data.Tags",
        "scan only",
    ),
    ("timer-bucket", timer('{"TOSBucket": "Demo_Exports"}'), "data.TOSBucket", "expected a TOS bucket name"),
    ("timer-bucket-short", timer('{"TOSBucket": "ab"}'), "data.TOSBucket", "got 'ab'"),
    ("timer-bucket-hyphen", timer('{"TOSBucket": "-demo"}'), "data.TOSBucket", "no hyphen at either end"),
    ("timer-prefix", timer('{"TOSPrefix": "night/ly"}'), "data.TOSPrefix", "1-30 letters and digits"),
    (
        "timer-prefix-long",
        timer(json.dumps({"TOSPrefix": "a" * 31})),
        "data.TOSPrefix",
        "1-30 letters and digits",
    ),
    ("timer-lookback-zero", timer('{"LookbackHours": 0}'), "data.LookbackHours", "above 0"),
    ("timer-lookback-negative", timer('{"LookbackHours": -2}'), "data.LookbackHours", "got -2"),
    ("timer-lookback-year", timer('{"LookbackHours": 8760.5}'), "data.LookbackHours", "at most 8760"),
    ("timer-lookback-nan", timer('{"LookbackHours": NaN}'), "data.LookbackHours", "got nan"),
    ("timer-lookback-inf", timer('{"LookbackHours": Infinity}'), "data.LookbackHours", "got inf"),
    ("timer-lookback-bool", timer('{"LookbackHours": true}'), "data.LookbackHours", "got true"),
    ("timer-lookback-text", timer('{"LookbackHours": "two days"}'), "data.LookbackHours", "got 'two days'"),
    (
        "timer-lookback-huge",
        timer(json.dumps({"LookbackHours": 10**400})),
        "data.LookbackHours",
        "a very large number",
    ),
    ("timer-name-prefix", timer('{"ImageNamePrefix": 3}'), "data.ImageNamePrefix", "expected a string"),
    (
        "timer-name-prefix-long",
        timer(json.dumps({"ImageNamePrefix": "w" * 129})),
        "data.ImageNamePrefix",
        "at most 128",
    ),
    ("timer-tags-list", timer('{"Tags": ["env"]}'), "data.Tags", "expected an object of tag key to value"),
    ("timer-tag-value", timer('{"Tags": {"env": 3}}'), "data.Tags.env", "got 3"),
    ("timer-tag-key-empty", timer('{"Tags": {"": "x"}}'), "data.Tags", "tag keys of 1-128 characters"),
    (
        "timer-tags-many",
        timer(json.dumps({"Tags": {f"k{n}": "v" for n in range(51)}})),
        "data.Tags",
        "at most 50 tags",
    ),
    ("timer-bad-base64", timer(None, data_base64="%%%"), "data_base64", "base64"),
    ("timer-id-object", timer("", id={"a": 1}), "id", "got an object"),
    ("timer-id-long", timer("", id="i" * 257), "id", "at most 256"),
    # cloud events
    ("ce-no-image", cloud_event({"Status": "available"}), "data.ImageId", "names no image"),
    ("ce-no-data", cloud_event(None), "data.ImageId", "or a subject that is an image id"),
    ("ce-text-data", cloud_event("hello"), "data.ImageId", "names no image"),
    ("ce-bad-subject", cloud_event(None, subject="i-abc"), "data.ImageId", "names no image"),
    ("ce-bad-image", cloud_event({"ImageId": "ami-123"}), "data.ImageId", "got 'ami-123'"),
    ("ce-bad-imageId", cloud_event({"imageId": 7}), "data.imageId", "got 7"),
    ("ce-resource-not-image", cloud_event({"ResourceId": "i-abc"}), "data.ResourceId", "got 'i-abc'"),
    ("ce-bad-bucket", cloud_event({"ImageId": IMG_A, "TOSBucket": "UPPER"}), "data.TOSBucket", "got 'UPPER'"),
    ("ce-bad-prefix", cloud_event({"ImageId": IMG_A, "TOSPrefix": ""}), "data.TOSPrefix", "got ''"),
    # EventBridge
    ("eb-no-detail", {"detail-type": "x"}, "detail", "got null"),
    ("eb-detail-text", {"detail-type": "x", "detail": "image"}, "detail", "got 'image'"),
    (
        "eb-no-image",
        {"detail-type": "x", "detail": {"State": "available"}},
        "detail.ImageId",
        "names no image",
    ),
    ("eb-bad-image", {"detail-type": "x", "detail": {"ImageId": "ami-1"}}, "detail.ImageId", "got 'ami-1'"),
    (
        "eb-bad-bucket",
        {"detail-type": "x", "detail": {"ImageId": IMG_A, "TOSBucket": 1}},
        "detail.TOSBucket",
        "got 1",
    ),
    # HTTP
    ("http-empty", http(""), "body", "empty"),
    ("http-null", {"httpMethod": "POST", "headers": {}}, "body", "empty"),
    ("http-blank", http("  "), "body", "empty"),
    ("http-not-json", http("ImageId=image-ybqi99s7yq8rx7mnk44b"), "body", "not JSON"),
    ("http-bad-base64", {**http(""), "body": "not base64!", "isBase64Encoded": True}, "body", "base64"),
    (
        "http-base64-not-utf8",
        {**http(""), "body": base64.b64encode(b"\xff\xfe").decode(), "isBase64Encoded": True},
        "body",
        "UTF-8",
    ),
    ("http-body-number", {**http(""), "body": 12}, "body", "got 12"),
    ("http-inner-list", http("[]"), "body", "got a list of 0 items"),
    ("http-inner-empty", http("{}"), "body", "got an empty object"),
    ("http-nested-http", http(http({"ImageId": IMG_A})), "body", "another HTTP event"),
    ("http-inner-bad-id", http({"ImageId": "bad"}), "body.ImageId", "got 'bad'"),
    ("http-inner-timer", http(timer('{"ImageIds": ["x"]}')), "body.data.ImageIds[0]", "got 'x'"),
    ("http-deep-json", http("[" * 100_000 + "]" * 100_000), "body", "not JSON"),
    # direct
    ("direct-bad", {"ImageId": "not-an-image"}, "ImageId", "got 'not-an-image'"),
    ("direct-both", {"ImageId": IMG_A, "ImageIds": [IMG_B]}, "ImageIds", "not both"),
    ("direct-neither", {"TOSBucket": "demo-exports"}, "ImageId", "missing"),
    ("direct-null", {"ImageId": None}, "ImageId", "missing"),
    (
        "direct-unknown",
        {"ImageId": IMG_A, "Region": "cn-beijing"},
        "Region",
        "a direct event accepts ImageId",
    ),
    ("direct-int-key", {"ImageId": IMG_A, 5: "x"}, "5", "unknown key;"),
    ("direct-case", {"imageid": IMG_A}, "imageid", "did you mean ImageId?"),
    ("direct-snake", {"image_ids": [IMG_A]}, "image_ids", "did you mean ImageIds?"),
    ("direct-ids-empty", {"ImageIds": []}, "ImageIds", "got an empty list"),
    ("direct-ids-object", {"ImageIds": {"a": IMG_A}}, "ImageIds", "got an object"),
    ("direct-bad-item", {"ImageIds": [IMG_A, None]}, "ImageIds[1]", "got null"),
    ("direct-too-many", {"ImageIds": [f"image-{n:020d}" for n in range(101)]}, "ImageIds", "at most 100"),
    ("direct-bucket", {"ImageId": IMG_A, "TOSBucket": "demo_exports"}, "TOSBucket", "got 'demo_exports'"),
    ("direct-prefix", {"ImageId": IMG_A, "TOSPrefix": "a-b"}, "TOSPrefix", "got 'a-b'"),
    ("direct-long-value", {"ImageId": LONG}, "ImageId", "got 'xxxx"),
]


@pytest.mark.parametrize(
    ("event", "field", "fragment"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_refused_event_names_the_field(event: object, field: str, fragment: str) -> None:
    """A bad event is refused with InvalidEvent whose field and message point at what to fix."""
    error = refusal(event)
    assert error.field == field
    assert fragment in str(error)
    assert str(error).startswith(f"{field}: " if field else "expected")


@pytest.mark.parametrize(
    "event",
    [
        {"ImageId": LONG},
        {LONG: 1},
        {"ImageId": IMG_A, LONG: 1},
        timer(json.dumps({"Tags": {LONG: "v"}})),
        timer(json.dumps({"Tags": {"k" * 200: 5}})),
        timer(json.dumps({"ImageIds": [LONG]})),
        cloud_event({"ImageId": IMG_A}, id=LONG),
        {"ImageId": 10**5000},
    ],
    ids=[
        "value",
        "unknown-shape-key",
        "unknown-key",
        "tag-key",
        "tag-key-in-field",
        "list-item",
        "id",
        "huge-int",
    ],
)
def test_long_values_are_never_echoed_in_full(event: object) -> None:
    """Messages quote at most about 60 characters of what they refuse, so one event cannot flood the log."""
    error = refusal(event)
    assert "x" * 61 not in str(error)
    assert "k" * 61 not in str(error)
    assert len(str(error)) < 600


# --- the models on their own --------------------------------------------------------------------------


def test_export_command_validates_when_built_directly() -> None:
    """Code that builds an ExportCommand itself gets the same rules: valid ids, deduplicated, at most 100."""
    assert ExportCommand(trigger="direct", image_ids=[IMG_A, IMG_A, IMG_B]).image_ids == (IMG_A, IMG_B)
    for bad in ([], ["foo"], [f"image-{n}" for n in range(101)]):
        with pytest.raises(ValidationError):
            ExportCommand(trigger="direct", image_ids=bad)
    with pytest.raises(ValidationError):
        ExportCommand(trigger="direct", image_ids=(IMG_A,), tos_bucket="Bad_Bucket")


@pytest.mark.parametrize(
    "fields",
    [
        {"lookback_hours": 0},
        {"lookback_hours": 9000},
        {"tos_prefix": "a/b"},
        {"tags": {"k": 1}},
        {"trigger": "direct"},
        {"unknown": 1},
    ],
)
def test_scan_command_validates_when_built_directly(fields: dict[str, Any]) -> None:
    """A ScanCommand built by hand refuses what an event could not say either."""
    with pytest.raises(ValidationError):
        ScanCommand(**{"trigger": "timer", **fields})


def test_commands_are_immutable() -> None:
    """Commands are frozen: nothing downstream can change what the event asked for."""
    command = ExportCommand(trigger="direct", image_ids=(IMG_A,))
    with pytest.raises(ValidationError):
        command.image_ids = (IMG_B,)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        (IMG_A, True),
        ("image-a", True),
        ("image-" + "a" * 64, True),
        ("image-" + "a" * 65, False),
        ("image-", False),
        ("image-ABC", False),
        (IMG_A + "\n", False),
        ("ximage-abc", False),
    ],
)
def test_image_id_pattern(text: str, matches: bool) -> None:
    """IMAGE_ID_PATTERN accepts image ids and nothing around them, even with match()."""
    assert bool(IMAGE_ID_PATTERN.match(text)) is matches


@pytest.mark.parametrize(
    ("raw", "trigger"),
    [
        (timer("not json"), "timer"),
        ({"specversion": "1.0", "id": "e-1", "data": {}}, "event"),
        ({"detail-type": "x", "detail": "nothing"}, "event"),
        ({"detail": {}, "source": "aws.ec2"}, "event"),
        ({"ImageId": "bad"}, "direct"),
        ({"httpMethod": "POST", "body": "{"}, "http"),
        ([1, 2], "direct"),
    ],
)
def test_the_trigger_of_an_invalid_event_is_recognised_as_the_parser_does(raw: object, trigger: str) -> None:
    """Even a refused event is reported under the trigger its shape names, the same rule the parser uses."""
    with pytest.raises(InvalidEvent) as refused:
        parse_event(raw)
    assert refused.value.trigger == trigger
    assert recognise(raw)[0] == trigger


def _refused_id(raw: object) -> str | None:
    with pytest.raises(InvalidEvent) as refused:
        parse_event(raw)
    return refused.value.event_id


def test_the_id_of_an_invalid_event_follows_the_parsers_rules() -> None:
    """A refused event keeps its id up to the parser's 256 characters; a longer or unusable one is dropped;
    an HTTP event's id is its x-request-id header."""
    long_id = "e" * 256
    assert _refused_id(timer("not json", id=long_id)) == long_id
    assert _refused_id(timer("not json", id="e" * 257)) is None
    assert _refused_id(timer("not json", id=7)) == "7"
    assert _refused_id({"httpMethod": "POST", "body": "{", "headers": {"X-Request-Id": "gw-1"}}) == "gw-1"
    assert _refused_id("text") is None
    assert recognise({"httpMethod": "POST", "body": "{", "headers": {"X-Request-Id": "gw-1"}}) == (
        "http",
        "gw-1",
    )


# --- the doctor ------------------------------------------------------------------------------------------


def test_the_doctor_event_is_doctor_true_directly_or_as_an_http_body() -> None:
    """``{"Doctor": true}`` asks for the doctor's checks; through the HTTP trigger it keeps the gateway's
    request id as its event id."""
    assert parse_event(load_event("doctor")) == DoctorCommand(trigger="direct")
    http = {"httpMethod": "POST", "headers": {"X-Request-Id": "req-7"}, "body": '{"Doctor": true}'}
    assert parse_event(http) == DoctorCommand(trigger="http", event_id="req-7")


@pytest.mark.parametrize(
    ("event", "field", "says"),
    [
        ({"Doctor": False}, "Doctor", "expected true"),
        ({"Doctor": "true"}, "Doctor", "expected true"),
        ({"Doctor": 1}, "Doctor", "expected true"),
        ({"Doctor": None}, "Doctor", "expected true"),
        ({"Doctor": True, "ImageId": IMG_A}, "ImageId", "an event of its own"),
        ({"Doctor": True, "Verbose": True}, "Verbose", "unknown key"),
        ({"doctor": True}, "doctor", "did you mean Doctor"),
    ],
    ids=["false", "string", "number", "null", "mixed-with-export", "unknown-key", "lowercase"],
)
def test_a_doctor_event_other_than_true_is_refused_naming_the_field(
    event: dict[str, Any], field: str, says: str
) -> None:
    """Only ``true`` runs the doctor: ``false``, a string or a number is refused rather than read as a request,
    and the doctor takes nothing beside it."""
    refused = refusal(event)
    assert refused.field == field
    assert says in refused.message


def test_a_doctor_payload_in_a_timer_is_an_unknown_key() -> None:
    """A timer does not run the doctor: ``Doctor`` in its payload is refused, not ignored (which would scan)."""
    refused = refusal(timer('{"Doctor": true}'))
    assert refused.field == "data.Doctor"


# --- restores ---------------------------------------------------------------------------------------------


def test_a_restore_event_names_the_source_image_and_optionally_where_and_the_new_name() -> None:
    """``{"Restore": {...}}`` restores one image's export; the bucket, prefix and new name are optional."""
    assert parse_event(load_event("restore")) == RestoreCommand(
        trigger="direct", image_id="image-ybqi99s7yq8rx7mnk44b"
    )
    full = {
        "Restore": {"ImageId": IMG_A, "TOSBucket": "b-1", "TOSPrefix": "nightly", "ImageName": "web restored"}
    }
    assert parse_event(full) == RestoreCommand(
        trigger="direct", image_id=IMG_A, tos_bucket="b-1", tos_prefix="nightly", image_name="web restored"
    )
    http = {"httpMethod": "POST", "headers": {}, "body": json.dumps(full)}
    assert parse_event(http) == RestoreCommand(
        trigger="http", image_id=IMG_A, tos_bucket="b-1", tos_prefix="nightly", image_name="web restored"
    )


@pytest.mark.parametrize(
    ("event", "field", "says"),
    [
        ({"Restore": {}}, "Restore.ImageId", "missing"),
        ({"Restore": {"ImageId": "img-1"}}, "Restore.ImageId", "expected an image id"),
        ({"Restore": "image-a"}, "Restore", "expected an object"),
        ({"Restore": {"ImageId": IMG_A, "ImageID": IMG_A}}, "Restore.ImageID", "did you mean ImageId"),
        ({"Restore": {"ImageId": IMG_A}, "ImageId": IMG_A}, "ImageId", "an event of its own"),
        ({"Restore": {"ImageId": IMG_A, "ImageName": ""}}, "Restore.ImageName", "1-128 printable"),
        ({"Restore": {"ImageId": IMG_A, "ImageName": "x" * 129}}, "Restore.ImageName", "1-128 printable"),
        ({"Restore": {"ImageId": IMG_A, "ImageName": "a\nb"}}, "Restore.ImageName", "1-128 printable"),
        ({"Restore": {"ImageId": IMG_A, "TOSBucket": "B"}}, "Restore.TOSBucket", "TOS bucket name"),
    ],
    ids=[
        "no-id",
        "bad-id",
        "not-an-object",
        "misspelt",
        "mixed-with-export",
        "empty-name",
        "long-name",
        "newline",
        "bad-bucket",
    ],
)
def test_a_bad_restore_event_names_the_field(event: dict[str, Any], field: str, says: str) -> None:
    refused = refusal(event)
    assert refused.field == field
    assert says in refused.message
