"""Retention's rules and rails (``handler.core.retention_rules``), pure: which exports of a group stay, which go,
and which are left untouched, with the words each verdict carries. The rules are held to restic's semantics by
an independent, naive reading of them (the oracle below) and by the properties that make deleting safe to
repeat: adding an export never deletes one a rule keeps, a plan carried out in parts expires exactly the rest,
and a catalogue read only in part never expires what the whole one keeps."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handler.core.catalogue import Catalogue, CatalogueEntry
from handler.core.retention_rules import (
    CLOCK_TOLERANCE,
    Export,
    Holds,
    Policy,
    RetentionPlan,
    clock_refusal,
    exports_of,
    ordinal,
    plan_retention,
)
from handler.models.manifest import ManifestObject
from handler.models.objects import ListedObject
from tests.support.builders import NOW, manifest

PREFIX = "nightly"


def export(
    n: int | str,
    at: datetime,
    *,
    group: str = "web",
    verified: bool = True,
    gone: int = 0,
    disks: int = 1,
) -> Export:
    """The export of image-<n> in ``group``, finished ``at``, with ``disks`` files of 1 GiB, ``gone`` of which
    the bucket no longer has."""
    image = f"image-{n}"
    keys = tuple(f"{PREFIX}_{image}_{'system' if d == 0 else f'data{d}'}.qcow2" for d in range(disks))
    return Export(
        key=f"{PREFIX}_{image}.manifest.json",
        image_id=image,
        group=group,
        finished_at=at,
        verified=verified,
        verification="structure" if verified else "off",
        objects=keys,
        size_bytes=(disks - gone) * 2**30,
        gone=keys[:gone],
    )


def daily(count: int, *, first: datetime, group: str = "web") -> list[Export]:
    """One export a day from ``first`` on, at 03:20 UTC, named by its date."""
    return [
        export(
            f"{group}{(first + timedelta(days=d)):%m%d}",
            first + timedelta(days=d, hours=3, minutes=20),
            group=group,
        )
        for d in range(count)
    ]


def kinds(plan: RetentionPlan) -> dict[str, str]:
    return {v.export.image_id: v.kind for v in plan.verdicts}


def kept(plan: RetentionPlan) -> set[str]:
    return {v.export.image_id for v in plan.verdicts if v.kind == "keep"}


def expired(plan: RetentionPlan) -> set[str]:
    return {v.export.image_id for v in plan.verdicts if v.kind == "expire"}


def verdict(plan: RetentionPlan, image_id: str) -> tuple[str, str]:
    (found,) = (v for v in plan.verdicts if v.export.image_id == image_id)
    return found.kind, found.reason


# -- the worked example of the README ----------------------------------------------------------------------

# 12 daily exports, Thursday 2026-11-12 to Monday 2026-11-23: ISO weeks 46 (12th-15th), 47 (16th-22nd) and
# 48 (23rd).
WORKED = daily(12, first=datetime(2026, 11, 12, tzinfo=UTC))
WORKED_POLICY = Policy(keep_last=3, keep_weekly=4)


def test_the_worked_example_keeps_the_last_three_and_the_newest_of_each_week() -> None:
    """KEEP_LAST=3 keeps the 23rd, 22nd and 21st; KEEP_WEEKLY=4 the newest of each of the last 4 weeks that
    have an export: the 23rd (week 48), the 22nd (47), the 15th (46), and no fourth week has one. The other
    8 go, oldest first, each saying its place and the policy."""
    plan = plan_retention(WORKED, policy=WORKED_POLICY, now=NOW)

    assert kept(plan) == {"image-web1123", "image-web1122", "image-web1121", "image-web1115"}
    assert [v.export.image_id for v in plan.expiring] == [
        "image-web1112",
        "image-web1113",
        "image-web1114",
        "image-web1116",
        "image-web1117",
        "image-web1118",
        "image-web1119",
        "image-web1120",
    ]
    rules = {v.export.image_id: v.rules for v in plan.verdicts if v.kind == "keep"}
    assert rules == {
        "image-web1123": ("last 1", "weekly 2026-W48", "newest verified", "min_verified"),
        "image-web1122": ("last 2", "weekly 2026-W47", "min_verified"),
        "image-web1121": ("last 3",),
        "image-web1115": ("weekly 2026-W46",),
    }
    assert verdict(plan, "image-web1120") == (
        "expire",
        "group web: 4th newest; keep_last=3, keep_weekly=4, min_verified=2",
    )


def test_the_reason_names_the_place_and_the_rules_as_the_contract_shows() -> None:
    """The contract's example: the 9th newest of web under the defaults (the 8th goes too)."""
    plan = plan_retention(daily(9, first=datetime(2026, 11, 1, tzinfo=UTC)), policy=Policy(), now=NOW)
    oldest, eighth = plan.expiring
    assert oldest.reason == "group web: 9th newest; keep_last=7, min_verified=2"
    assert (oldest.rank, eighth.rank) == (9, 8)


@pytest.mark.parametrize(
    ("policy", "stay"),
    [
        (Policy(keep_last=0, keep_daily=2, min_verified=1), ["1123", "1122"]),
        (Policy(keep_last=0, keep_monthly=3, min_verified=1), ["1123", "1031", "0930"]),
        (Policy(keep_last=1, keep_weekly=2, min_verified=1), ["1123", "1122"]),
        (Policy(keep_last=2, keep_daily=1, keep_monthly=2, min_verified=1), ["1123", "1122", "1031"]),
    ],
)
def test_each_calendar_rule_keeps_the_newest_export_of_each_of_its_last_periods(
    policy: Policy, stay: list[str]
) -> None:
    """Daily, weekly and monthly (UTC, ISO weeks) each keep the newest export of each of their last N periods;
    the kept set is the union of the rules."""
    exports = daily(70, first=datetime(2026, 9, 15, tzinfo=UTC))
    assert kept(plan_retention(exports, policy=policy, now=NOW)) == {f"image-web{d}" for d in stay}


def test_a_period_without_an_export_is_not_counted() -> None:
    """restic's rule: KEEP_DAILY=3 keeps the newest of the last 3 days that have an export, however far apart:
    a group that stopped exporting keeps what it had."""
    days = [datetime(2026, 11, d, 3, tzinfo=UTC) for d in (1, 2, 2, 9, 20)]
    exports = [export(f"e{n}", at + timedelta(minutes=n)) for n, at in enumerate(days)]
    plan = plan_retention(exports, policy=Policy(keep_last=0, keep_daily=3, min_verified=1), now=NOW)
    assert kept(plan) == {"image-e4", "image-e3", "image-e2"}
    assert expired(plan) == {"image-e0", "image-e1"}


def test_groups_are_planned_apart() -> None:
    """Each group keeps its own last N: a busy group never pushes a quiet one's exports out."""
    web = daily(5, first=datetime(2026, 11, 1, tzinfo=UTC), group="web")
    db = daily(2, first=datetime(2026, 10, 1, tzinfo=UTC), group="db")
    plan = plan_retention([*web, *db], policy=Policy(keep_last=2, min_verified=1), now=NOW)
    assert kept(plan) == {"image-web1105", "image-web1104", "image-db1002", "image-db1001"}
    assert list(plan.groups()) == ["db", "web"]


# -- the rails, each on its own ----------------------------------------------------------------------------

FIRST = datetime(2026, 11, 1, tzinfo=UTC)


def test_the_newest_verified_export_with_its_files_is_kept_whatever_the_rules_say() -> None:
    """KEEP_LAST=1 keeps the newest export, whose files are gone; the newest export that still has its files
    is kept too (a manifest without files is no copy to fall back on)."""
    exports = daily(4, first=FIRST)
    exports[-1] = dataclasses.replace(exports[-1], gone=exports[-1].objects)
    plan = plan_retention(exports, policy=Policy(keep_last=1, min_verified=1), now=NOW)
    assert kept(plan) == {"image-web1104", "image-web1103"}
    assert plan.groups()["web"][1].rules == ("newest verified", "min_verified")


def test_never_fewer_than_min_verified_verified_exports_are_left() -> None:
    """RETENTION_MIN_VERIFIED=3 keeps the three newest verified exports even when the rules keep one."""
    plan = plan_retention(daily(5, first=FIRST), policy=Policy(keep_last=1, min_verified=3), now=NOW)
    assert kept(plan) == {"image-web1105", "image-web1104", "image-web1103"}
    assert expired(plan) == {"image-web1101", "image-web1102"}


def test_an_unverified_export_is_neither_counted_nor_deleted() -> None:
    """An export checked with EXPORT_VERIFY=off (or whose check failed) is untouched: it takes no place in
    KEEP_LAST, and it is not deleted however old."""
    exports = daily(5, first=FIRST)
    exports[4] = dataclasses.replace(exports[4], verified=False, verification="off")
    exports[0] = dataclasses.replace(exports[0], verified=False, verification="off")
    plan = plan_retention(exports, policy=Policy(keep_last=2, min_verified=1), now=NOW)
    assert kinds(plan) == {
        "image-web1105": "untouched",
        "image-web1104": "keep",
        "image-web1103": "keep",
        "image-web1102": "expire",
        "image-web1101": "untouched",
    }
    assert (
        verdict(plan, "image-web1101")[1] == "not verified (verification off): never counted, never deleted"
    )
    assert verdict(plan, "image-web1102")[1].startswith("group web: 3rd newest;")


def test_nothing_in_a_group_with_an_export_in_flight_is_deleted() -> None:
    """A group with an export in flight keeps everything the rules would let go, untouched, saying so; the
    other groups go on."""
    exports = [*daily(4, first=FIRST), *daily(4, first=FIRST, group="db")]
    holds = Holds(in_flight={"web": "image-web1106"}, exporting=frozenset({"image-web1106"}))
    plan = plan_retention(exports, policy=Policy(keep_last=2, min_verified=1), now=NOW, holds=holds)
    assert expired(plan) == {"image-db1101", "image-db1102"}
    kind, reason = verdict(plan, "image-web1101")
    assert kind == "untouched"
    assert reason == (
        "would expire (group web: 4th newest; keep_last=2, min_verified=1), but group web has an export in "
        "flight (image-web1106): nothing in it is deleted until that ends"
    )


def test_an_export_whose_image_is_exported_again_is_untouched() -> None:
    """The image of an expiring export is being exported again (renamed since, so in another group): its
    new export writes the same keys, so the old one is left alone."""
    holds = Holds(exporting=frozenset({"image-web1101"}))
    plan = plan_retention(
        daily(3, first=FIRST), policy=Policy(keep_last=1, min_verified=1), now=NOW, holds=holds
    )
    assert kinds(plan)["image-web1101"] == "untouched"
    assert "being exported again" in verdict(plan, "image-web1101")[1]
    assert expired(plan) == {"image-web1102"}


def test_an_export_an_import_reads_from_is_untouched() -> None:
    """A restore or a drill importing from an export that would expire holds it."""
    holds = Holds(importing=frozenset({"image-web1101"}))
    plan = plan_retention(
        daily(3, first=FIRST), policy=Policy(keep_last=1, min_verified=1), now=NOW, holds=holds
    )
    assert verdict(plan, "image-web1101")[0] == "untouched"
    assert "an import from it (a restore or a drill) is in flight" in verdict(plan, "image-web1101")[1]


def test_a_keep_tag_on_the_source_image_pins_its_export() -> None:
    """``image-exporter:keep`` on the source image keeps its export, as a rule of its own."""
    holds = Holds(pinned=frozenset({"image-web1101"}))
    plan = plan_retention(
        daily(3, first=FIRST), policy=Policy(keep_last=1, min_verified=1), now=NOW, holds=holds
    )
    assert verdict(plan, "image-web1101") == ("keep", "kept: its source image carries image-exporter:keep")
    assert expired(plan) == {"image-web1102"}


def test_a_manifest_listing_a_file_outside_its_export_is_left_alone() -> None:
    """Only an export's own files (``<prefix>_<ImageId>_*.qcow2``) are ever deleted: a manifest that lists
    another key is untouched and not counted."""
    exports = daily(3, first=FIRST)
    odd = dataclasses.replace(exports[0], objects=("nightly_image-other_system.qcow2",))
    odd = dataclasses.replace(odd, foreign=odd.objects)
    plan = plan_retention([odd, *exports[1:]], policy=Policy(keep_last=1, min_verified=1), now=NOW)
    assert verdict(plan, "image-web1101")[0] == "untouched"
    assert (
        "'nightly_image-other_system.qcow2', not one of its export's own files"
        in verdict(plan, "image-web1101")[1]
    )


def test_an_export_finished_after_the_servers_now_is_not_counted() -> None:
    """An export dated past TOS's now (its writer's clock far ahead) neither pushes real exports out nor goes."""
    exports = daily(3, first=FIRST)
    ahead = export("ahead", NOW + CLOCK_TOLERANCE + timedelta(minutes=1))
    plan = plan_retention([*exports, ahead], policy=Policy(keep_last=2, min_verified=1), now=NOW)
    assert kinds(plan)["image-ahead"] == "untouched"
    assert kept(plan) == {"image-web1103", "image-web1102"}


def test_an_export_whose_files_are_gone_says_so() -> None:
    """An expiring export whose files the bucket no longer has says that only its manifest is left; one with
    some gone, how many."""
    exports = daily(4, first=FIRST, group="web")
    exports[0] = dataclasses.replace(exports[0], gone=exports[0].objects)
    two = export("two", FIRST + timedelta(hours=1), disks=2, gone=1)
    plan = plan_retention([*exports, two], policy=Policy(keep_last=2, min_verified=1), now=NOW)
    assert verdict(plan, "image-web1101")[1].endswith(
        "; its files are already gone (1 of 1): only its manifest is left"
    )
    assert verdict(plan, "image-two")[1].endswith("; 1 of its 2 files are already gone")


# -- the clocks, and the words -----------------------------------------------------------------------------


def test_clocks_within_five_minutes_agree() -> None:
    assert clock_refusal(NOW, NOW + timedelta(minutes=5)) is None
    assert clock_refusal(NOW, NOW - timedelta(seconds=299)) is None


@pytest.mark.parametrize(("offset", "says"), [(10, "10 min behind"), (-10, "10 min ahead of")])
def test_clocks_ten_minutes_apart_refuse_every_delete_and_say_why(offset: int, says: str) -> None:
    refusal = clock_refusal(NOW, NOW + timedelta(minutes=offset))
    assert refusal is not None
    assert f"TOS's Date (2026-11-26T12:00:00Z) is {says} the local clock, more than 5 min" in refusal
    assert "nothing is deleted until the clocks agree" in refusal


def test_no_date_from_tos_refuses_every_delete() -> None:
    assert "carried no Date" in (clock_refusal(None, NOW) or "")


@pytest.mark.parametrize(
    ("n", "word"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"),
                    (21, "21st"), (22, "22nd"), (101, "101st"), (111, "111th"), (112, "112th")]
)  # fmt: skip
def test_ordinals(n: int, word: str) -> None:
    assert ordinal(n) == word


def test_the_policy_says_the_rules_that_keep_anything() -> None:
    assert Policy().describe() == "keep_last=7, min_verified=2"
    assert Policy(0, 7, 4, 12, 1).describe() == "keep_daily=7, keep_weekly=4, keep_monthly=12, min_verified=1"


def test_a_catalogues_exports_say_which_files_are_in_the_bucket() -> None:
    """``exports_of``: each sound manifest, its group, its files, which of them the listing still has and their
    bytes; a file outside the export's own keys is named."""
    found = manifest("image-a", name="web-20261201")
    data = ManifestObject(key="nightly_image-a_data1.qcow2", disk="data")
    odd = ManifestObject(key="nightly_image-b_system.qcow2", disk="data")
    found = found.model_copy(update={"objects": (*found.objects, data, odd)})
    entry = CatalogueEntry("nightly_image-a.manifest.json", NOW, 100, found)
    listed = (ListedObject("nightly_image-a_system.qcow2", 3 * 2**30, None, None, NOW),)
    (one,) = exports_of(Catalogue("b-1", PREFIX, (entry,), objects=listed), "name")
    assert (one.group, one.image_id, one.verified, one.size_bytes) == ("web", "image-a", True, 3 * 2**30)
    assert one.gone == ("nightly_image-a_data1.qcow2", "nightly_image-b_system.qcow2")
    assert one.foreign == ("nightly_image-b_system.qcow2",)


# -- the properties ----------------------------------------------------------------------------------------

START = datetime(2026, 6, 1, tzinfo=UTC)


@st.composite
def catalogues(draw: st.DrawFn, *, max_size: int = 30) -> list[Export]:
    """Exports of up to three groups over about four months, mostly verified, a few with files gone, each its
    own image."""
    count = draw(st.integers(0, max_size))
    out = []
    for n in range(count):
        minutes = draw(st.integers(0, 120 * 24 * 60))
        out.append(
            dataclasses.replace(
                export(
                    n, START + timedelta(minutes=minutes), group=draw(st.sampled_from(["web", "db", "app"]))
                ),
                verified=draw(st.integers(0, 9)) > 0,
                gone=draw(st.sampled_from([(), (), (), ("x",)])),
            )
        )
    return out


policies = st.builds(
    Policy,
    keep_last=st.integers(0, 5),
    keep_daily=st.integers(0, 6),
    keep_weekly=st.integers(0, 4),
    keep_monthly=st.integers(0, 3),
    min_verified=st.integers(1, 4),
)


def _newest_first(exports: Iterable[Export]) -> list[Export]:
    return sorted(exports, key=lambda e: (e.finished_at, e.key), reverse=True)


def oracle(exports: list[Export], policy: Policy) -> set[str]:
    """What restic keeps, read naively: per group, each rule's periods with an export, the newest n of them,
    the newest export of each; the last n; then the newest MIN_VERIFIED verified exports with their files."""
    keep: set[str] = set()
    for group in {e.group for e in exports}:
        counted = _newest_first(e for e in exports if e.group == group and e.verified)
        keep |= {e.key for e in counted[: policy.keep_last]}
        periods: tuple[tuple[int, Callable[[datetime], tuple[int, ...]]], ...] = (
            (policy.keep_daily, lambda at: (at.year, at.month, at.day)),
            (policy.keep_weekly, lambda at: tuple(at.isocalendar())[:2]),
            (policy.keep_monthly, lambda at: (at.year, at.month)),
        )
        for count, period in periods:
            newest_of: dict[tuple[int, ...], Export] = {}
            for e in counted:
                newest_of.setdefault(period(e.finished_at), e)
            for p in sorted(newest_of, reverse=True)[:count]:
                keep.add(newest_of[p].key)
        keep |= {e.key for e in [e for e in counted if not e.gone][: max(1, policy.min_verified)]}
    return keep


def keys(plan: RetentionPlan, kind: str) -> set[str]:
    return {v.export.key for v in plan.verdicts if v.kind == kind}


@given(catalogues(), policies)
def test_the_kept_exports_are_restics_and_only_unverified_ones_are_left_untouched(
    exports: list[Export], policy: Policy
) -> None:
    """Every export is kept exactly when the naive reading of restic's rules (or a rail) keeps it; the rest of
    the verified ones expire, and every unverified one is untouched."""
    plan = plan_retention(exports, policy=policy, now=NOW)
    assert keys(plan, "keep") == oracle(exports, policy)
    assert keys(plan, "untouched") == {e.key for e in exports if not e.verified}
    assert len(plan.verdicts) == len(exports)


@given(catalogues(), policies)
def test_each_group_keeps_its_newest_verified_export_and_at_least_min_verified(
    exports: list[Export], policy: Policy
) -> None:
    plan = plan_retention(exports, policy=policy, now=NOW)
    for group, verdicts in plan.groups().items():
        complete = [v for v in verdicts if v.export.verified and not v.export.gone]
        if complete:
            assert complete[0].kind == "keep", group
        assert sum(v.kind == "keep" for v in complete) >= min(policy.min_verified, len(complete))


@given(catalogues(), catalogues(max_size=1), policies)
def test_adding_an_export_never_deletes_one_a_rule_keeps_and_only_pushes_older_ones_out(
    exports: list[Export], added: list[Export], policy: Policy
) -> None:
    """With one more export in the catalogue, whatever a rule keeps stays; an export that was kept and now
    goes is older than the one added."""
    if not added:
        return
    new = dataclasses.replace(added[0], key="nightly_image-added.manifest.json", image_id="image-added")
    before = plan_retention(exports, policy=policy, now=NOW)
    after = plan_retention([*exports, new], policy=policy, now=NOW)
    assert keys(after, "keep") == oracle([*exports, new], policy)
    pushed_out = keys(before, "keep") & keys(after, "expire")
    older = {e.key for e in exports if (e.finished_at, e.key) < (new.finished_at, new.key)}
    assert pushed_out <= older


@given(catalogues(), st.data(), policies)
def test_a_plan_carried_out_in_part_leaves_a_plan_that_expires_exactly_the_rest(
    exports: list[Export], data: st.DataObject, policy: Policy
) -> None:
    """Delete the first k exports a plan expires (the cap) and plan again: exactly the others expire, and
    nothing kept changes. Carried out whole, the next plan expires nothing."""
    plan = plan_retention(exports, policy=policy, now=NOW)
    going = [v.export.key for v in plan.expiring]
    k = data.draw(st.integers(0, len(going)))
    left = [e for e in exports if e.key not in going[:k]]
    again = plan_retention(left, policy=policy, now=NOW)
    assert [v.export.key for v in again.expiring] == going[k:]
    assert keys(again, "keep") == keys(plan, "keep")


@given(catalogues(), st.data(), policies)
def test_a_catalogue_read_in_part_never_expires_what_the_whole_one_keeps(
    exports: list[Export], data: st.DataObject, policy: Policy
) -> None:
    """Whatever subset of the manifests was read, each export it expires is one the whole catalogue expires
    too."""
    read = [e for e in exports if data.draw(st.booleans())]
    assert keys(plan_retention(read, policy=policy, now=NOW), "expire") <= keys(
        plan_retention(exports, policy=policy, now=NOW), "expire"
    )


@given(catalogues(), st.randoms(use_true_random=False), policies)
def test_the_plan_does_not_depend_on_the_order_the_catalogue_was_read_in(
    exports: list[Export], rng: random.Random, policy: Policy
) -> None:
    shuffled = list(exports)
    rng.shuffle(shuffled)
    assert plan_retention(shuffled, policy=policy, now=NOW) == plan_retention(exports, policy=policy, now=NOW)


@given(catalogues(max_size=40), policies)
def test_holds_only_ever_keep_more(exports: list[Export], policy: Policy) -> None:
    """Pins, exports in flight and imports never expire an export the plan without them keeps."""
    images = frozenset(e.image_id for e in exports[::3])
    holds = Holds(in_flight={"db": "image-x"}, exporting=images, importing=images, pinned=images)
    held = plan_retention(exports, policy=policy, now=NOW, holds=holds)
    assert keys(held, "expire") <= keys(plan_retention(exports, policy=policy, now=NOW), "expire")
    assert not any(v.export.group == "db" for v in held.expiring)
