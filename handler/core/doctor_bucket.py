"""The doctor's checks of the bucket (docs/doctor.md): ``bucket`` (it exists, in the images' region) and
``bucket_access`` (what the follow-up and retention need of it, tried on a probe object that is written and
deleted under the prefix: the only thing the doctor ever changes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from handler.core.doctor_checks import Subjects, check_result, doctor_fix, failed_check
from handler.errors import TOS_PERMISSIONS, ExporterError, MalformedResponse, TosAccessDenied
from handler.models.objects import ObjectUnreadable
from handler.models.results import DoctorCheck

__all__ = ["PROBE_NAME", "check_bucket", "check_bucket_access", "probe_key"]

# The probe object's name after ``<prefix>_``: never an export's file (``<prefix>_<ImageId>_…``, the image id
# followed by ``_``) nor a manifest (``….manifest.json``).
PROBE_NAME = "image-exporter-doctor-probe.json"


def probe_key(prefix: str) -> str:
    """The probe object ``bucket_access`` writes and deletes: ``<prefix>_image-exporter-doctor-probe.json``."""
    return f"{prefix}_{PROBE_NAME}"


def check_bucket(subjects: Subjects, deadline: float) -> DoctorCheck:
    """HeadBucket: the bucket exists and is in ``VOLCENGINE_REGION`` (ExportImage writes only there). A refused
    HeadBucket is a warning: the function itself never calls it."""
    name = "bucket"
    bucket, region = subjects.settings.tos_bucket, subjects.settings.region
    if not bucket:
        fix = "set EXPORT_TOS_BUCKET to the bucket exports go to (or name TOSBucket in every event)"
        return check_result(
            name, "fail", "EXPORT_TOS_BUCKET is not set: a timer scan has nowhere to export", fix
        )
    _, store = subjects.signed()
    try:
        info = store.head_bucket(bucket, deadline=deadline)
    except TosAccessDenied as error:
        # A HEAD answer has no body: a 403 does not say whether the permission or the signature was refused.
        detail = (
            f"{bucket}: HeadBucket was refused ({error.code}; a HEAD answer says no more: the role may not call "
            "it, or the keys were refused, as the credentials check would say), so its region was not read; the "
            "function itself never calls it"
        )
        fix = f"grant {TOS_PERMISSIONS['HeadBucket']} to let the doctor read it (if the credentials check failed, fix it first)"
        return check_result(name, "warn", detail, fix)
    except ExporterError as error:
        return failed_check(name, error, f"HeadBucket {bucket}", subjects.settings)
    theirs = info.region[:40]
    if theirs != region:
        detail = (
            f"{bucket} is in {theirs}, not in VOLCENGINE_REGION {region}: ExportImage writes only to a bucket in "
            "the image's region"
        )
        fix = f"use a bucket in {region} (EXPORT_TOS_BUCKET), or set VOLCENGINE_REGION={theirs} if the images are there"
        return check_result(name, "fail", detail, fix)
    kind = f", storage class {info.storage_class[:40]}" if info.storage_class else ""
    return check_result(name, "pass", f"{bucket} exists in {region}{kind}")


@dataclass(frozen=True, slots=True)
class _Step:
    """One step of the probe: done, refused (``permission``: what the role lacks), failed on another ``error``,
    or not tried; ``said`` is how the detail puts it."""

    outcome: Literal["done", "refused", "failed", "not tried"]
    said: str
    permission: str | None = None
    error: ExporterError | None = None


def _step(verb: str, action: str, attempt: Callable[[], object]) -> _Step:
    """Run one step: a denial names the permission the action needs (``TOS_PERMISSIONS``)."""
    try:
        attempt()
    except TosAccessDenied:
        permission = TOS_PERMISSIONS[action]
        return _Step("refused", f"{verb} refused ({permission})", permission)
    except ExporterError as error:
        return _Step("failed", f"{verb} failed ({error.code})", error=error)
    return _Step("done", f"{verb} ✓")


def check_bucket_access(subjects: Subjects, deadline: float) -> DoctorCheck:
    """List under the prefix, write a small probe object there, read it back and delete it: what the follow-up
    (its listing and ranged reads, the manifest it writes) and retention (its deletes) need of the bucket. Each
    step is tried whatever the one before did (the delete too: it is harmless on a key that is not there), and
    each refused step is named with its permission."""
    name = "bucket_access"
    bucket = subjects.bucket()
    _, store = subjects.signed()
    prefix = subjects.settings.tos_prefix
    key = probe_key(prefix)
    body = json.dumps(
        {"written_by": "image-exporter doctor", "at": subjects.clock.now().isoformat()}
    ).encode()

    def listed() -> None:
        listing = store.list_objects(bucket, f"{prefix}_", deadline=deadline, max_keys=1, max_pages=1)
        if isinstance(listing, ObjectUnreadable):
            msg = "the listing was refused"
            raise TosAccessDenied(msg, code="TosAccessDenied.ListObjects", http_status=403)

    def written() -> None:
        store.put_object(bucket, key, body, content_type="application/json", deadline=deadline)

    def read_back() -> None:
        if store.get_range(bucket, key, 0, len(body), deadline=deadline) != body:
            msg = "the probe object read back other bytes than were written"
            raise MalformedResponse(msg, action="GetObject")

    steps = [_step("list", "ListObjects", listed), _step("write", "PutObject", written)]
    wrote = steps[-1].outcome == "done"
    steps.append(_step("read", "GetObject", read_back) if wrote else _Step("not tried", "read not tried"))
    steps.append(_step("delete", "DeleteObject", lambda: store.delete_object(bucket, key, deadline=deadline)))
    said = f"tos://{bucket}/{key}: " + ", ".join(step.said for step in steps)
    if wrote and steps[-1].outcome != "done":
        said += "; the probe object is left in the bucket: delete it by hand"
    refused = [step.permission for step in steps if step.permission]
    if refused:
        return check_result(
            name, "fail", said, f"grant the function's role {' and '.join(refused)} on {bucket} (IAM policy)"
        )
    failure = next((step.error for step in steps if step.error is not None), None)
    if failure is not None:
        return check_result(name, "fail", said, doctor_fix(failure, subjects.settings))
    return check_result(name, "pass", f"{said}: the follow-up and retention have the access they need")
