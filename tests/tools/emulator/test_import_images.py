"""ImportImage and DeleteImages on the emulated ECS, over a real loopback socket and signed as the function
signs: an export imported back, each reason an import Fails, the knobs that make one fail or never end, the
custom image quota, and what DeleteImages deletes, refuses and records."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from exporter_tools.emulator.api import ApiCall
from exporter_tools.emulator.ecs import EcsEmulator, EcsService, format_time
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from exporter_tools.emulator.image_import import QUOTA_CODE, tos_file
from exporter_tools.emulator.object_store import BytesContent, StoredObject
from exporter_tools.emulator.query import InvalidRequest
from exporter_tools.emulator.tos import data_disk_object_key, export_object_key
from handler.adapters.signing import Credentials
from tests.support.fakes import FakeClock
from tests.support.qcow2_images import MIB, build_qcow2
from tests.tools.emulator.tos_requests import signed_tos_request

Call = Callable[..., httpx.Response]

BUCKET = "restore-bucket"
HOST = "tos-cn-beijing.volces.com"
SOURCE = "image-s0urce0000000000001"
BUSY = "image-busy00000000000001"
PUBLIC = "image-pub1ic0ubuntu2204x64"
TASK_SECONDS = 100.0
SYSTEM_KEY = export_object_key("px", SOURCE)
DATA_KEY = data_disk_object_key("px", SOURCE, 1)


def url(key: str, bucket: str = BUCKET) -> str:
    return f"https://{bucket}.{HOST}/{key}"


def fleet(**options: Any) -> Fleet:
    images = (
        FleetImage(id=SOURCE, name="web", size_gb=40, data_disks=(20,)),
        FleetImage(id=BUSY, name="busy"),
        FleetImage(id=PUBLIC, visibility="public"),
    )
    return Fleet(
        images=images, buckets=(FleetBucket(name=BUCKET), FleetBucket(name="other-bucket")), **options
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall=None)  # real time, moved: signatures stay fresh while tasks progress


@pytest.fixture
def start(start_emulator: Callable[..., EcsEmulator], clock: FakeClock) -> Callable[..., EcsEmulator]:
    """``start(**fleet_options)``: the emulator on a free port, holding ``fleet(**fleet_options)``."""

    def started(**options: Any) -> EcsEmulator:
        return start_emulator(fleet(**options), task_seconds=TASK_SECONDS, clock=clock, seed=5)

    return started


@pytest.fixture
def emulator(start: Callable[..., EcsEmulator]) -> EcsEmulator:
    return start()


def exported(emulator: EcsEmulator, clock: FakeClock, call: Call, image_id: str = SOURCE) -> None:
    """Export ``image_id`` to the bucket with prefix ``px`` and let the task end."""
    params = {"ImageId": image_id, "TOSBucket": BUCKET, "TOSPrefix": "px"}
    assert call(emulator, "ExportImage", params).status_code == 200
    clock.advance(TASK_SECONDS + 1)


def import_image(emulator: EcsEmulator, call: Call, system_url: str, **extra: str) -> httpx.Response:
    params = {"ImageName": "web-restored", "Url": system_url, "Platform": "Ubuntu", **extra}
    return call(emulator, "ImportImage", params)


def imported_id(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    return str(answer.json()["Result"]["ImageId"])


def image(emulator: EcsEmulator, call: Call, image_id: str) -> dict[str, Any]:
    found = call(emulator, "DescribeImages", {"ImageIds.1": image_id}).json()["Result"]["Images"]
    assert len(found) == 1
    return dict(found[0])


def task_of(emulator: EcsEmulator, call: Call, image_id: str) -> dict[str, Any]:
    tasks = call(emulator, "DescribeTasks", {"ResourceIds.1": image_id}).json()["Result"]["Tasks"]
    assert len(tasks) == 1
    return dict(tasks[0])


def error_of(answer: httpx.Response) -> tuple[int, str, str]:
    error = answer.json()["ResponseMetadata"]["Error"]
    return answer.status_code, error["Code"], error["Message"]


def delete(emulator: EcsEmulator, call: Call, *ids: str, **extra: str) -> list[dict[str, Any]]:
    params = {f"ImageIds.{n}": image_id for n, image_id in enumerate(ids, start=1)} | extra
    answer = call(emulator, "DeleteImages", params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["Result"]["OperationDetails"])


# -- an import that succeeds ---------------------------------------------------------------------------------


def test_an_exported_image_imports_back_with_its_metadata_tags_and_disks(
    emulator: EcsEmulator, clock: FakeClock, call: Call
) -> None:
    """The export's system file and data disk file, imported: a private creating image with what was asked
    (name, platform, OS, architecture, boot mode, description, project, tags) and the disks' sizes, and an
    ImportImage task that runs Pending → Running → Succeeded over the task clock, after which it is available."""
    exported(emulator, clock, call)
    answer = import_image(
        emulator,
        call,
        url(SYSTEM_KEY),
        **{
            "ImportDataVolumes.1.DataVolumeUrl": url(DATA_KEY),
            "PlatformVersion": "22.04",
            "OsType": "Linux",
            "Architecture": "arm64",
            "BootMode": "UEFI",
            "Description": "restored from px",
            "ProjectName": "ops",
            "Tags.1.Key": "image-exporter:restored-from",
            "Tags.1.Value": SOURCE,
            "Tags.2.Key": "env",
            "Tags.2.Value": "prod",
        },
    )
    new_id = imported_id(answer)
    assert re.fullmatch(r"image-[a-z0-9]{20}", new_id)
    assert answer.json()["ResponseMetadata"]["Action"] == "ImportImage"
    made = image(emulator, call, new_id)
    assert made["Status"] == "creating"
    expected = {
        "ImageName": "web-restored",
        "Visibility": "private",
        "Size": 40,
        "Platform": "Ubuntu",
        "PlatformVersion": "22.04",
        "OsType": "Linux",
        "OsName": "Ubuntu 22.04 64 bit",
        "Architecture": "arm64",
        "BootMode": "UEFI",
        "Description": "restored from px",
        "ProjectName": "ops",
    }
    assert {key: made[key] for key in expected} == expected
    assert [(s["VolumeKind"], s["Size"]) for s in made["Snapshots"]] == [("system", 40), ("data", 20)]
    assert made["Tags"] == [
        {"Key": "image-exporter:restored-from", "Value": SOURCE},
        {"Key": "env", "Value": "prod"},
    ]
    pending = task_of(emulator, call, new_id)
    assert (pending["Type"], pending["Status"], pending["Process"], pending["EndAt"]) == (
        "ImportImage",
        "Pending",
        0,
        "",
    )
    clock.advance(TASK_SECONDS / 2)
    running = task_of(emulator, call, new_id)
    assert (running["Status"], running["EndAt"]) == ("Running", "")
    assert 40 <= running["Process"] <= 60
    assert image(emulator, call, new_id)["Status"] == "creating"
    clock.advance(TASK_SECONDS)
    done = task_of(emulator, call, new_id)
    assert (done["Status"], done["Process"]) == ("Succeeded", 100)
    assert done["EndAt"]
    available = image(emulator, call, new_id)
    assert available["Status"] == "available"
    assert available["UpdatedAt"] == done["EndAt"]
    record = emulator.imports()[new_id]
    assert (record.task_id, record.status, record.error) == (done["Id"], "Succeeded", None)
    assert record.request.system == tos_file(url(SYSTEM_KEY), "Url")
    assert emulator.stats()["ecs"]["import_tasks"] == 1
    assert emulator.stats()["requests"]["ImportImage"] == {"200": 1}


def test_an_import_task_is_found_by_task_id_and_among_every_task(
    emulator: EcsEmulator, clock: FakeClock, call: Call
) -> None:
    """DescribeTasks lists the import task by its id, by ResourceId, and with no filter beside the export's."""
    exported(emulator, clock, call)
    new_id = imported_id(import_image(emulator, call, url(SYSTEM_KEY)))
    task_id = emulator.imports()[new_id].task_id
    by_id = call(emulator, "DescribeTasks", {"TaskIds.1": task_id}).json()["Result"]["Tasks"]
    by_resource = call(emulator, "DescribeTasks", {"ResourceId": new_id}).json()["Result"]["Tasks"]
    every = call(emulator, "DescribeTasks").json()["Result"]["Tasks"]
    assert [t["Id"] for t in by_id] == [t["Id"] for t in by_resource] == [task_id]
    assert [(t["Type"], t["ResourceId"]) for t in every] == [("ImportImage", new_id), ("ExportImage", SOURCE)]


def test_a_qcow2_file_put_in_the_bucket_imports_with_its_virtual_size_rounded_up_to_gib(
    emulator: EcsEmulator, clock: FakeClock, call: Call
) -> None:
    """Any sound qcow2 object will do, not only an export's: a 64 MiB virtual disk is a 1 GiB image; the key
    is the URL's path, decoded; OsType follows a Windows platform when it is not given."""
    body = bytes(build_qcow2(virtual_size=64 * MIB).data)
    put = signed_tos_request(
        emulator, BUCKET, "uploads/my disk.qcow2", method="PUT", body=body, moment=clock()
    )
    assert put.status_code == 200, put.text
    new_id = imported_id(
        import_image(emulator, call, url("uploads/my%20disk.qcow2"), Platform="Windows Server")
    )
    clock.advance(TASK_SECONDS + 1)
    made = image(emulator, call, new_id)
    assert (made["Status"], made["Size"], made["OsType"]) == ("available", 1, "Windows")
    assert (made["Architecture"], made["BootMode"], made["ProjectName"]) == ("amd64", "BIOS", "default")


# -- imports that fail --------------------------------------------------------------------------------------


FAILURES = {  # how the import is spoilt → the code and words its record carries
    "missing": ("InvalidImageFile.NotFound", f"no object px_gone_system.qcow2 in the bucket {BUCKET}"),
    "not_qcow2": ("InvalidImageFile.Malformed", "not a qcow2 file: magic"),
    "truncated": ("InvalidImageFile.Malformed", "the object is truncated"),
    "unreadable": ("InvalidTosGetObject.AccessDenied", f"not allowed tos:GetObject on the bucket {BUCKET}"),
    "no_bucket": ("InvalidTOSBucket.NotFound", "no TOS bucket gone-bucket"),
    "data_missing": ("InvalidImageFile.NotFound", "data disk 1's file"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_an_import_of_a_file_ecs_cannot_use_fails_and_says_why(
    emulator: EcsEmulator, clock: FakeClock, call: Call, case: str
) -> None:
    """ImportImage takes the request; its task runs, then Fails halfway (Process 50, EndAt set) and the image
    is ``error``; the emulator's record of the task holds a code and a message naming the file and the cause
    (the API's task carries none)."""
    data_url: dict[str, str] = {}
    system = url(SYSTEM_KEY)
    if case == "truncated":
        emulator.set_export_damage(SOURCE, "truncated")
    exported(emulator, clock, call)
    if case == "missing":
        system = url("px_gone_system.qcow2")
    elif case == "not_qcow2":
        system = url("notes.txt")
        put = signed_tos_request(
            emulator, BUCKET, "notes.txt", method="PUT", body=b"hello" * 300, moment=clock()
        )
        assert put.status_code == 200
    elif case == "unreadable":
        emulator.set_bucket_access(BUCKET, "none")
    elif case == "no_bucket":
        system = url(SYSTEM_KEY, bucket="gone-bucket")
    elif case == "data_missing":
        data_url = {"ImportDataVolumes.1.DataVolumeUrl": url("px_nothing_data1.qcow2")}
    new_id = imported_id(import_image(emulator, call, system, **data_url))

    assert image(emulator, call, new_id)["Status"] == "creating"
    assert emulator.imports()[new_id].error is None  # not yet: the task has not failed
    clock.advance(TASK_SECONDS / 2)
    task = task_of(emulator, call, new_id)
    assert (task["Status"], task["Process"]) == ("Failed", 50)
    halfway = datetime.fromisoformat(task["CreatedAt"]) + timedelta(seconds=TASK_SECONDS / 2)
    assert task["EndAt"] == format_time(halfway)
    assert set(task) == {"Id", "Type", "Status", "Process", "ResourceId", "CreatedAt", "UpdatedAt", "EndAt"}
    assert image(emulator, call, new_id)["Status"] == "error"
    error = emulator.imports()[new_id].error
    assert error is not None
    code, says = FAILURES[case]
    assert error.code == code
    assert says in error.message


def test_an_import_of_an_export_still_running_finds_no_file(
    emulator: EcsEmulator, clock: FakeClock, call: Call
) -> None:
    """The files are read when ImportImage is called: an export's file appears only when its task ends, so an
    import started before fails as a missing file, and one started after succeeds."""
    params = {"ImageId": SOURCE, "TOSBucket": BUCKET, "TOSPrefix": "px"}
    assert call(emulator, "ExportImage", params).status_code == 200
    early = imported_id(import_image(emulator, call, url(SYSTEM_KEY)))
    clock.advance(TASK_SECONDS + 1)
    late = imported_id(import_image(emulator, call, url(SYSTEM_KEY)))
    clock.advance(TASK_SECONDS + 1)
    records = emulator.imports()
    error = records[early].error
    assert error is not None
    assert (records[early].status, error.code) == ("Failed", "InvalidImageFile.NotFound")
    assert records[late].status == "Succeeded"


def test_a_failed_import_whose_file_was_never_read_reports_size_zero(
    emulator: EcsEmulator, clock: FakeClock, call: Call
) -> None:
    """An image whose system file could not be read has Size 0 and a 0 GiB system snapshot (nothing was read)."""
    new_id = imported_id(import_image(emulator, call, url("px_gone_system.qcow2")))
    clock.advance(TASK_SECONDS)
    made = image(emulator, call, new_id)
    assert (made["Status"], made["Size"]) == ("error", 0)
    assert [(s["VolumeKind"], s["Size"]) for s in made["Snapshots"]] == [("system", 0)]


# -- the knobs ------------------------------------------------------------------------------------------------


def test_set_import_outcome_fails_the_next_import_of_a_file_then_lets_it_succeed(
    emulator: EcsEmulator, clock: FakeClock, call: Call
) -> None:
    """``failed`` with ``times=1``: the next import of that file (named by any host) Fails with InternalError;
    the one after Succeeds."""
    exported(emulator, clock, call)
    emulator.set_import_outcome(f"https://{BUCKET}.127.0.0.1:9/{SYSTEM_KEY}", "failed", times=1)
    first = imported_id(import_image(emulator, call, url(SYSTEM_KEY)))
    second = imported_id(import_image(emulator, call, url(SYSTEM_KEY)))
    clock.advance(TASK_SECONDS + 1)
    records = emulator.imports()
    assert list(records) == [first, second]
    assert records[first].status == "Failed"
    error = records[first].error
    assert error is not None
    assert error.code == "InternalError"
    assert "set_import_outcome" in error.message
    assert (records[second].status, records[second].error) == ("Succeeded", None)


def test_a_stuck_import_never_ends_and_its_image_cannot_be_deleted(
    emulator: EcsEmulator, clock: FakeClock, call: Call
) -> None:
    """``stuck``: every import of that file stays Running at 50 % with no EndAt, its image ``creating``, for
    ever; DeleteImages refuses a creating image with InvalidImageStatus. ``succeeded`` forgets the rule."""
    exported(emulator, clock, call)
    emulator.set_import_outcome(url(SYSTEM_KEY), "stuck")
    stuck = [imported_id(import_image(emulator, call, url(SYSTEM_KEY))) for _ in range(2)]
    clock.advance(5 * TASK_SECONDS)
    for image_id in stuck:
        task = task_of(emulator, call, image_id)
        assert (task["Status"], task["Process"], task["EndAt"]) == ("Running", 50, "")
        assert image(emulator, call, image_id)["Status"] == "creating"
    (detail,) = delete(emulator, call, stuck[0])
    assert detail["Error"]["Code"] == "InvalidImageStatus"
    emulator.set_import_outcome(url(SYSTEM_KEY), "succeeded")
    freed = imported_id(import_image(emulator, call, url(SYSTEM_KEY)))
    clock.advance(TASK_SECONDS + 1)
    assert task_of(emulator, call, freed)["Status"] == "Succeeded"


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (("https://b.x/k", "lost"), "outcome must be one of"),
        (("https://b.x/k", "failed", 0), "times must be at least 1"),
        (("http://b.x/k", "failed"), "must be https://<bucket>.<TOS host>/<key>"),
    ],
)
def test_set_import_outcome_refuses_what_it_cannot_mean(
    emulator: EcsEmulator, arguments: tuple[Any, ...], says: str
) -> None:
    """An unknown outcome, a count under 1 or a URL that names no file is a ValueError."""
    url_text, outcome, *times = arguments
    with pytest.raises(ValueError, match=re.escape(says)):
        emulator.set_import_outcome(url_text, outcome, times=times[0] if times else None)


# -- the quota --------------------------------------------------------------------------------------------


def test_imports_past_the_custom_image_quota_are_refused_until_one_is_deleted(
    start: Callable[..., EcsEmulator], clock: FakeClock, call: Call
) -> None:
    """With a quota of 3 and two private images (the public one does not count), one import is taken, the
    next refused 400 QuotaExceeded.Image with nothing made; a deletion makes room again."""
    emulator = start(custom_image_quota=3)
    exported(emulator, clock, call)
    imported_id(import_image(emulator, call, url(SYSTEM_KEY)))
    refused = import_image(emulator, call, url(SYSTEM_KEY))
    status, code, message = error_of(refused)
    assert (status, code) == (400, QUOTA_CODE)
    assert "3" in message
    assert len(emulator.imports()) == 1
    assert delete(emulator, call, BUSY) == [{"ImageId": BUSY}]
    imported_id(import_image(emulator, call, url(SYSTEM_KEY)))


def test_the_default_quota_is_fifty_custom_images(
    emulator: EcsEmulator, clock: FakeClock, call: Call
) -> None:
    """48 imports beside the two private images of the fleet fill the region; the 51st image is refused."""
    assert emulator.ecs.custom_image_quota == 50
    exported(emulator, clock, call)
    for _ in range(48):
        imported_id(import_image(emulator, call, url(SYSTEM_KEY)))
    assert error_of(import_image(emulator, call, url(SYSTEM_KEY)))[:2] == (400, QUOTA_CODE)


# -- refused requests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code", "named"),
    [
        ({"ImageName": ""}, "MissingParameter.ImageName", "ImageName"),
        ({"ImageName": None}, "MissingParameter.ImageName", "ImageName"),
        ({"Url": None}, "MissingParameter.Url", "Url"),
        ({"Platform": ""}, "MissingParameter.Platform", "Platform"),
        ({"Url": "http://restore-bucket.tos-cn-beijing.volces.com/k"}, "InvalidUrl.Malformed", "Url"),
        ({"Url": "https://restore-bucket.tos-cn-beijing.volces.com/"}, "InvalidUrl.Malformed", "Url"),
        ({"Url": "https://localhost/k.qcow2"}, "InvalidUrl.Malformed", "Url"),
        (
            {"ImportDataVolumes.1.DataVolumeUrl": "s3://x/y"},
            "InvalidUrl.Malformed",
            "ImportDataVolumes.1.DataVolumeUrl",
        ),
        (
            {"ImportDataVolumes.1.DataVolumeUrl": ""},
            "MissingParameter.DataVolumeUrl",
            "ImportDataVolumes.1.DataVolumeUrl",
        ),
        ({"OsType": "linux"}, "InvalidParameter.OsType", "OsType"),
        ({"Architecture": "x86_64"}, "InvalidParameter.Architecture", "Architecture"),
        ({"BootMode": "Legacy"}, "InvalidParameter.BootMode", "BootMode"),
        ({"NeedDetection": "yes"}, "InvalidParameter.NeedDetection", "NeedDetection"),
        ({"Tags.1.Key": "volc:x"}, "InvalidTagKey.Malformed", "Tags.1.Key"),
    ],
)
def test_a_bad_import_request_is_refused_naming_the_parameter(
    emulator: EcsEmulator, call: Call, params: dict[str, str | None], code: str, named: str
) -> None:
    """A required parameter missing or empty is 400 ``MissingParameter.<Name>``; a URL that is not
    ``https://<bucket>.<host>/<key>`` or a value outside the documented ones is refused naming it; nothing is
    made."""
    query = {"ImageName": "n", "Url": url(SYSTEM_KEY), "Platform": "Ubuntu", **params}
    answer = call(emulator, "ImportImage", {k: v for k, v in query.items() if v is not None})
    status, got, message = error_of(answer)
    assert (status, got) == (400, code)
    assert named in message
    assert emulator.imports() == {}
    assert emulator.stats()["ecs"]["images"] == 3


def test_import_and_delete_answer_get_only_and_check_the_signature(emulator: EcsEmulator, call: Call) -> None:
    """Both actions are GET like every ECS action, and a bad signature is 401 before anything is made."""
    for action in ("ImportImage", "DeleteImages"):
        assert emulator.ecs.handle(ApiCall("POST", action, "2020-04-01", {})).status == 405
        assert action in emulator.ecs.actions
    bad = Credentials(emulator.credentials[0].access_key, "not-the-secret")
    params = {"ImageName": "n", "Url": url(SYSTEM_KEY), "Platform": "Ubuntu"}
    answer = call(emulator, "ImportImage", params, credentials=bad)
    assert error_of(answer)[:2] == (401, "SignatureDoesNotMatch")
    assert emulator.imports() == {}


# -- DeleteImages -------------------------------------------------------------------------------------------


def test_delete_images_removes_what_it_can_and_says_why_not_for_the_rest(
    emulator: EcsEmulator, clock: FakeClock, call: Call
) -> None:
    """One call: an image being exported stays (OperationDenied.ImageIsExporting), an unknown id and a public
    image are InvalidImage.NotFound, an available image is deleted; each id answers once, in order. The
    deleted one is gone from DescribeImages, and recorded."""
    params = {"ImageId": BUSY, "TOSBucket": BUCKET, "TOSPrefix": "px"}
    assert call(emulator, "ExportImage", params).status_code == 200
    details = delete(emulator, call, BUSY, "image-nosuch0000000000001", SOURCE, PUBLIC, SOURCE)
    assert [d["ImageId"] for d in details] == [BUSY, "image-nosuch0000000000001", SOURCE, PUBLIC]
    codes = {d["ImageId"]: d.get("Error", {}).get("Code") for d in details}
    assert codes == {
        BUSY: "OperationDenied.ImageIsExporting",
        "image-nosuch0000000000001": "InvalidImage.NotFound",
        SOURCE: None,
        PUBLIC: "InvalidImage.NotFound",
    }
    assert all(d["Error"]["Message"] for d in details if "Error" in d)
    listed = call(emulator, "DescribeImages").json()["Result"]["Images"]
    assert {i["ImageId"] for i in listed} == {BUSY, PUBLIC}
    (deleted,) = emulator.deleted_images
    assert (deleted.image_id, deleted.delete_binded_snapshots) == (SOURCE, True)
    assert abs((deleted.deleted_at - clock()).total_seconds()) < 1
    clock.advance(TASK_SECONDS + 1)  # the export ends: now it can go
    assert delete(emulator, call, BUSY, DeleteBindedSnapshots="false") == [{"ImageId": BUSY}]
    assert [(d.image_id, d.delete_binded_snapshots) for d in emulator.deleted_images] == [
        (SOURCE, True),
        (BUSY, False),
    ]
    assert emulator.stats()["ecs"]["deleted_images"] == 2


def test_a_deleted_image_is_gone_for_every_action_but_its_tasks_stay(
    emulator: EcsEmulator, clock: FakeClock, call: Call
) -> None:
    """After DeleteImages, a second deletion, ExportImage and TagResources find no such image; DescribeTasks
    still lists its finished export task."""
    exported(emulator, clock, call)
    delete(emulator, call, SOURCE)
    (again,) = delete(emulator, call, SOURCE)
    assert again["Error"]["Code"] == "InvalidImage.NotFound"
    export = call(emulator, "ExportImage", {"ImageId": SOURCE, "TOSBucket": BUCKET, "TOSPrefix": "px"})
    assert error_of(export)[:2] == (404, "InvalidImage.NotFound")
    tag = call(
        emulator,
        "TagResources",
        {"ResourceType": "image", "ResourceIds.1": SOURCE, "Tags.1.Key": "k", "Tags.1.Value": "v"},
    )
    assert error_of(tag)[:2] == (404, "InvalidImage.NotFound")
    assert task_of(emulator, call, SOURCE)["Status"] == "Succeeded"


def test_an_imported_image_that_failed_can_be_deleted(
    emulator: EcsEmulator, clock: FakeClock, call: Call
) -> None:
    """An ``error`` image (its import Failed) is deleted like an available one."""
    new_id = imported_id(import_image(emulator, call, url("px_gone_system.qcow2")))
    clock.advance(TASK_SECONDS)
    assert delete(emulator, call, new_id) == [{"ImageId": new_id}]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "MissingParameter.ImageIds"),
        ({"ImageIds.1": ""}, "MissingParameter.ImageIds"),
        ({f"ImageIds.{n}": f"image-x{n}" for n in range(1, 102)}, "InvalidParameter"),
        ({"ImageIds.1": SOURCE, "DeleteBindedSnapshots": "maybe"}, "InvalidParameter.DeleteBindedSnapshots"),
    ],
)
def test_a_bad_delete_request_is_refused_and_deletes_nothing(
    emulator: EcsEmulator, call: Call, params: dict[str, str], code: str
) -> None:
    """No ids, more than 100, or a DeleteBindedSnapshots that is not a Boolean: 400, nothing deleted."""
    assert error_of(call(emulator, "DeleteImages", params))[:2] == (400, code)
    assert emulator.deleted_images == ()


def test_reset_forgets_imports_deletions_rules_and_the_quota_change() -> None:
    """reset(): the deleted images are back, the imported ones gone, the rules and the quota as the fleet says."""
    ecs = EcsService(fleet(custom_image_quota=5), task_seconds=0, seed=1)

    def import_sound_file() -> str:
        sound = BytesContent(bytes(build_qcow2().data))
        ecs.objects.write(StoredObject(BUCKET, "disk.qcow2", sound, datetime.now(UTC) - timedelta(seconds=1)))
        query = {"ImageName": "n", "Url": url("disk.qcow2"), "Platform": "Ubuntu"}
        answer = ecs.handle(ApiCall("GET", "ImportImage", "2020-04-01", query))
        assert answer.result is not None, answer
        return str(answer.result["ImageId"])

    ecs.set_import_outcome(url("disk.qcow2"), "stuck")
    stuck = import_sound_file()
    assert ecs.imports()[stuck].status == "Running"
    ecs.custom_image_quota = 0
    ecs.handle(ApiCall("GET", "DeleteImages", "2020-04-01", {"ImageIds.1": SOURCE}))
    assert len(ecs.deleted_images) == 1

    ecs.reset()

    assert not ecs.deleted_images
    assert ecs.imports() == {}
    assert ecs.custom_image_quota == 5
    assert ecs.stats()["images"] == 3
    freed = import_sound_file()
    assert ecs.imports()[freed].status == "Succeeded"


@pytest.mark.parametrize(
    ("text", "bucket", "key"),
    [
        ("https://b1.tos-cn-beijing.volces.com/a/b.qcow2", "b1", "a/b.qcow2"),
        ("https://b1.127.0.0.1:8080/x%2Fy%20z.qcow2?versionId=1", "b1", "x/y z.qcow2"),
        ("https://B1.example.com/K+1", "b1", "K+1"),
    ],
)
def test_an_import_url_names_a_bucket_by_its_first_label_and_a_key_by_its_decoded_path(
    text: str, bucket: str, key: str
) -> None:
    """Any host: the first label is the bucket; the path, percent-decoded (``+`` stays), is the key."""
    found = tos_file(text, "Url")
    assert (found.bucket, found.key, found.url) == (bucket, key, text)


def test_a_url_without_a_key_names_no_file() -> None:
    """``https://bucket.host/`` has no key: refused as malformed, naming the parameter."""
    with pytest.raises(InvalidRequest, match=re.escape("ImportDataVolumes.2.DataVolumeUrl must be")):
        tos_file("https://b1.host/", "ImportDataVolumes.2.DataVolumeUrl")
