"""tests/support/sdk_models.py, the shared strict check against the official SDK models, on ECS models too."""

from __future__ import annotations

import pytest
import volcenginesdkecs as ecs

from tests.support.sdk_models import SdkShapeMismatch, sdk_query, strict_sdk_model


def test_sdk_query_flattens_lists_as_the_sdk_sends_them() -> None:
    """A GET action's query, as the SDK builds it: lists as Name.N, nested fields as Name.N.Key."""
    request = ecs.DescribeImagesRequest(
        image_ids=["image-1", "image-2"],
        max_results=100,
        tag_filters=[ecs.TagFilterForDescribeImagesInput(key="k", values=["a", "b"])],
    )
    assert sdk_query(request) == {
        "ImageIds.1": "image-1",
        "ImageIds.2": "image-2",
        "MaxResults": "100",
        "TagFilters.1.Key": "k",
        "TagFilters.1.Values.1": "a",
        "TagFilters.1.Values.2": "b",
    }


def test_a_request_models_required_field_missing_fails_the_check() -> None:
    """A field the SDK's model requires (its setter refuses None) is reported missing."""
    with pytest.raises(SdkShapeMismatch, match=r"TagResourcesRequest: Invalid value for `resource_type`"):
        strict_sdk_model(ecs.TagResourcesRequest, {"ResourceIds": ["image-1"]})


def test_nested_ecs_answers_are_checked_to_the_leaves() -> None:
    """A DescribeTasks answer with a key the task model does not know fails, naming where it is."""
    answer = {"Tasks": [{"Id": "t-1", "Status": "Running", "Progres": 10}], "NextToken": ""}
    with pytest.raises(SdkShapeMismatch) as mismatch:
        strict_sdk_model(ecs.DescribeTasksResponse, answer)
    assert mismatch.value.problems == [
        "DescribeTasksResponse.Tasks[0].Progres: not a field of TaskForDescribeTasksOutput"
    ]
