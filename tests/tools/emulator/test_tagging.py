"""Tags on the emulated ECS images: TagResources, UntagResources, and DescribeImages' Tags and TagFilters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter_tools.emulator.api import ApiAnswer, ApiCall
from exporter_tools.emulator.ecs import EcsEmulator, EcsService
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from exporter_tools.emulator.tags import TAG_POLICY_CODE, TagRequestError, check_tag_key

IMAGES = ("image-a1", "image-b2", "image-c3")


def fleet(**options: Any) -> Fleet:
    images = tuple(
        FleetImage(id=i, created_hours_ago=n + 1, tags={"env": "prod"}) for n, i in enumerate(IMAGES)
    )
    return Fleet(images=images, buckets=(FleetBucket(name="bucket-1"),), **options)


def call(ecs: EcsService, action: str, **query: str) -> ApiAnswer:
    return ecs.handle(ApiCall("GET", action, "2020-04-01", query))


def tag(ecs: EcsService, ids: tuple[str, ...], tags: dict[str, str]) -> ApiAnswer:
    query = {"ResourceType": "image"}
    query |= {f"ResourceIds.{n}": i for n, i in enumerate(ids, start=1)}
    for n, (key, value) in enumerate(tags.items(), start=1):
        query |= {f"Tags.{n}.Key": key, f"Tags.{n}.Value": value}
    return call(ecs, "TagResources", **query)


def found(ecs: EcsService, **query: str) -> list[str]:
    result = call(ecs, "DescribeImages", **query).result
    assert result is not None
    return [image["ImageId"] for image in result["Images"]]


def test_tags_set_on_several_images_show_in_describe_images() -> None:
    """One TagResources call tags every image it names; DescribeImages lists each image's tags."""
    ecs = EcsService(fleet(), seed=1)
    answer = tag(ecs, IMAGES[:2], {"image-exporter:state": "exporting", "image-exporter:dest": "tos://b/p"})
    assert answer.status == 200
    assert answer.result == {}
    result = call(ecs, "DescribeImages", **{"ImageIds.1": "image-a1", "ImageIds.2": "image-c3"}).result
    assert result is not None
    tags = {image["ImageId"]: image["Tags"] for image in result["Images"]}
    assert tags["image-a1"] == [
        {"Key": "env", "Value": "prod"},
        {"Key": "image-exporter:state", "Value": "exporting"},
        {"Key": "image-exporter:dest", "Value": "tos://b/p"},
    ]
    assert tags["image-c3"] == [{"Key": "env", "Value": "prod"}]


def test_an_existing_key_gets_the_new_value_and_untag_removes_keys() -> None:
    """Tagging a key again replaces its value; UntagResources removes the keys named and ignores absent ones."""
    ecs = EcsService(fleet(), seed=1)
    tag(ecs, ("image-a1",), {"image-exporter:state": "exporting"})
    tag(ecs, ("image-a1",), {"image-exporter:state": "exported"})
    assert ecs.image_tags("image-a1") == {"env": "prod", "image-exporter:state": "exported"}
    answer = call(
        ecs,
        "UntagResources",
        ResourceType="image",
        **{"ResourceIds.1": "image-a1", "TagKeys.1": "env", "TagKeys.2": "nope"},
    )
    assert answer.status == 200
    assert ecs.image_tags("image-a1") == {"image-exporter:state": "exported"}


def test_tag_filters_and_across_filters_or_across_values() -> None:
    """DescribeImages keeps images matching every TagFilters.N, each matching any of its Values.M (none: any value)."""
    ecs = EcsService(fleet(), seed=1)
    tag(ecs, ("image-a1",), {"image-exporter:state": "exporting"})
    tag(ecs, ("image-b2",), {"image-exporter:state": "failed", "team": "data"})
    state = {"TagFilters.1.Key": "image-exporter:state"}
    assert found(ecs, **state) == ["image-a1", "image-b2"]
    assert found(
        ecs, **state, **{"TagFilters.1.Values.1": "exported", "TagFilters.1.Values.2": "failed"}
    ) == ["image-b2"]
    assert found(ecs, **state, **{"TagFilters.1.Values.1": "exporting"}) == ["image-a1"]
    both = {**state, "TagFilters.2.Key": "team", "TagFilters.2.Values.1": "data"}
    assert found(ecs, **both) == ["image-b2"]
    assert found(ecs, **{"TagFilters.1.Key": "env", "TagFilters.1.Values.1": "staging"}) == []


def test_tag_filters_that_are_malformed_are_refused_naming_the_parameter() -> None:
    """A Values.M without its Key, or an empty Key, is a 400 that names the filter."""
    ecs = EcsService(fleet(), seed=1)
    orphan = call(ecs, "DescribeImages", **{"TagFilters.2.Values.1": "x"})
    empty = call(ecs, "DescribeImages", **{"TagFilters.1.Key": ""})
    assert (orphan.status, orphan.code) == (400, "InvalidParameter.TagFilters")
    assert "TagFilters.2" in orphan.message
    assert (empty.status, empty.code) == (400, "InvalidParameter.TagFilters")


def test_a_tag_search_finds_at_most_1000_images() -> None:
    """With TagFilters, DescribeImages reports at most 1,000 images, the documented limit of tag searches."""
    images = tuple(FleetImage(id=f"image-n{n:04d}", tags={"k": "v"}) for n in range(1005))
    ecs = EcsService(Fleet(images=images), seed=1)
    result = call(ecs, "DescribeImages", **{"TagFilters.1.Key": "k", "MaxResults": "10"}).result
    unfiltered = call(ecs, "DescribeImages", MaxResults="10").result
    assert result is not None
    assert unfiltered is not None
    assert (result["TotalCount"], unfiltered["TotalCount"]) == (1000, 1005)


@pytest.mark.parametrize(
    ("query", "code", "named"),
    [
        ({"ResourceIds.1": "image-a1", "Tags.1.Key": "k"}, "MissingParameter.ResourceType", "ResourceType"),
        (
            {"ResourceType": "disk", "ResourceIds.1": "image-a1", "Tags.1.Key": "k"},
            "InvalidParameter.ResourceType",
            "disk",
        ),
        ({"ResourceType": "image", "Tags.1.Key": "k"}, "MissingParameter.ResourceIds", "ResourceIds.N"),
        ({"ResourceType": "image", "ResourceIds.1": "image-a1"}, "MissingParameter.Tags", "Tags.N.Key"),
        (
            {"ResourceType": "image", "ResourceIds.1": "image-a1", "Tags.1.Key": "volc:x"},
            "InvalidTagKey.Malformed",
            "Tags.1.Key",
        ),
        (
            {"ResourceType": "image", "ResourceIds.1": "image-a1", "Tags.1.Key": "SYS:x"},
            "InvalidTagKey.Malformed",
            "reserved",
        ),
        (
            {"ResourceType": "image", "ResourceIds.1": "image-a1", "Tags.1.Key": "a#b"},
            "InvalidTagKey.Malformed",
            "'#'",
        ),
        (
            {"ResourceType": "image", "ResourceIds.1": "image-a1", "Tags.1.Key": "k" * 129},
            "InvalidTagKey.Malformed",
            "128",
        ),
        (
            {
                "ResourceType": "image",
                "ResourceIds.1": "image-a1",
                "Tags.1.Key": "k",
                "Tags.1.Value": "v" * 257,
            },
            "InvalidTagValue.Malformed",
            "Tags.1.Value",
        ),
        (
            {"ResourceType": "image", "ResourceIds.1": "image-a1", "Tags.1.Key": "k", "Tags.2.Key": "k"},
            "InvalidParameter.Tags",
            "Tags.2.Key",
        ),
        (
            {"ResourceType": "image", "ResourceIds.1": "image-zz", "Tags.1.Key": "k"},
            "InvalidImage.NotFound",
            "image-zz",
        ),
    ],
)
def test_tag_requests_breaking_a_documented_rule_are_refused(
    query: dict[str, str], code: str, named: str
) -> None:
    """Each rule of docs/facts.md §10 refuses the request with a code and a message naming what is wrong."""
    ecs = EcsService(fleet(), seed=1)
    answer = call(ecs, "TagResources", **query)
    assert answer.code == code
    assert answer.status in (400, 404)
    assert named in answer.message
    assert ecs.image_tags("image-a1") == {"env": "prod"}


def test_keys_with_every_allowed_character_and_full_lengths_are_accepted() -> None:
    """A 128-character key of letters, digits, spaces and _ . : / = + - @, with a 256-character value, is set."""
    ecs = EcsService(fleet(), seed=1)
    key = ("Ab9 _.:/=+-@" * 11)[:128]
    assert tag(ecs, ("image-a1",), {key: "v" * 256}).status == 200
    assert ecs.image_tags("image-a1")[key] == "v" * 256


def test_call_and_resource_limits() -> None:
    """At most 50 ids and 20 tags a call, and 50 tags on an image; a refused call changes no image."""
    ecs = EcsService(Fleet(images=tuple(FleetImage(id=f"image-n{n:02d}") for n in range(51))), seed=1)
    ids = tuple(f"image-n{n:02d}" for n in range(51))
    assert tag(ecs, ids, {"k": "v"}).code == "InvalidParameter.ResourceIds"
    assert tag(ecs, ids[:50], {"k": "v"}).status == 200
    assert tag(ecs, ("image-n00",), {f"t{n}": "v" for n in range(21)}).code == "InvalidParameter.Tags"
    for batch in range(3):
        assert tag(ecs, ("image-n00", "image-n01"), {f"t{batch}-{n}": "v" for n in range(16)}).status == 200
    over = tag(ecs, ("image-n01", "image-n00"), {"x1": "v", "x2": "v"})
    assert (over.status, over.code) == (400, "QuotaExceeded.TagsPerResource")
    assert len(ecs.image_tags("image-n00")) == 49
    assert len(ecs.image_tags("image-n01")) == 49
    assert tag(ecs, ("image-n00",), {"x1": "v"}).status == 200
    assert len(ecs.image_tags("image-n00")) == 50


def test_a_role_without_the_permission_gets_access_denied() -> None:
    """With tagging_allowed false, TagResources and UntagResources answer 403 AccessDenied and change nothing."""
    ecs = EcsService(fleet(tagging_allowed=False), seed=1)
    denied = tag(ecs, ("image-a1",), {"k": "v"})
    untag = call(
        ecs, "UntagResources", ResourceType="image", **{"ResourceIds.1": "image-a1", "TagKeys.1": "env"}
    )
    assert (denied.status, denied.code) == (403, "AccessDenied")
    assert (untag.status, untag.code) == (403, "AccessDenied")
    assert ecs.image_tags("image-a1") == {"env": "prod"}
    ecs.tagging_allowed = True
    assert tag(ecs, ("image-a1",), {"k": "v"}).status == 200


def test_a_refused_tag_value_refuses_the_whole_request_and_nothing_else() -> None:
    """refuse_tag makes TagResources setting that key to that value on that image fail whole (400, the tag
    policy code, nothing changed on any image named); the image still takes other values and keys, the other
    images take the value, and reset forgets the rule."""
    ecs = EcsService(fleet(), seed=1)
    ecs.refuse_tag("image-a1", "image-exporter:state", "exported")

    refused = tag(ecs, ("image-b2", "image-a1"), {"image-exporter:state": "exported"})
    other_value = tag(ecs, ("image-a1",), {"image-exporter:state": "failed", "image-exporter:claim": "x"})
    other_image = tag(ecs, ("image-b2",), {"image-exporter:state": "exported"})

    assert (refused.status, refused.code) == (400, TAG_POLICY_CODE)
    assert "image-a1" in refused.message
    assert other_value.status == other_image.status == 200
    assert ecs.image_tags("image-a1") == {
        "env": "prod",
        "image-exporter:state": "failed",
        "image-exporter:claim": "x",
    }
    assert ecs.image_tags("image-b2")["image-exporter:state"] == "exported"
    ecs.reset()
    assert tag(ecs, ("image-a1",), {"image-exporter:state": "exported"}).status == 200


def test_a_tag_refusal_may_answer_another_error_but_only_an_error() -> None:
    """The refusal's status and code are the caller's to choose (a 500 the client retries, say), among the
    HTTP error statuses; untagging is never refused."""
    ecs = EcsService(fleet(), seed=1)
    ecs.refuse_tag("image-a1", "k", "v", status=500, code="InternalError")

    answer = tag(ecs, ("image-a1",), {"k": "v"})
    untag = call(
        ecs, "UntagResources", ResourceType="image", **{"ResourceIds.1": "image-a1", "TagKeys.1": "k"}
    )

    assert (answer.status, answer.code) == (500, "InternalError")
    assert untag.status == 200
    with pytest.raises(ValueError, match="HTTP error status"):
        ecs.refuse_tag("image-a1", "k", "v", status=200)


def test_untag_needs_keys() -> None:
    """UntagResources without TagKeys.N is a 400 MissingParameter.TagKeys."""
    ecs = EcsService(fleet(), seed=1)
    answer = call(ecs, "UntagResources", ResourceType="image", **{"ResourceIds.1": "image-a1"})
    assert (answer.status, answer.code) == (400, "MissingParameter.TagKeys")


def test_reset_restores_the_fleet_tags() -> None:
    """reset() puts every image's tags back as the fleet file gives them."""
    ecs = EcsService(fleet(), seed=1)
    tag(ecs, ("image-a1",), {"k": "v"})
    ecs.reset()
    assert ecs.image_tags("image-a1") == {"env": "prod"}


def test_tagging_over_a_loopback_socket(
    start_emulator: Callable[..., EcsEmulator], call: Callable[..., httpx.Response]
) -> None:
    """A signed GET TagResources over a real socket answers a Result, and the tag search finds the image."""
    emulator = start_emulator(fleet())
    params = {
        "ResourceType": "image",
        "ResourceIds.1": "image-b2",
        "Tags.1.Key": "image-exporter:state",
        "Tags.1.Value": "exporting",
    }
    response = call(emulator, "TagResources", params)
    assert response.status_code == 200
    assert response.json()["Result"] == {}
    assert response.json()["ResponseMetadata"]["Action"] == "TagResources"
    search = call(
        emulator,
        "DescribeImages",
        {"TagFilters.1.Key": "image-exporter:state", "TagFilters.1.Values.1": "exporting"},
    )
    assert [image["ImageId"] for image in search.json()["Result"]["Images"]] == ["image-b2"]


def test_access_denied_over_a_loopback_socket(
    start_emulator: Callable[..., EcsEmulator], call: Callable[..., httpx.Response]
) -> None:
    """A role without ecs:TagResources gets HTTP 403 with the gateway's error shape, code AccessDenied."""
    emulator = start_emulator(fleet(tagging_allowed=False))
    response = call(
        emulator, "TagResources", {"ResourceType": "image", "ResourceIds.1": "image-a1", "Tags.1.Key": "k"}
    )
    assert response.status_code == 403
    assert response.json()["ResponseMetadata"]["Error"]["Code"] == "AccessDenied"


_ALLOWED = st.characters(categories=("Lu", "Ll", "Nd"), max_codepoint=0x2FFF) | st.sampled_from(
    list(" _.:/=+-@")
)


@settings(max_examples=200, deadline=None)
@given(st.text(_ALLOWED, min_size=1, max_size=128))
def test_any_key_of_allowed_characters_is_accepted_unless_reserved(key: str) -> None:
    """A 1-128 character key of letters, digits and the allowed symbols passes, unless it starts with volc:/sys:."""
    if key.lower().startswith(("volc:", "sys:")):
        with pytest.raises(TagRequestError):
            check_tag_key(key, "Tags.1.Key")
    else:
        check_tag_key(key, "Tags.1.Key")


@settings(max_examples=100, deadline=None)
@given(
    st.text(_ALLOWED, max_size=60),
    st.sampled_from(list("#$%&*!?,;<>|~'\"[](){}\t")),
    st.text(_ALLOWED, max_size=60),
)
def test_a_key_with_any_other_character_is_refused(before: str, bad: str, after: str) -> None:
    """A key holding a character outside letters, digits, spaces and _ . : / = + - @ is refused, naming it."""
    with pytest.raises(TagRequestError) as refused:
        check_tag_key(before + bad + after, "Tags.1.Key")
    assert refused.value.code == "InvalidTagKey.Malformed"
