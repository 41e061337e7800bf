"""The official SDK's function for the deployed comparison: its index, its build, and how each deployed
process is started."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from exporter_tools.bench.archive import BytecodeState
from exporter_tools.bench.cold import Endpoints, deployed_kinds
from exporter_tools.bench.deployed import DeployedTrees
from exporter_tools.bench.scripts import SCRIPTS, SDK_INDEX
from exporter_tools.bench.sdk_function import SdkFunctionTrees, prepare_sdk_function
from exporter_tools.deploy.package import find_python


def _fake_sdk(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stand-ins for ``volcenginesdkcore`` and ``volcenginesdkecs`` that record each ExportImage request."""
    exported: list[dict[str, Any]] = []
    core, ecs = types.ModuleType("volcenginesdkcore"), types.ModuleType("volcenginesdkecs")

    class Configuration:
        default: Any = None

        @classmethod
        def set_default(cls, configuration: Any) -> None:
            cls.default = configuration

    class ExportImageRequest:
        def __init__(self, **fields: Any) -> None:
            self.fields = fields

    class ECSApi:
        def export_image(self, request: ExportImageRequest) -> Any:
            exported.append(request.fields)
            return types.SimpleNamespace(task_id=f"t-{len(exported)}")

    core.Configuration = Configuration  # type: ignore[attr-defined]
    ecs.ExportImageRequest = ExportImageRequest  # type: ignore[attr-defined]
    ecs.ECSApi = ECSApi  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "volcenginesdkcore", core)
    monkeypatch.setitem(sys.modules, "volcenginesdkecs", ecs)
    for name, value in {
        "VOLCENGINE_ACCESS_KEY": "AK",
        "VOLCENGINE_SECRET_KEY": "SK",
        "BENCH_SDK_HOST": "127.0.0.1:8443",
        "BENCH_SDK_SCHEME": "https",
        "EXPORT_TOS_BUCKET": "demo-exports",
        "SSL_CERT_FILE": "/bench/cert.pem",
    }.items():
        monkeypatch.setenv(name, value)
    return exported


def test_the_sdk_index_exports_the_events_image_once_at_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """``index.handler(event, context)`` sends one ExportImage for the event's image and answers its task;
    the client points at the bench's endpoint and trusts its certificate, as the SDK scripts do."""
    exported = _fake_sdk(monkeypatch)
    namespace: dict[str, Any] = {}
    exec(compile(SDK_INDEX, "index.py", "exec"), namespace)  # noqa: S102 - the script under test, with fakes
    answer = namespace["handler"]({"ImageId": "image-1"}, None)
    assert answer == {"image_id": "image-1", "task_id": "t-1"}
    assert exported == [{"image_id": "image-1", "tos_bucket": "demo-exports", "tos_prefix": "imgexport"}]
    configuration = sys.modules["volcenginesdkcore"].Configuration.default
    assert (configuration.host, configuration.scheme) == ("127.0.0.1:8443", "https")
    assert (configuration.ak, configuration.sk, configuration.ssl_ca_cert) == ("AK", "SK", "/bench/cert.pem")


def test_the_sdk_index_is_a_short_module_needing_only_the_sdk() -> None:
    """The function's whole code: about 20 lines, importing the SDK's two packages and ``os``, nothing the
    bench's runner or our stack would bring."""
    tree = ast.parse(SDK_INDEX)
    imported = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {"os", "volcenginesdkcore", "volcenginesdkecs"}
    assert not [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    code = [line for line in SDK_INDEX.splitlines()[1:] if line.strip()]
    assert len(code) <= 22
    assert SDK_INDEX.count("export_image(") == 1
    assert SCRIPTS["sdk_index.py"] == SDK_INDEX


def test_every_deployed_process_runs_as_the_runtime_runs_it(tmp_path: Path) -> None:
    """Each deployed process is ``python3.12 -I -B`` over TLS; the SDK's two trees go through the runner ours
    uses, and the floor imports from our zip as shipped. Ours as shipped comes first."""
    trees = DeployedTrees(
        "/py312", "3.12.1", tmp_path / "f.zip", tmp_path / "shipped", tmp_path / "sources", tmp_path / "pre"
    )
    none = BytecodeState(0, 0)
    sdk = SdkFunctionTrees(tmp_path / "s.zip", tmp_path / "best", tmp_path / "stale", none, none)
    endpoints = Endpoints(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        "http://127.0.0.1:1",
        "https://127.0.0.1:2",
        tmp_path / "cert.pem",
        "AK",
        "SK",
        "demo-exports",
    )
    scripts = {name: tmp_path / name for name in SCRIPTS}
    event = tmp_path / "direct.json"
    kinds = deployed_kinds(trees, sdk, endpoints, scripts=scripts, event_file=event, base_env={})
    by_key = {kind.key: kind for kind in kinds}
    assert kinds[0].key == "deployed"
    assert set(by_key) == {
        "deployed", "deployed-sdk", "deployed-sdk-stale", "deployed-floor", "deployed-precompiled",
        "deployed-sources",
    }  # fmt: skip
    assert all(kind.argv[:3] == ("/py312", "-I", "-B") and kind.transport == "tls" for kind in kinds)
    runner = str(scripts["deployed.py"])
    assert by_key["deployed-sdk"].argv[3:] == (runner, str(tmp_path / "best"), str(event))
    assert by_key["deployed-sdk-stale"].argv[3:] == (runner, str(tmp_path / "stale"), str(event))
    assert by_key["deployed-floor"].argv[3:] == (str(scripts["deployed_floor.py"]), str(tmp_path / "shipped"))
    assert not by_key["deployed-floor"].exports
    assert [kind.key for kind in kinds if kind.is_sdk] == ["deployed-sdk", "deployed-sdk-stale"]
    assert by_key["deployed-sdk"].env["SSL_CERT_FILE"] == str(tmp_path / "cert.pem")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> SdkFunctionTrees:
    """The SDK's function built for real: pip under CPython 3.12 (from PyPI or pip's cache)."""
    scratch = tmp_path_factory.mktemp("sdk-function")
    index = scratch / "sdk_index.py"
    index.write_text(SDK_INDEX, encoding="utf-8")
    return prepare_sdk_function(scratch, scratch / "cache", find_python("3.12").python, index)


def test_the_built_function_is_the_sdk_and_its_index_with_pips_bytecode(built: SdkFunctionTrees) -> None:
    """Both trees hold ``index.py`` and the SDK's packages; pip's .pyc are all valid in one, all stale in
    the other; neither tree can be written."""
    assert built.best_bytecode.valid > 100
    assert built.best_bytecode == BytecodeState(valid=built.best_bytecode.valid, stale=0)
    assert built.stale_bytecode == BytecodeState(valid=0, stale=built.best_bytecode.valid)
    for tree in (built.best, built.stale):
        assert (tree / "index.py").read_text(encoding="utf-8") == SDK_INDEX
        assert (tree / "volcenginesdkecs" / "__init__.py").is_file()
        assert (tree / "volcenginesdkcore" / "__init__.py").is_file()
        assert not [p for p in [tree, *tree.rglob("*")] if p.stat().st_mode & 0o222]


def test_the_installed_sdk_is_reused_by_the_next_build(built: SdkFunctionTrees, tmp_path: Path) -> None:
    """A second build with the same pins and interpreter takes the installed tree as it is (no pip)."""
    cache = built.zip_path.parent / "cache"
    site = cache / "site"
    before = {p: p.stat().st_mtime_ns for p in site.rglob("*.py")}
    index = tmp_path / "sdk_index.py"
    index.write_text(SDK_INDEX, encoding="utf-8")
    again = prepare_sdk_function(tmp_path, cache, find_python("3.12").python, index)
    assert {p: p.stat().st_mtime_ns for p in site.rglob("*.py")} == before
    assert again.best_bytecode == built.best_bytecode
