"""The catalogue of exports in a bucket: its manifests listed and read back by bounded ranged GETs, several at a
time; a manifest that cannot be read or trusted is an entry with a problem, and the deadline leaves the rest
unread, counted. Then the groups (``RETENTION_GROUP_BY``), the newest verified export and the last restore of
each.

Against the emulated account's TOS (in process) through the function's own TOS client, wrapped in the suites'
``ScriptedEcs`` for the failures the account cannot make by itself.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handler.core.catalogue import (
    MAX_MANIFEST_BYTES,
    Catalogue,
    CatalogueEntry,
    ManifestCache,
    by_group,
    group_for,
    group_of,
    last_verified_restores,
    newest_verified,
    read_catalogue,
)
from handler.errors import BudgetExhausted, ServerError
from handler.models.manifest import Manifest, manifest_key
from handler.models.objects import ObjectUnreadable
from tests.support.account import Account
from tests.support.builders import NOW, manifest
from tests.support.fakes import Call, failing

BUCKET, PREFIX = "b-1", "nightly"
DEADLINE = 1e9


def put(account: Account, key: str, body: bytes, content_type: str = "application/json") -> None:
    account.store_client.put_object(BUCKET, key, body, content_type=content_type, deadline=DEADLINE)


def put_manifest(account: Account, found: Manifest) -> str:
    key = manifest_key(PREFIX, found.image.id)
    put(account, key, found.to_bytes())
    return key


def read(account: Account, **options: Any) -> Catalogue:
    options.setdefault("deadline", DEADLINE)
    options.setdefault("workers", 4)
    catalogue = read_catalogue(account.api, BUCKET, PREFIX, clock=account.clock, **options)
    assert isinstance(catalogue, Catalogue), catalogue
    return catalogue


def problem_of(catalogue: Catalogue, key: str) -> str:
    (entry,) = (e for e in catalogue.entries if e.key == key)
    assert entry.manifest is None
    assert entry.problem is not None
    return entry.problem


# -- reading ------------------------------------------------------------------------------------------------


def test_every_manifest_under_the_prefix_is_read_and_nothing_else() -> None:
    """Only ``<prefix>_<ImageId>.manifest.json`` keys are entries, in key order, each with the listing's size
    and Last-Modified and its manifest; the export files, another prefix's manifests and odd keys are
    skipped, and none of them is read."""
    account = Account()
    keys = [put_manifest(account, manifest(f"image-{n}")) for n in ("b", "a", "c")]
    for other in (
        "nightly_image-a_system.qcow2",
        "nightlyx_image-z.manifest.json",
        "other_image-y.manifest.json",
        "nightly_.manifest.json",
        "nightly_dir/image-q.manifest.json",
        "nightly_image-a.manifest.json.bak",
    ):
        put(account, other, b"{}", "application/octet-stream")

    catalogue = read(account)

    assert [e.key for e in catalogue.entries] == sorted(keys)
    assert [e.image_id for e in catalogue.entries] == ["image-a", "image-b", "image-c"]
    assert all(e.problem is None and e.manifest is not None for e in catalogue.entries)
    assert catalogue.exports == catalogue.entries
    assert (catalogue.problems, catalogue.unread, catalogue.server_time is not None) == ((), 0, True)
    first = catalogue.entries[0]
    assert first.size == len(manifest("image-a").to_bytes())
    assert first.last_modified is not None
    assert first.manifest == manifest("image-a")
    read_keys = [asked[0] for action, asked in account.calls if action == "GetObject"]
    assert sorted(read_keys) == sorted(keys)


def test_each_manifest_is_one_ranged_get_of_its_listed_size() -> None:
    """A manifest is read with one GetObject from byte 0 for the size the listing gave, never more."""
    account = Account()
    for n in range(6):
        put_manifest(account, manifest(f"image-{n}"))
    catalogue = read(account, workers=3)
    sizes = {e.key: e.size for e in catalogue.entries}
    reads = [asked for action, asked in account.calls if action == "GetObject"]
    assert sorted(reads) == sorted((key, 0, size) for key, size in sizes.items())


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{", "not a valid manifest: Invalid JSON"),
        (b"\xff\xfe not utf-8", "not a valid manifest: Invalid JSON"),
        (b"[]", "not a valid manifest: Input should be an object"),
        (b'{"image": {"id": "image-bad"}}', "not a valid manifest: export: Field required (and 2 more)"),
        (b"", "the object is empty"),
    ],
)
def test_an_unreadable_manifest_is_an_entry_with_a_problem_and_the_others_are_read(
    body: bytes, says: str
) -> None:
    """A manifest that does not parse, or an empty object, is an entry with no manifest and a problem
    saying what is wrong; the sound manifests beside it are read as ever."""
    account = Account()
    sound = put_manifest(account, manifest("image-ok"))
    put(account, manifest_key(PREFIX, "image-bad"), body)

    catalogue = read(account)

    assert says in problem_of(catalogue, manifest_key(PREFIX, "image-bad"))
    assert [e.key for e in catalogue.exports] == [sound]
    assert catalogue.problems[0].image_id == "image-bad"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        (
            {"schema_": "image-exporter/manifest/9"},
            "schema 'image-exporter/manifest/9', not image-exporter/manifest/1",
        ),
        ({"bucket": "b-2"}, "written for tos://b-2/nightly, not tos://b-1/nightly"),
        ({"prefix": "weekly"}, "written for tos://b-1/weekly"),
        ({"image_id": "image-other"}, "names the image 'image-other', but its key is 'image-x''s"),
    ],
)
def test_a_manifest_of_another_export_is_not_trusted(fields: dict[str, str], says: str) -> None:
    """A well-formed manifest that is not this key's export (another schema version, copied from another
    bucket or prefix, or naming another image) is a problem: retention deletes what a manifest lists."""
    account = Account()
    image_id = fields.pop("image_id", "image-x")
    found = manifest(
        image_id, bucket=fields.pop("bucket", BUCKET), prefix=fields.pop("prefix", PREFIX), **fields
    )
    key = manifest_key(PREFIX, "image-x")
    put(account, key, found.to_bytes())

    assert says in problem_of(read(account), key)


def test_a_manifest_too_big_is_never_read() -> None:
    """An object under a manifest's key larger than the bound is a problem naming its size, and no GetObject
    is sent for it."""
    account = Account()
    big = manifest_key(PREFIX, "image-big")
    put(account, big, b" " * 2048)
    put_manifest(account, manifest("image-ok"))

    catalogue = read(account, max_bytes=1024)

    assert problem_of(catalogue, big) == "2,048 bytes, more than the 1,024 a manifest can be: not read"
    assert [asked[0] for action, asked in account.calls if action == "GetObject"] == [
        manifest_key(PREFIX, "image-ok")
    ]
    assert MAX_MANIFEST_BYTES == 1024 * 1024


def test_a_read_that_fails_is_a_problem_naming_the_error() -> None:
    """A GetObject that fails (here a 500 after the client's attempts) makes that entry a problem with the
    error's code; the other manifests are read."""
    account = Account()
    keys = [put_manifest(account, manifest(f"image-{n}")) for n in range(3)]
    account.api.on("GetObject", lambda call, send: _fail_on(call, keys[1], send))

    catalogue = read(account, workers=1)

    assert problem_of(catalogue, keys[1]).startswith("could not be read (InternalError: ")
    assert [e.key for e in catalogue.exports] == [keys[0], keys[2]]


def _fail_on(call: Call, key: str, send: Any) -> Any:
    if call.asked[0] == key:
        raise ServerError("TOS is having a bad day", code="InternalError")
    return send()


def test_the_deadline_stops_the_reading_and_counts_what_is_left() -> None:
    """Once the deadline has passed no read starts: those manifests are counted as unread (not problems), and
    a read the client refused for want of time (BudgetExhausted) is unread too."""
    account = Account()
    keys = [put_manifest(account, manifest(f"image-{n}")) for n in range(5)]
    deadline = account.clock.monotonic() + 60

    def slow(call: Call, send: Any) -> Any:
        if call.n == 2:
            raise BudgetExhausted("no time left for this read")
        answer = send()
        if call.n == 3:
            account.clock.advance(120)  # the third read took the rest of the time
        return answer

    account.api.on("GetObject", slow)

    catalogue = read(account, workers=1, deadline=deadline)

    assert [e.key for e in catalogue.entries] == [keys[0], keys[2]]
    assert catalogue.unread_keys == (keys[1], keys[3], keys[4])
    assert catalogue.unread == 3
    assert catalogue.problems == ()
    assert account.count("GetObject") == 3


def test_a_refused_listing_is_answered_as_tos_answered_it() -> None:
    """A listing TOS refuses (403) is the ObjectUnreadable it answered, which says what permission is
    missing; nothing is read."""
    account = Account()
    put_manifest(account, manifest("image-a"))
    account.ecs.set_bucket_access(BUCKET, "none")

    found = read_catalogue(account.api, BUCKET, PREFIX, deadline=DEADLINE, workers=4, clock=account.clock)

    assert isinstance(found, ObjectUnreadable)
    assert "tos:ListBucket" in found.reason
    assert account.count("GetObject") == 0


def test_a_listing_that_fails_raises_its_error() -> None:
    """A listing that fails (a 500) raises the store's typed error: the caller says the catalogue could not
    be read rather than that it is empty."""
    account = Account()
    account.api.on("ListObjectsV2", failing(ServerError("down", code="InternalError")))
    with pytest.raises(ServerError):
        read_catalogue(account.api, BUCKET, PREFIX, deadline=DEADLINE, workers=4, clock=account.clock)


def test_an_empty_bucket_is_an_empty_catalogue() -> None:
    """No manifest: no entry, no problem, nothing unread."""
    catalogue = read(Account())
    assert (catalogue.entries, catalogue.unread, catalogue.bucket, catalogue.prefix) == (
        (),
        0,
        BUCKET,
        PREFIX,
    )


def test_many_manifests_are_read_several_at_a_time() -> None:
    """Twenty manifests with eight workers: all read, each once."""
    account = Account()
    for n in range(20):
        put_manifest(account, manifest(f"image-{n:02d}"))
    catalogue = read(account, workers=8)
    assert len(catalogue.exports) == 20
    assert account.count("GetObject") == 20


# -- groups -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("web-20261201", "web"),
        ("web-2026-12-01T0300", "web"),
        ("web-17", "web"),
        ("web_20261201", "web"),
        ("web-20261201-0300", "web"),
        ("web-2026-12-01T03:00:00Z", "web"),
        ("db_prod-20261201T030000Z", "db_prod"),
        ("web", "web"),
        ("web-v2", "web-v2"),
        ("ubuntu-22.04-20261201", "ubuntu-22.04"),
        ("20261201", "20261201"),
        ("2026-12-01", "2026-12-01"),
        ("17-20261201", "17-20261201"),
        ("web-2026-12-01T0300Z", "web"),
        ("web_17", "web"),
        ("nightly.2026.12.01", "nightly"),
        ("db.20261201", "db"),
        ("ubuntu-22.04", "ubuntu-22.04"),
        ("python.3.12", "python.3.12"),
    ],
)
def test_a_name_group_is_the_name_without_its_trailing_date_time_or_counter(name: str, group: str) -> None:
    """RETENTION_GROUP_BY=name: a trailing date, time or counter after '-' or '_' is not part of the group;
    after a '.' only a date-shaped stamp is (nightly.2026.12.01 is nightly; ubuntu-22.04 and ubuntu-24.04 stay
    apart); a name that is only digits or a date stays itself."""
    assert group_of(manifest("image-a", name=name), "name") == group


def test_an_image_without_a_name_is_a_group_of_its_own() -> None:
    """A manifest with an empty name is grouped by its image alone, never with other unnamed images."""
    unnamed = manifest("image-a")
    unnamed = unnamed.model_copy(update={"image": unnamed.image.model_copy(update={"name": ""})})
    assert group_of(unnamed, "name") == "(unnamed image-a)"


def test_a_tag_group_is_the_tags_value_and_a_missing_tag_is_named() -> None:
    """RETENTION_GROUP_BY=tag:KEY: the value of that tag on the source image at the export; without the tag,
    the group says so; an empty value is named too."""
    assert group_of(manifest("image-a", tags={"app": "web"}), "tag:app") == "web"
    assert group_of(manifest("image-a", tags={"team": "x"}), "tag:app") == "(no tag app)"
    assert group_of(manifest("image-a", tags={"app": ""}), "tag:app") == "(empty tag app)"
    assert group_of(manifest("image-a", tags={"a:b": "v"}), "tag:a:b") == "v"


@pytest.mark.parametrize("group_by", ["", "tag:", "names", "Name"])
def test_a_group_by_the_settings_never_accept_is_a_value_error(group_by: str) -> None:
    """Only what the settings accept (name, tag:KEY) is understood."""
    with pytest.raises(ValueError, match="expected name or tag:KEY"):
        group_of(manifest("image-a"), group_by)


NAME_CHARS = "abwXZTz0123456789-_.:: 中"


@given(st.text(alphabet=NAME_CHARS, max_size=30) | st.text(max_size=30))
def test_group_of_never_raises_and_a_groups_group_is_itself(name: str) -> None:
    """Whatever the name, it has a group; and a name that is already a group is its own group."""
    group = group_of(manifest("image-a", name=name or "x"), "name")
    assert group
    assert group_of(manifest("image-a", name=group), "name") == group


@given(
    st.text(alphabet="abcxyz-_0123456789", max_size=20).map(lambda s: s + "k"),
    st.sampled_from(["-20261201", "_20261201", "-17", "-2026-12-01T0300", "-20261201-0300", "_3"]),
)
def test_a_dated_name_groups_with_its_undated_name(base: str, stamp: str) -> None:
    """A name ending in a letter and the same name with a date, time or counter after it share a group."""
    assert group_of(manifest("image-a", name=base + stamp), "name") == group_of(
        manifest("image-a", name=base), "name"
    )


@given(st.text(max_size=20), st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4))
def test_a_tag_group_never_raises_and_is_never_empty(key: str, tags: dict[str, str]) -> None:
    """Whatever the tags, a tag group is named."""
    assert group_of(manifest("image-a", tags=tags), f"tag:{key or 'k'}")


# -- what each group has ------------------------------------------------------------------------------------


def entry(found: Manifest, key: str | None = None) -> CatalogueEntry:
    return CatalogueEntry(key or manifest_key(PREFIX, found.image.id), NOW, 100, found)


def with_export(found: Manifest, **fields: Any) -> Manifest:
    """The manifest with its ``export`` fields changed as given (unvalidated, as a hand-written one may be)."""
    return found.model_copy(update={"export": found.export.model_copy(update=fields)})


def test_the_newest_verified_export_of_each_group() -> None:
    """Per group, the verified export that finished last; an unverified newer one does not count, a group
    with no verified export is left out, and entries with a problem belong to no group."""
    entries = [
        entry(manifest("image-w1", name="web-20261201", hours_ago=48)),
        entry(manifest("image-w2", name="web-20261202", hours_ago=24)),
        entry(manifest("image-w3", name="web-20261203", hours_ago=1, verified=False)),
        entry(manifest("image-d1", name="db-1", hours_ago=5, verified=False)),
        CatalogueEntry("nightly_image-broken.manifest.json", NOW, 3, None, "not a valid manifest"),
    ]
    newest = newest_verified(entries, "name")
    assert {group: e.image_id for group, e in newest.items()} == {"web": "image-w2"}
    groups = by_group(entries, "name")
    assert {g: [e.image_id for e in members] for g, members in groups.items()} == {
        "web": ["image-w3", "image-w2", "image-w1"],
        "db": ["image-d1"],
    }


def test_finish_times_without_a_zone_are_utc_and_a_missing_one_falls_back_to_the_check() -> None:
    """A hand-written manifest's naive time is read as UTC (never a comparison error); without finished_at
    the verification's time stands in."""
    written = datetime(2026, 11, 26, 11, 30)  # noqa: DTZ001 - a hand-written manifest's naive time
    naive = with_export(manifest("image-n", name="web-1"), finished_at=written)
    unfinished = with_export(manifest("image-u", name="web-2", hours_ago=0.25), finished_at=None)
    entries = [entry(naive), entry(unfinished), entry(manifest("image-o", name="web-3", hours_ago=2))]

    assert entry(naive).finished_at == datetime(2026, 11, 26, 11, 30, tzinfo=UTC)
    assert entry(unfinished).finished_at == NOW - timedelta(hours=0.25)
    assert [e.image_id for e in by_group(entries, "name")["web"]] == ["image-u", "image-n", "image-o"]


def test_the_last_verified_restore_of_each_group_and_of_each_export() -> None:
    """The newest restore check that Succeeded, over the group's exports; a failed check is not a verified
    restore; a group never restored is left out."""
    failed = manifest("image-w2", name="web-2", restored_hours_ago=(1,))
    failed = failed.model_copy(
        update={
            "restore_checks": tuple(c.model_copy(update={"result": "Failed"}) for c in failed.restore_checks)
        }
    )
    entries = [
        entry(manifest("image-w1", name="web-1", restored_hours_ago=(30, 6))),
        entry(failed),
        entry(manifest("image-d1", name="db-1")),
    ]
    restores = last_verified_restores(entries, "name")
    assert set(restores) == {"web"}
    assert restores["web"].at == NOW - timedelta(hours=6)
    assert entries[0].last_restore is not None
    assert entries[0].last_restore.at == NOW - timedelta(hours=6)
    assert entries[1].last_restore is None


def test_an_entry_without_a_manifest_is_neither_verified_nor_finished() -> None:
    """A problem entry has its image id from its key and nothing else."""
    broken = CatalogueEntry(
        "nightly_image-q.manifest.json", None, 0, None, "the object is empty: no manifest"
    )
    assert (broken.image_id, broken.verified, broken.finished_at, broken.last_restore) == (
        "image-q",
        False,
        None,
        None,
    )
    assert dataclasses.is_dataclass(broken)
    assert not hasattr(broken, "__dict__")  # slotted: a catalogue holds one per export


def test_a_window_reads_only_the_manifests_tos_says_were_written_within_it() -> None:
    """``modified_since`` (the drill's window): a manifest written earlier than that, by TOS's own clock, is
    neither read nor listed as an entry; the ones written within it are read."""
    account = Account()
    put_manifest(account, manifest("image-old"))
    account.clock.advance(3 * 24 * 3600)
    put_manifest(account, manifest("image-new"))

    catalogue = read(account, modified_since=timedelta(days=1))

    assert [e.image_id for e in catalogue.entries] == ["image-new"]
    assert account.count("GetObject") == 1


def test_the_listing_is_kept_with_the_local_clocks_reading_when_it_came() -> None:
    """Beside the manifests, the catalogue keeps every object the listing found under the prefix (the exports'
    disks too: whether an export's files are still there) and the local clock's reading when the listing
    came, to hold against TOS's Date."""
    account = Account()
    put_manifest(account, manifest("image-a"))
    put(account, "nightly_image-a_system.qcow2", b"qcow2", "application/octet-stream")

    catalogue = read(account)

    assert [(o.key, o.size_bytes) for o in catalogue.objects] == [
        ("nightly_image-a.manifest.json", len(manifest("image-a").to_bytes())),
        ("nightly_image-a_system.qcow2", 5),
    ]
    assert catalogue.local_time == account.clock.now()


def test_a_cache_carries_the_manifests_one_invocation_read_to_its_next_read() -> None:
    """A second read with the same cache (the drill's, then retention's) GETs only the manifests it has not
    read, or that were written again since (another Last-Modified or size), and gives the same entries."""
    account = Account()
    for n in range(3):
        put_manifest(account, manifest(f"image-{n}"))
    cache = ManifestCache()
    first = read(account, cache=cache)
    assert (account.count("GetObject"), len(cache)) == (3, 3)

    account.clock.advance(60)
    put_manifest(account, manifest("image-1", hours_ago=0.5))
    put_manifest(account, manifest("image-3"))
    second = read(account, cache=cache)

    reads = [asked[0] for action, asked in account.calls if action == "GetObject"][3:]
    assert sorted(reads) == ["nightly_image-1.manifest.json", "nightly_image-3.manifest.json"]
    assert [e.manifest for e in second.entries] == [
        first.entries[0].manifest,
        manifest("image-1", hours_ago=0.5),
        first.entries[2].manifest,
        manifest("image-3"),
    ]


def test_a_cache_holds_only_sound_manifests() -> None:
    """A manifest that could not be read is tried again by the next read, not taken from the cache."""
    account = Account()
    put(account, "nightly_image-bad.manifest.json", b"{")
    cache = ManifestCache()
    read(account, cache=cache)
    read(account, cache=cache)
    assert (account.count("GetObject"), len(cache)) == (2, 0)


def test_an_image_listed_now_groups_as_its_export_will() -> None:
    """``group_for`` (an image as DescribeImages lists it) is ``group_of``'s rule: by name, or by a tag."""
    found = manifest("image-a", name="web-20261201", tags={"app": "shop"})
    for group_by in ("name", "tag:app", "tag:team"):
        expected = group_of(found, group_by)
        assert group_for("image-a", "web-20261201", {"app": "shop"}, group_by) == expected
    assert group_for("image-a", "", {}, "name") == "(unnamed image-a)"
