"""What the ECS API reports, typed: images, tasks, a started export. Unknown fields are ignored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ExportStarted", "Image", "Task"]


class Image(BaseModel):
    """One image as DescribeImages reports it (the fields the exporter reads)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    image_id: str = Field(alias="ImageId")
    name: str = Field(default="", alias="ImageName")
    status: str = Field(default="", alias="Status")
    visibility: str = Field(default="", alias="Visibility")
    created_at: datetime | None = Field(default=None, alias="CreatedAt")
    tags: tuple[tuple[str, str], ...] = Field(default=(), alias="Tags")

    def __init__(self, **data: Any) -> None:
        raw_tags = data.get("Tags", data.get("tags"))
        if isinstance(raw_tags, list):
            data["Tags"] = tuple(
                (str(t.get("Key", "")), str(t.get("Value", ""))) for t in raw_tags if isinstance(t, dict)
            )
        super().__init__(**data)


class Task(BaseModel):
    """One task as DescribeTasks reports it."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    task_id: str = Field(alias="Id")
    type: str = Field(default="", alias="Type")
    status: str = Field(default="", alias="Status")
    resource_id: str = Field(default="", alias="ResourceId")
    created_at: datetime | None = Field(default=None, alias="CreatedAt")
    updated_at: datetime | None = Field(default=None, alias="UpdatedAt")
    end_at: datetime | None = Field(default=None, alias="EndAt")


@dataclass(frozen=True, slots=True)
class ExportStarted:
    """ExportImage accepted the request."""

    task_id: str
    request_id: str | None
