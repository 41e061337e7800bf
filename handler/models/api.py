"""What the ECS API reports, typed: images, tasks, a started export. Unknown fields are ignored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "ACTIVE_STATUSES",
    "EXPORT_TASK_TYPE",
    "FAILED",
    "FINISHED_STATUSES",
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "ExportStarted",
    "Image",
    "Task",
]

# The task type of an export, and the task statuses the exporter reads (docs/facts.md §3). Only Succeeded and
# Failed end a task: any other status (UnknownStatus, one added later) may still be running.
EXPORT_TASK_TYPE = "ExportImage"
PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
ACTIVE_STATUSES = frozenset({PENDING, RUNNING})
FINISHED_STATUSES = frozenset({SUCCEEDED, FAILED})


def _blank_is_none(value: Any) -> Any:
    """The API writes an unset time as ``""``."""
    return None if value == "" else value


def _tag_pairs(value: Any) -> Any:
    """``[{"Key": k, "Value": v}, ...]`` as ``((k, v), ...)``; anything else is left for validation."""
    if isinstance(value, list):
        return tuple((str(t.get("Key", "")), str(t.get("Value", ""))) for t in value if isinstance(t, dict))
    return () if value is None else value


Moment = Annotated[datetime | None, BeforeValidator(_blank_is_none)]


class Image(BaseModel):
    """One image as DescribeImages reports it (the fields the exporter reads)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)

    image_id: str = Field(alias="ImageId", min_length=1)
    name: str = Field(default="", alias="ImageName")
    status: str = Field(default="", alias="Status")
    visibility: str = Field(default="", alias="Visibility")
    created_at: Moment = Field(default=None, alias="CreatedAt")
    tags: Annotated[tuple[tuple[str, str], ...], BeforeValidator(_tag_pairs)] = Field(
        default=(), alias="Tags"
    )


class Task(BaseModel):
    """One task as DescribeTasks reports it."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)

    task_id: str = Field(alias="Id", min_length=1)
    type: str = Field(default="", alias="Type")
    status: str = Field(default="", alias="Status")
    resource_id: str = Field(default="", alias="ResourceId")
    created_at: Moment = Field(default=None, alias="CreatedAt")
    updated_at: Moment = Field(default=None, alias="UpdatedAt")
    end_at: Moment = Field(default=None, alias="EndAt")


@dataclass(frozen=True, slots=True)
class ExportStarted:
    """ExportImage accepted the request."""

    task_id: str
    request_id: str | None
