"""How ``exporter-tools status`` shows the exports in TOS: the table's cells for what the end-to-end tests
cannot easily make (an unverified export, a restore, sources that could not be looked up, time left)."""

from __future__ import annotations

from datetime import UTC, datetime

from exporter_tools.tos_exports import ManifestProblem, StoredExport, TosExports, render_tos_exports


def stored(**fields: object) -> StoredExport:
    base: dict[str, object] = {
        "group": "web",
        "image_id": "image-a",
        "source_deleted": False,
        "exported_at": datetime(2026, 12, 1, 3, 18, tzinfo=UTC),
        "objects": 1,
        "size_bytes": 3 * 1024**3 + 1024**3 // 10,
        "verification": "structure",
        "verified": True,
        "last_restore_at": None,
        "manifest_key": "imgexport_image-a.manifest.json",
    }
    return StoredExport(**(base | fields))  # type: ignore[arg-type]


def test_each_cell_says_what_the_manifest_says() -> None:
    """An unverified export says so with its level, a restore its time, a size its unit; sources that could
    not be looked up and manifests the time left unread are notes under the table, problems a table of
    their own."""
    exports = TosExports(
        "demo-exports",
        "imgexport",
        "tag:app",
        exports=(
            stored(),
            stored(
                image_id="image-b",
                verified=False,
                verification="off",
                size_bytes=512,
                source_deleted=None,
                last_restore_at=datetime(2026, 12, 2, 4, 0, tzinfo=UTC),
            ),
        ),
        problems=(ManifestProblem("imgexport_image-c.manifest.json", "the object is empty: no manifest"),),
        unread=3,
        sources_error="Throttled: slow down",
    )
    lines = render_tos_exports(exports)
    assert lines[0] == "Exports in TOS (2): tos://demo-exports/imgexport_*.manifest.json, grouped by tag:app"
    assert lines[2].split() == ["web", "image-a", "2026-12-01T03:18Z", "1", "3.1", "GiB", "structure", "-"]
    assert lines[3].split() == [
        "web",
        "image-b",
        "2026-12-01T03:18Z",
        "1",
        "512",
        "B",
        "no",
        "(off)",
        "2026-12-02T04:00Z",
    ]
    assert lines[4] == "3 manifest(s) not read: the --timeout ran out first"
    assert (
        lines[5] == "source images not looked up (Throttled: slow down): whether they still exist is unknown"
    )
    assert lines[6:] == [
        "",
        "Manifests with problems (1)",
        "KEY                              PROBLEM",
        "imgexport_image-c.manifest.json  the object is empty: no manifest",
    ]


def test_json_times_are_rfc3339_in_utc() -> None:
    """``--json`` writes times as RFC 3339 with a Z, and null where there is none."""
    document = TosExports("b-1", "p", "name", exports=(stored(),)).as_json()
    (export,) = document["exports"]
    assert (export["exported_at"], export["last_restore_at"]) == ("2026-12-01T03:18:00Z", None)
    assert (document["error"], document["unread"]) == (None, 0)
