"""The retention flow on the emulated account (in process, TOS on the test's clock, the function's own clients):
what is deleted and in which order, what a run reports, and each rail that keeps the last good copy when a
delete fails, the budget runs out, the clocks disagree or what holds exports cannot be seen."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from handler.core.catalogue import ManifestCache
from handler.core.restoring import IMPORTING, RESTORE_KEY, RESTORED_FROM_KEY
from handler.core.retention import RetentionRun, run_retention
from handler.core.retention_rules import Policy
from handler.core.tracking import DEST_KEY, STATE_KEY, Destination
from handler.errors import ServerError, TosAccessDenied, fix_for
from handler.models.manifest import Manifest, ManifestObject, manifest_key
from tests.support.account import Account
from tests.support.builders import NOW, fleet_image, manifest
from tests.support.fakes import Call, FakeClock, failing

DEST = Destination("b-1", "nightly")
FAR = 1e12
DISK = b"QFI\xfb" + b"\0" * 60
POLICY = Policy(keep_last=2, min_verified=1)


def seed(account: Account, found: Manifest, *, files: bool = True) -> None:
    """The export's files (unless ``files`` is False: gone already), then its manifest, as the follow-up writes
    them."""
    if files:
        for one in found.objects:
            account.store_client.put_object(
                DEST.bucket, one.key, DISK, content_type="application/octet-stream", deadline=FAR
            )
    key = manifest_key(DEST.prefix, found.image.id)
    account.store_client.put_object(
        DEST.bucket, key, found.to_bytes(), content_type="application/json", deadline=FAR
    )


def web(day: int, *, group: str = "web", disks: int = 1, **fields: Any) -> Manifest:
    """The export of ``<group>-202611<day>``, finished that day at 03:00 (``NOW`` is the 26th, noon)."""
    image_id = f"image-{group}{day:02d}"
    found = manifest(image_id, name=f"{group}-202611{day:02d}", hours_ago=(26 - day) * 24 + 9, **fields)
    data = tuple(
        ManifestObject(key=f"nightly_{image_id}_data{n}.qcow2", disk="data", size_bytes=len(DISK))
        for n in range(1, disks)
    )
    return found.model_copy(update={"objects": (*found.objects, *data)})


def account_with(*exports: Manifest, images: tuple[Any, ...] = (), files: bool = True) -> Account:
    account = Account(images)
    for found in exports:
        seed(account, found, files=files)
    account.api.calls.clear()
    return account


def retain(account: Account, **options: Any) -> RetentionRun:
    options.setdefault("mode", "apply")
    options.setdefault("policy", POLICY)
    options.setdefault("max_deletes", 10)
    options.setdefault("deadline", FAR)
    options.setdefault("clock", account.clock)
    return run_retention(account.api, account.api, dest=DEST, group_by="name", workers=4, **options)


def present(account: Account) -> set[str]:
    return {o.key for o in account.emulator.side_service.objects() if o.bucket == DEST.bucket}


def files_of(found: Manifest) -> set[str]:
    return {o.key for o in found.objects} | {manifest_key(DEST.prefix, found.image.id)}


def statuses(run: RetentionRun) -> list[tuple[str | None, str]]:
    return [(o.image_id, o.status) for o in run.outcomes]


# -- deleting -----------------------------------------------------------------------------------------------


def test_an_export_is_deleted_whole_every_file_then_its_manifest_oldest_first() -> None:
    """The exports the rules let go are deleted oldest first, each as a whole: every file its manifest lists,
    its manifest last; each is an ``expired`` result naming its manifest, its bytes and why it went."""
    exports = [web(d, disks=2) for d in (20, 21, 22, 23)]
    account = account_with(*exports)

    run = retain(account)

    assert statuses(run) == [("image-web20", "expired"), ("image-web21", "expired")]
    assert present(account) == files_of(exports[2]) | files_of(exports[3])
    deletes = [key for action, key in account.calls if action == "DeleteObject"]
    assert deletes == [
        "nightly_image-web20_system.qcow2",
        "nightly_image-web20_data1.qcow2",
        "nightly_image-web20.manifest.json",
        "nightly_image-web21_system.qcow2",
        "nightly_image-web21_data1.qcow2",
        "nightly_image-web21.manifest.json",
    ]
    first = run.outcomes[0]
    assert (first.tos_bucket, first.manifest_key, first.size_bytes) == (
        "b-1",
        "nightly_image-web20.manifest.json",
        2 * len(DISK),
    )
    assert first.reason == (
        "group web: 4th newest; keep_last=2, min_verified=1; deleted: 2 file(s), then its manifest"
    )
    assert (run.deleted, run.freed_bytes, run.waiting) == (2, 4 * len(DISK), 0)


def test_plan_reports_what_would_go_and_deletes_nothing() -> None:
    """RETENTION_MODE=plan: each export that would go is a ``would_expire`` result with the rule in its reason,
    and no DeleteObject is sent."""
    account = account_with(*(web(d) for d in (20, 21, 22)))
    run = retain(account, mode="plan")
    assert statuses(run) == [("image-web20", "would_expire")]
    assert run.outcomes[0].reason == "group web: 3rd newest; keep_last=2, min_verified=1"
    assert account.count("DeleteObject") == 0
    assert run.deleted == 0


def test_nothing_to_delete_asks_ecs_nothing() -> None:
    """When no export would go, the catalogue is all that is read: not one ECS request."""
    account = account_with(web(22), web(23))
    run = retain(account)
    assert run.outcomes == ()
    assert account.count("DescribeImages") == 0
    assert [action for action, _ in account.calls] == ["ListObjectsV2", "GetObject", "GetObject"]


def test_at_most_max_deletes_go_in_one_run_and_the_next_run_finishes() -> None:
    """RETENTION_MAX_DELETES=2 with four to go: the two oldest are deleted, the other two wait, saying so; the
    next run deletes them."""
    account = account_with(*(web(d) for d in range(17, 23)))

    first = retain(account, max_deletes=2)

    assert statuses(first) == [
        ("image-web17", "expired"),
        ("image-web18", "expired"),
        ("image-web19", "would_expire"),
        ("image-web20", "would_expire"),
    ]
    assert first.outcomes[2].reason == (
        "group web: 4th newest; keep_last=2, min_verified=1; waits for the next run: RETENTION_MAX_DELETES=2 "
        "were deleted in this one"
    )
    assert first.waiting == 2
    second = retain(account, max_deletes=2)
    assert statuses(second) == [("image-web19", "expired"), ("image-web20", "expired")]
    assert present(account) == files_of(web(21)) | files_of(web(22))


def test_a_run_cut_off_half_way_leaves_the_manifest_and_the_next_run_finishes_the_export() -> None:
    """A DeleteObject that fails after one of an export's two files went: the result is deferred with the
    error, its manifest stays, nothing more is deleted in this run; the next run finds the export with a file
    gone and deletes the rest, manifest last."""
    account = account_with(*(web(d, disks=2) for d in (19, 20, 21, 22)))
    account.api.on("DeleteObject", failing(None, ServerError("busy", code="InternalError", http_status=500)))

    first = retain(account)

    assert statuses(first) == [("image-web19", "deferred"), ("image-web20", "would_expire")]
    assert first.outcomes[0].reason == (
        "group web: 4th newest; keep_last=2, min_verified=1; deleting it failed after 1 of its 2 file(s) were "
        "deleted (InternalError): its manifest stays, so a later run finishes it"
    )
    assert first.outcomes[1].reason is not None
    assert first.outcomes[1].reason.endswith(
        "; not deleted: deleting image-web19's export failed (InternalError)"
    )
    assert "nightly_image-web19.manifest.json" in present(account)
    assert "nightly_image-web19_system.qcow2" not in present(account)

    second = retain(account)

    assert statuses(second) == [("image-web19", "expired"), ("image-web20", "expired")]
    assert second.outcomes[0].reason is not None
    assert (
        "; 1 of its 2 files are already gone; deleted: 2 file(s), then its manifest"
        in second.outcomes[0].reason
    )
    assert present(account) == files_of(web(21, disks=2)) | files_of(web(22, disks=2))


def test_a_manifest_whose_files_are_already_gone_is_removed_with_a_note() -> None:
    """An export that goes whose files someone already deleted: its manifest is removed, and the result says
    the files were gone."""
    account = account_with(web(21), web(22), web(23))
    account.emulator.side_service.remove_object(DEST.bucket, "nightly_image-web21_system.qcow2")

    run = retain(account)

    assert statuses(run) == [("image-web21", "expired")]
    assert run.outcomes[0].reason == (
        "group web: 3rd newest; keep_last=2, min_verified=1; its files are already gone (1 of 1): only its "
        "manifest is left; its manifest was removed"
    )
    assert run.outcomes[0].size_bytes == 0
    assert "nightly_image-web21.manifest.json" not in present(account)


def test_a_delete_tos_refuses_is_a_failed_result_that_says_what_to_grant() -> None:
    """TOS refuses DeleteObject (403): the export is ``failed`` with ``TosAccessDenied.DeleteObject``, whose fix
    names tos:DeleteObject; nothing more is deleted."""
    account = account_with(*(web(d) for d in (19, 20, 21, 22)))
    refused = TosAccessDenied("refused", code="TosAccessDenied.DeleteObject", http_status=403)
    account.api.on("DeleteObject", failing(refused))

    run = retain(account)

    assert statuses(run) == [("image-web19", "failed"), ("image-web20", "would_expire")]
    error = run.outcomes[0].error
    assert error is not None
    assert error.code == "TosAccessDenied.DeleteObject"
    assert "tos:DeleteObject" in (fix_for(error.code) or "")
    assert account.count("DeleteObject") == 1


def test_the_budget_stops_the_deleting_and_says_how_far_it_got() -> None:
    """The budget runs out in the middle of an export's deletion: it is reported with how far it got (its
    manifest stays for the next run), and the rest are reported, not begun."""
    account = account_with(*(web(d) for d in (18, 19, 20, 21, 22)))

    def slow(call: Call, send: Any) -> Any:
        account.clock.advance(10)
        return send()

    account.api.on("DeleteObject", slow)
    run = retain(account, deadline=account.clock.monotonic() + 25)

    assert [s for _, s in statuses(run)] == ["expired", "would_expire", "would_expire"]
    assert run.outcomes[1].reason == (
        "group web: 4th newest; keep_last=2, min_verified=1; not deleted: the time budget ran out after 0 of "
        "its 1 file(s) were deleted: its manifest stays, so a later run finishes it"
    )
    assert run.outcomes[2].reason is not None
    assert run.outcomes[2].reason.endswith(
        "; not deleted: the time budget ran out first; a later run deletes it"
    )


# -- what stops every delete --------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [10, -10])
def test_clocks_ten_minutes_apart_delete_nothing_and_say_why(minutes: int) -> None:
    """The function's clock 10 minutes off TOS's Date (TOS answers on the account's clock): nothing is
    deleted and every export that would go says why."""
    account = account_with(web(20), web(21), web(22))
    skewed = FakeClock(0.0, wall=NOW + timedelta(minutes=minutes), jitter=0.5)

    run = retain(account, clock=skewed)

    assert statuses(run) == [("image-web20", "would_expire")]
    assert run.refused is not None
    assert "more than 5 min: nothing is deleted until the clocks agree" in run.refused
    assert run.outcomes[0].reason is not None
    assert run.outcomes[0].reason.endswith("; not deleted: " + run.refused)
    assert account.count("DeleteObject") == 0


def test_clocks_four_minutes_apart_agree() -> None:
    account = account_with(web(20), web(21), web(22))
    run = retain(account, clock=FakeClock(0.0, wall=NOW + timedelta(minutes=4), jitter=0.5))
    assert statuses(run) == [("image-web20", "expired")]


def test_a_catalogue_cut_short_by_the_budget_deletes_nothing() -> None:
    """When the deadline leaves manifests unread, the plan is incomplete: nothing is deleted, and the results
    say so."""
    account = account_with(*(web(d) for d in (18, 19, 20, 21, 22)))
    deadline = account.clock.monotonic() + 100

    def late(call: Call, send: Any) -> Any:
        answer = send()
        if call.n == 3:
            account.clock.advance(200)
        return answer

    account.api.on("GetObject", late)
    run = run_retention(
        account.api,
        account.api,
        dest=DEST,
        group_by="name",
        policy=Policy(keep_last=1, min_verified=1),
        mode="apply",
        max_deletes=10,
        deadline=deadline,
        workers=1,
        clock=account.clock,
    )
    assert run.unread == 2
    assert {s for _, s in statuses(run)} == {"would_expire"}
    assert run.refused is not None
    assert "before every manifest was read (2 left unread)" in run.refused
    assert account.count("DeleteObject") == 0


def test_holds_that_cannot_be_looked_up_delete_nothing() -> None:
    """DescribeImages failing (the tag searches, the keep tags): nothing is deleted, the results say so."""
    account = account_with(web(20), web(21), web(22))
    account.api.on("DescribeImages", failing(ServerError("down", code="InternalError", http_status=500)))
    run = retain(account)
    assert statuses(run) == [("image-web20", "would_expire")]
    assert run.refused == (
        "what holds exports (exports and imports in flight, keep tags) could not be looked up (InternalError): "
        "a later run tries again"
    )


def test_a_listing_tos_refuses_is_one_failed_result() -> None:
    account = account_with(web(20))
    refused = TosAccessDenied("refused", code="TosAccessDenied.ListObjects", http_status=403)
    account.api.on("ListObjectsV2", failing(refused))
    run = retain(account)
    ((outcome),) = run.outcomes
    assert (outcome.image_id, outcome.status) == (None, "failed")
    assert outcome.error is not None
    assert outcome.error.code == "TosAccessDenied.ListObjects"


def test_a_listing_that_fails_for_now_is_deferred() -> None:
    account = account_with(web(20))
    account.api.on("ListObjectsV2", failing(ServerError("down", code="InternalError", http_status=500)))
    ((outcome),) = retain(account).outcomes
    assert outcome.status == "deferred"


# -- what holds exports -------------------------------------------------------------------------------------


def exporting(image_id: str, name: str, dest: str = "tos://b-1/nightly") -> Any:
    return fleet_image(image_id, name=name, tags={STATE_KEY: "exporting", DEST_KEY: dest})


def test_a_group_with_an_export_in_flight_keeps_everything() -> None:
    """An image of group web tagged exporting to this bucket holds every web export; db's go on; an export in
    flight to another destination holds nothing here."""
    exports = [web(d) for d in (20, 21, 22)] + [web(d, group="db") for d in (20, 21, 22)]
    images = (
        exporting("image-web24", "web-20261124"),
        exporting("image-db24", "db-20261124", dest="tos://other-bucket/nightly"),
    )
    account = account_with(*exports, images=images)

    run = retain(account)

    assert statuses(run) == [("image-db20", "expired")]
    verdicts = {v.export.image_id: (v.kind, v.reason) for v in run.plan.verdicts} if run.plan else {}
    assert verdicts["image-web20"][0] == "untouched"
    assert "group web has an export in flight (image-web24)" in verdicts["image-web20"][1]


def test_an_export_started_in_this_run_holds_its_group_before_its_tags_read_back() -> None:
    """An image whose export started in this invocation holds its group even when its tag search does not show
    it yet: its group is read from DescribeImages by id."""
    exports = [web(d) for d in (20, 21, 22)]
    account = account_with(*exports, images=(fleet_image("image-web24", name="web-20261124"),))
    run = retain(account, started=["image-web24"])
    assert run.outcomes == ()
    assert run.plan is not None
    assert [v.kind for v in run.plan.verdicts] == ["keep", "keep", "untouched"]


def test_an_export_started_in_this_run_whose_group_is_unknown_stops_every_delete() -> None:
    account = account_with(web(20), web(21), web(22))
    run = retain(account, started=["image-gone"])
    assert statuses(run) == [("image-web20", "would_expire")]
    assert run.refused is not None
    assert run.refused.startswith("the group of image-gone, whose export started in this run, is not known")


def test_a_keep_tag_on_the_source_image_pins_its_export_and_a_deleted_source_pins_nothing() -> None:
    """``image-exporter:keep`` (any value, any case) on a source image keeps its export; a source image that no
    longer exists pins nothing."""
    exports = [web(d) for d in (19, 20, 21, 22)]
    images = (fleet_image("image-web19", name="web-20261119", tags={"Image-Exporter:Keep ": ""}),)
    account = account_with(*exports, images=images)

    run = retain(account)

    assert statuses(run) == [("image-web20", "expired")]
    assert "nightly_image-web19.manifest.json" in present(account)
    asked = [ids for action, ids in account.calls if action == "DescribeImages"]
    assert len(asked) == 3  # exports in flight, imports in flight, the sources by id


def test_an_export_an_import_reads_from_is_left_alone() -> None:
    """A restore importing from an export that would go (tagged restored-from it, importing) holds it, as does
    a drill started in this run."""
    exports = [web(d) for d in (19, 20, 21, 22)]
    restoring = fleet_image(
        "image-restored",
        name="web-restored",
        tags={RESTORED_FROM_KEY: "image-web19", RESTORE_KEY: IMPORTING, DEST_KEY: "tos://b-1/nightly"},
    )
    account = account_with(*exports, images=(restoring,))

    run = retain(account, importing=["image-web20"])

    assert run.outcomes == ()
    assert account.count("DeleteObject") == 0


def test_the_cache_of_the_invocation_spares_the_manifests_already_read() -> None:
    """With the manifests an earlier step of the invocation read (the drill's), retention GETs none again."""
    account = account_with(*(web(d) for d in (20, 21, 22)))
    cache = ManifestCache()
    retain(account, mode="plan", cache=cache)
    account.api.calls.clear()
    retain(account, mode="plan", cache=cache)
    assert account.count("GetObject") == 0
