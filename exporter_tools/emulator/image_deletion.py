"""DeleteImages as the emulated ECS takes it (docs/facts.md §14; docs 6396/120265): ``ImageIds.N`` (1-100) and
``DeleteBindedSnapshots`` (true by default), then one ``OperationDetails`` entry per image, in order: just its
``ImageId`` when it was deleted, with an ``Error`` (``Code``, ``Message``) when it was not.

The per-image codes are the API's documented ones; which case gets which is partly the emulator's choice:

- ``InvalidImage.NotFound``: no such image, or one that is not the account's own (public, shared);
- ``OperationDenied.ImageIsExporting``: an ExportImage task on it is Pending or Running;
- ``InvalidImageStatus``: it is ``creating`` (an import still running; Alibaba documents the same rule, and
  Volcengine documents the code without saying which statuses it covers). An ``error`` image can be deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from exporter_tools.emulator.query import InvalidRequest, flag, listed
from exporter_tools.emulator.records import ErrorDetail, ImageRecord, TaskRecord

__all__ = ["deletion_refusal", "operation_detail", "parse_delete_images"]

_ACTIVE = frozenset({"Pending", "Running"})


def parse_delete_images(query: Mapping[str, str]) -> tuple[list[str], bool]:
    """The image ids (each once, in order) and ``DeleteBindedSnapshots``; 400 ``MissingParameter.ImageIds``
    without ids, ``InvalidParameter`` past 100."""
    ids = list(dict.fromkeys(listed(query, "ImageIds")))
    if not ids:
        msg = "the parameter ImageIds.N is required (1 to 100 ids)"
        raise InvalidRequest(400, "MissingParameter.ImageIds", msg)
    return ids, flag(query, "DeleteBindedSnapshots", default=True)


def deletion_refusal(
    image_id: str, image: ImageRecord | None, tasks: Iterable[TaskRecord], now: datetime
) -> ErrorDetail | None:
    """Why ``image`` (None: no such image) cannot be deleted now, given the tasks on it; None when it can."""
    if image is None or image.spec.visibility != "private":
        return ErrorDetail("InvalidImage.NotFound", f"the custom image {image_id} does not exist")
    if any(task.type == "ExportImage" and task.progress(now)[0] in _ACTIVE for task in tasks):
        msg = f"the image {image_id} is being exported: it cannot be deleted until the export ends"
        return ErrorDetail("OperationDenied.ImageIsExporting", msg)
    if image.status(now) == "creating":
        msg = f"the image {image_id} is creating: it can be deleted once it is available (or error)"
        return ErrorDetail("InvalidImageStatus", msg)
    return None


def operation_detail(image_id: str, refusal: ErrorDetail | None) -> dict[str, object]:
    """One ``OperationDetails`` entry, as the SDK's ``OperationDetailForDeleteImagesOutput`` holds it."""
    if refusal is None:
        return {"ImageId": image_id}
    return {"ImageId": image_id, "Error": {"Code": refusal.code, "Message": refusal.message}}
