"""The emulator's bucket lifecycle (GET, PUT and DELETE ``/<bucket>/?lifecycle``, docs/facts.md §15) and its TOS
clock offset, over a loopback socket, signed."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from exporter_tools.emulator.tos import export_object_key
from tests.support.fakes import FakeClock
from tests.tools.emulator.tos_requests import signed_tos_request

BUCKET = "exports-1"
TASK_SECONDS = 100.0
# Two rules someone else put, with fields the emulator does not check, in an order of their own.
FOREIGN_RULES: list[dict[str, Any]] = [
    {
        "Status": "Enabled",
        "ID": "logs-expire",
        "Prefix": "logs/",
        "Expiration": {"Days": 14},
        "Tags": [{"Key": "kind", "Value": "log"}],
        "Filter": {"ObjectSizeGreaterThan": 1024, "GreaterThanIncludeEqual": "Enabled"},
    },
    {
        "ID": "tmp-cleanup",
        "Prefix": "tmp/",
        "Status": "Disabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 3},
    },
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall=None)  # real time, moved: signatures fresh, tasks progress


@pytest.fixture
def emulator(start_emulator: Callable[..., EcsEmulator], clock: FakeClock) -> EcsEmulator:
    fleet = Fleet(
        images=(FleetImage(id="image-lc1", size_gb=10),),
        buckets=(FleetBucket(name=BUCKET), FleetBucket(name="other")),
    )
    return start_emulator(fleet, task_seconds=TASK_SECONDS, clock=clock)


def lifecycle(emulator: EcsEmulator, method: str, body: bytes = b"", **headers: str) -> httpx.Response:
    return signed_tos_request(
        emulator, BUCKET, "", method=method, query="lifecycle=", body=body, unsigned=headers
    )


def put_rules(emulator: EcsEmulator, rules: object, *, md5: bool = True, **headers: str) -> httpx.Response:
    body = json.dumps({"Rules": rules}).encode()
    if md5:
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
    return lifecycle(emulator, "PUT", body, **{"Content-Type": "application/json", **headers})


def test_a_bucket_without_rules_answers_404_no_such_lifecycle_configuration(emulator: EcsEmulator) -> None:
    """GET ?lifecycle on a bucket that has none: 404 with the JSON error NoSuchLifecycleConfiguration."""
    answer = lifecycle(emulator, "GET")
    assert answer.status_code == 404
    assert answer.json()["Code"] == "NoSuchLifecycleConfiguration"
    assert answer.json()["Resource"] == BUCKET


def test_rules_put_come_back_exactly_as_they_were_sent(emulator: EcsEmulator) -> None:
    """PUT then GET: each rule back with every field, unknown ones included, in the order it was sent."""
    put = put_rules(emulator, FOREIGN_RULES)
    assert put.status_code == 200, put.text
    answer = lifecycle(emulator, "GET")
    assert answer.status_code == 200
    rules = answer.json()["Rules"]
    assert [json.dumps(rule) for rule in rules] == [json.dumps(rule) for rule in FOREIGN_RULES]
    assert emulator.tos.lifecycle(BUCKET) == FOREIGN_RULES
    assert emulator.tos.lifecycle("other") is None


def test_a_put_replaces_every_rule_and_a_delete_removes_them(emulator: EcsEmulator) -> None:
    """A second PUT holds only its own rules; DELETE ?lifecycle is 204 and the bucket has none again."""
    emulator.tos.set_lifecycle(BUCKET, FOREIGN_RULES)
    ours = {"ID": "image-exporter-px", "Prefix": "px_", "Status": "Enabled"}
    ours["Transitions"] = [{"Days": 30, "StorageClass": "IA"}]  # type: ignore[assignment]
    assert put_rules(emulator, [ours]).status_code == 200
    assert [rule["ID"] for rule in lifecycle(emulator, "GET").json()["Rules"]] == ["image-exporter-px"]
    assert lifecycle(emulator, "DELETE").status_code == 204
    assert lifecycle(emulator, "GET").status_code == 404
    assert lifecycle(emulator, "DELETE").status_code == 204


def test_the_overlap_flag_put_is_answered_back(emulator: EcsEmulator) -> None:
    """``x-tos-allow-same-action-overlap: true`` on the PUT comes back on the GET; without it, nothing."""
    put_rules(emulator, FOREIGN_RULES, **{"x-tos-allow-same-action-overlap": "true"})
    assert lifecycle(emulator, "GET").headers["x-tos-allow-same-action-overlap"] == "true"
    put_rules(emulator, FOREIGN_RULES)
    assert "x-tos-allow-same-action-overlap" not in lifecycle(emulator, "GET").headers


def rule(**fields: Any) -> dict[str, Any]:
    return {"ID": "r1", "Prefix": "px_", "Status": "Enabled", "Expiration": {"Days": 7}, **fields}


@pytest.mark.parametrize(
    ("rules", "code", "words"),
    [
        pytest.param([], "MalformedBody", "1 to 1000 rules", id="no-rules"),
        pytest.param([rule(), rule()], "InvalidArgument", "used by another rule", id="same-id"),
        pytest.param([rule(ID="")], "InvalidArgument", "Rules[0].ID", id="empty-id"),
        pytest.param([rule(Status="On")], "InvalidArgument", "Enabled or Disabled", id="status"),
        pytest.param([{"ID": "r", "Status": "Enabled"}], "InvalidArgument", "at least one action", id="none"),
        pytest.param(
            [rule(Transitions=[{"Days": 30, "StorageClass": "STANDARD"}])],
            "InvalidStorageClass",
            "Transitions[0].StorageClass",
            id="to-standard",
        ),
        pytest.param(
            [rule(Transitions=[{"Days": "30", "StorageClass": "IA"}])],
            "InvalidArgument",
            "Days",
            id="days-text",
        ),
        pytest.param([rule(Expiration={"Days": 0})], "InvalidArgument", "Expiration", id="expire-0"),
        pytest.param(
            [rule(AbortIncompleteMultipartUpload={"DaysAfterInitiation": True})],
            "InvalidArgument",
            "DaysAfterInitiation",
            id="abort-bool",
        ),
    ],
)
def test_a_body_the_emulator_refuses_changes_nothing(
    emulator: EcsEmulator, rules: list[dict[str, Any]], code: str, words: str
) -> None:
    """Each malformed configuration is 400 with a code and a message naming the rule's field; the rules
    already there stay."""
    emulator.tos.set_lifecycle(BUCKET, FOREIGN_RULES)
    refused = put_rules(emulator, rules)
    assert (refused.status_code, refused.json()["Code"]) == (400, code)
    assert words in refused.json()["Message"]
    assert emulator.tos.lifecycle(BUCKET) == FOREIGN_RULES


def test_a_body_that_is_not_its_content_md5_or_not_json_is_refused(emulator: EcsEmulator) -> None:
    """A Content-MD5 of other bytes is 400 InvalidDigest; no Content-MD5 is accepted; a body that is not
    JSON is 400 MalformedBody."""
    wrong = base64.b64encode(hashlib.md5(b"other", usedforsecurity=False).digest()).decode()
    refused = put_rules(emulator, [rule()], md5=False, **{"Content-MD5": wrong})
    assert (refused.status_code, refused.json()["Code"]) == (400, "InvalidDigest")
    assert put_rules(emulator, [rule()], md5=False).status_code == 200
    garbled = lifecycle(emulator, "PUT", b"{not json")
    assert (garbled.status_code, garbled.json()["Code"]) == (400, "MalformedBody")


def test_cold_archive_is_refused_outside_beijing_and_shanghai(
    start_emulator: Callable[..., EcsEmulator],
) -> None:
    """A transition to COLD_ARCHIVE in ap-southeast-1 is 400 InvalidStorageClass; in cn-beijing it lands."""
    to_cold = [rule(Transitions=[{"Days": 60, "StorageClass": "COLD_ARCHIVE"}])]
    fleet = Fleet(buckets=(FleetBucket(name=BUCKET),))
    singapore = start_emulator(fleet, region="ap-southeast-1")
    refused = put_rules(singapore, to_cold)
    assert (refused.status_code, refused.json()["Code"]) == (400, "InvalidStorageClass")
    assert "cn-beijing and cn-shanghai" in refused.json()["Message"]
    assert put_rules(start_emulator(fleet), to_cold).status_code == 200


def test_a_read_only_bucket_shows_its_rules_but_keeps_them(emulator: EcsEmulator) -> None:
    """``read-only``: GET 200, PUT and DELETE 403 AccessDenied; ``none``: GET 403 too."""
    emulator.tos.set_lifecycle(BUCKET, FOREIGN_RULES)
    emulator.set_bucket_access(BUCKET, "read-only")
    assert lifecycle(emulator, "GET").status_code == 200
    assert put_rules(emulator, [rule()]).status_code == 403
    assert lifecycle(emulator, "DELETE").status_code == 403
    emulator.set_bucket_access(BUCKET, "none")
    assert lifecycle(emulator, "GET").status_code == 403
    assert emulator.tos.lifecycle(BUCKET) == FOREIGN_RULES


def test_reset_forgets_the_rules(emulator: EcsEmulator) -> None:
    """``reset`` (POST /__admin/reset) forgets every lifecycle rule put."""
    assert put_rules(emulator, [rule()]).status_code == 200
    emulator.reset()
    assert lifecycle(emulator, "GET").status_code == 404


# -- TOS's clock --------------------------------------------------------------------------------------------


def test_the_clock_offset_moves_every_time_tos_reports(emulator: EcsEmulator, clock: FakeClock) -> None:
    """``set_tos_clock_offset(-600)``: Date, a put object's Last-Modified and its listed LastModified are ten
    minutes behind the emulator's clock; 0 puts them back."""
    emulator.set_tos_clock_offset(-600)
    assert emulator.tos.clock_offset == -600
    behind = clock() - timedelta(seconds=600)
    put = signed_tos_request(emulator, BUCKET, "m.json", method="PUT", body=b"{}")
    assert abs((parsedate_to_datetime(put.headers["date"]) - behind).total_seconds()) < 2
    head = signed_tos_request(emulator, BUCKET, "m.json")
    assert abs((parsedate_to_datetime(head.headers["last-modified"]) - behind).total_seconds()) < 2
    listed = signed_tos_request(emulator, BUCKET, "", method="GET", query="list-type=2&prefix=m")
    modified = listed.json()["Contents"][0]["LastModified"]
    assert modified.startswith(behind.strftime("%Y-%m-%dT%H:%M"))
    emulator.set_tos_clock_offset(0)
    now = parsedate_to_datetime(signed_tos_request(emulator, BUCKET, "m.json").headers["date"])
    assert abs((now - clock()).total_seconds()) < 2


def test_a_request_signed_far_from_tos_time_is_too_skewed(emulator: EcsEmulator, clock: FakeClock) -> None:
    """TOS checks a signature against its own clock: twenty minutes ahead, a request signed at the
    emulator's time is 403 RequestTimeTooSkewed; one signed at TOS's time is accepted."""
    emulator.set_tos_clock_offset(20 * 60)
    late = signed_tos_request(emulator, BUCKET, "", method="GET", query="list-type=2")
    assert (late.status_code, late.json()["Code"]) == (403, "RequestTimeTooSkewed")
    moment = clock() + timedelta(minutes=20)
    on_time = signed_tos_request(emulator, BUCKET, "", method="GET", query="list-type=2", moment=moment)
    assert on_time.status_code == 200


def test_objects_appear_on_the_emulators_timeline_whatever_tos_says(
    emulator: EcsEmulator, clock: FakeClock
) -> None:
    """With TOS's clock an hour ahead, an export task's object is still absent until the task ends (then
    reported written an hour later than the emulator's clock says)."""
    emulator.set_tos_clock_offset(3600)
    ahead = clock() + timedelta(hours=1)
    assert (
        emulator.ecs.export_image({"ImageId": "image-lc1", "TOSBucket": BUCKET, "TOSPrefix": "px"}).status
        == 200
    )
    key = export_object_key("px", "image-lc1")
    assert signed_tos_request(emulator, BUCKET, key, moment=ahead).status_code == 404
    clock.advance(TASK_SECONDS + 1)
    found = signed_tos_request(emulator, BUCKET, key, moment=ahead + timedelta(seconds=TASK_SECONDS + 1))
    assert found.status_code == 200
    written = parsedate_to_datetime(found.headers["last-modified"])
    assert abs((written - (clock() + timedelta(hours=1))).total_seconds()) < 3
