"""deploy's veFaaS client and the veFaaS emulator held to the official SDK's models (volcenginesdk-vefaas).

For every action the project calls, (a) the request our client sends carries exactly the parameters the SDK's
request model serializes to for the same call, and (b) the emulator's answer deserializes with the SDK's
response model with no key the model does not know and nothing the client reads missing.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import volcenginesdkvefaas as sdk

from exporter_tools.deploy.vefaas import API_VERSION, SERVICE, FunctionConfig, TimerConfig, VefaasClient
from exporter_tools.emulator.vefaas import VefaasEmulator
from handler.adapters.openapi import OpenApiClient
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials
from tests.support.sdk_models import SdkShapeMismatch, sdk_json_body, strict_sdk_model

CREDENTIALS = Credentials("AKLTsdkmodels00001", "sdk-models-secret-000001")
ROLE = "trn:iam::2100000000:role/VefaasEcsExportRole"
CONFIG = FunctionConfig(
    name="image-exporter",
    runtime="python3.12/v1",
    memory_mb=512,
    request_timeout=900,
    role=ROLE,
    description="Exports images",
    envs={"EXPORT_TOS_BUCKET": "my-exports", "LOG_LEVEL": "INFO"},
    tags={"app": "image-exporter"},
)
TIMER = TimerConfig(
    name="nightly-scan",
    crontab="0 3 * * *",
    payload='{"LookbackHours": 26}',
    enabled=True,
    retries=2,
    enable_concurrency=False,
    description="Nightly scan",
)


def _zip() -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return {}\n")
    return base64.b64encode(buffer.getvalue()).decode()


SOURCE = _zip()


@dataclass
class Exchanges:
    """Every request the client sent and the Result the emulator answered, by action (in order)."""

    sent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    answered: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


def _recording(inner: httpx.MockTransport, exchanges: Exchanges) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        action = request.url.params["Action"]
        exchanges.sent.setdefault(action, []).append(json.loads(request.content))
        response = inner.handle_request(request)
        response.read()
        exchanges.answered.setdefault(action, []).append(response.json().get("Result"))
        return response

    return httpx.MockTransport(handle)


@pytest.fixture(scope="module")
def exchanges() -> Exchanges:
    """A whole deploy's calls, and a destroy's, through the typed client, against the emulator (each action
    at least once)."""
    recorded = Exchanges()
    emulator = VefaasEmulator(credentials=CREDENTIALS, seed=3)
    try:
        transport = _recording(emulator.transport(), recorded)
        with httpx.Client(transport=transport) as http:
            api = OpenApiClient(
                http=http,
                endpoint="https://open.volcengineapi.com",
                region="cn-beijing",
                service=SERVICE,
                version=API_VERSION,
                credentials=CREDENTIALS,
                policy=RetryPolicy(max_attempts=1),
                limiter=RateLimiter(1000.0),
            )
            client = VefaasClient(api, deadline=float("inf"))
            function_id = client.create_function(CONFIG, zip_base64=SOURCE)
            client.functions_named(CONFIG.name)
            client.get_function(function_id)
            client.release_status(function_id)  # never released: pending
            client.update_function(function_id, {"MemoryMB": 1024, "SourceType": "zip", "Source": SOURCE})
            client.release(function_id, description="code sha256 0123456789abcdef")
            client.release_status(function_id)  # inprogress
            client.release_status(function_id)  # done
            timer_id = client.create_timer(function_id, TIMER)
            client.timers(function_id)
            client.update_timer(function_id, timer_id, {"Crontab": "0 2 * * *", "Retries": 1})
            client.delete_timer(function_id, timer_id)  # deploy --destroy
            client.delete_function(function_id)
    finally:
        emulator.close()
    recorded.ids.update(function=function_id, timer=timer_id)
    return recorded


# What the SDK sends for the same calls (built from the same values as the scenario above).
SDK_REQUESTS: dict[str, Callable[[dict[str, str]], Any]] = {
    "ListFunctions": lambda ids: sdk.ListFunctionsRequest(
        filters=[sdk.FilterForListFunctionsInput(name="Name", values=[CONFIG.name])],
        page_number=1,
        page_size=100,
    ),
    "GetFunction": lambda ids: sdk.GetFunctionRequest(id=ids["function"]),
    "CreateFunction": lambda ids: sdk.CreateFunctionRequest(
        name=CONFIG.name,
        runtime=CONFIG.runtime,
        memory_mb=CONFIG.memory_mb,
        request_timeout=CONFIG.request_timeout,
        role=ROLE,
        description=CONFIG.description,
        envs=[sdk.EnvForCreateFunctionInput(key=k, value=v) for k, v in sorted(CONFIG.envs.items())],
        tags=[sdk.TagForCreateFunctionInput(key=k, value=v) for k, v in sorted(CONFIG.tags.items())],
        source_type="zip",
        source=SOURCE,
    ),
    "UpdateFunction": lambda ids: sdk.UpdateFunctionRequest(
        id=ids["function"], memory_mb=1024, source_type="zip", source=SOURCE
    ),
    "Release": lambda ids: sdk.ReleaseRequest(
        function_id=ids["function"],
        revision_number=0,
        target_traffic_weight=100,
        rolling_step=100,
        description="code sha256 0123456789abcdef",
    ),
    "GetReleaseStatus": lambda ids: sdk.GetReleaseStatusRequest(function_id=ids["function"]),
    "ListTriggers": lambda ids: sdk.ListTriggersRequest(function_id=ids["function"]),
    "GetTimer": lambda ids: sdk.GetTimerRequest(function_id=ids["function"], id=ids["timer"]),
    "CreateTimer": lambda ids: sdk.CreateTimerRequest(
        function_id=ids["function"],
        name=TIMER.name,
        crontab=TIMER.crontab,
        payload=TIMER.payload,
        enabled=TIMER.enabled,
        retries=TIMER.retries,
        enable_concurrency=TIMER.enable_concurrency,
        description=TIMER.description,
    ),
    "UpdateTimer": lambda ids: sdk.UpdateTimerRequest(
        function_id=ids["function"], id=ids["timer"], crontab="0 2 * * *", retries=1
    ),
    "DeleteTimer": lambda ids: sdk.DeleteTimerRequest(function_id=ids["function"], id=ids["timer"]),
    "DeleteFunction": lambda ids: sdk.DeleteFunctionRequest(id=ids["function"]),
}

# Each answer's model, and the keys our client reads from it (which must be there).
SDK_ANSWERS: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "ListFunctions": (sdk.ListFunctionsResponse, ("Items.Id", "Items.Name", "Items.Tags", "Total")),
    "GetFunction": (sdk.GetFunctionResponse, ("Id", "Name", "Runtime", "Envs")),
    "CreateFunction": (sdk.CreateFunctionResponse, ("Id",)),
    "UpdateFunction": (sdk.UpdateFunctionResponse, ("Id",)),
    "Release": (sdk.ReleaseResponse, ("NewRevisionNumber", "ReleaseRecordId")),
    "GetReleaseStatus": (sdk.GetReleaseStatusResponse, ("Status",)),
    "ListTriggers": (sdk.ListTriggersResponse, ("Items.Id", "Items.Type")),
    "GetTimer": (sdk.GetTimerResponse, ("Id", "Name", "Crontab")),
    "CreateTimer": (sdk.CreateTimerResponse, ("Id",)),
    "UpdateTimer": (sdk.UpdateTimerResponse, ("Id",)),
    "DeleteTimer": (sdk.DeleteTimerResponse, ()),
    "DeleteFunction": (sdk.DeleteFunctionResponse, ()),
}


@pytest.mark.parametrize("action", sorted(SDK_REQUESTS))
def test_the_client_sends_what_the_sdk_sends(exchanges: Exchanges, action: str) -> None:
    """Our request's JSON body has exactly the keys and values of the SDK's request model for the same call."""
    (first, *_rest) = exchanges.sent[action]
    assert first == sdk_json_body(SDK_REQUESTS[action](exchanges.ids))


@pytest.mark.parametrize("action", sorted(SDK_ANSWERS))
def test_the_emulator_answers_what_the_sdk_model_holds(exchanges: Exchanges, action: str) -> None:
    """Every answer of the emulator deserializes with the SDK's response model: no unknown key, no wrong
    type, and every key our client reads present."""
    model, required = SDK_ANSWERS[action]
    for result in exchanges.answered[action]:
        strict_sdk_model(model, result, required=required)


def test_every_action_the_project_calls_is_checked(exchanges: Exchanges) -> None:
    """The scenario calls every veFaaS action deploy uses, and each has a request and an answer check."""
    assert set(exchanges.sent) == set(SDK_REQUESTS) == set(SDK_ANSWERS)


def test_the_release_statuses_are_the_apis(exchanges: Exchanges) -> None:
    """Never released: pending with StableRevisionNumber -1; then our release's inprogress and done, each
    naming the revision and record Release answered."""
    never, running, done = exchanges.answered["GetReleaseStatus"]
    (started,) = exchanges.answered["Release"]
    assert (never["Status"], never["StableRevisionNumber"]) == ("pending", -1)
    assert [running["Status"], done["Status"]] == ["inprogress", "done"]
    for status in (running, done):
        assert status["ReleaseRecordId"] == started["ReleaseRecordId"]
        assert status["NewRevisionNumber"] == started["NewRevisionNumber"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", done["StartTime"])


def test_getfunction_has_no_tags_but_the_list_item_does(exchanges: Exchanges) -> None:
    """As the API: GetFunction's answer has no Tags; the ListFunctions item has them."""
    (got,) = exchanges.answered["GetFunction"]
    (listed,) = exchanges.answered["ListFunctions"][0]["Items"]
    assert "Tags" not in got
    assert listed["Tags"] == [{"Key": "app", "Value": "image-exporter"}]


@pytest.mark.parametrize(
    ("model", "answer", "problem"),
    [
        (sdk.GetFunctionResponse, {"Id": "f", "Tags": []}, "GetFunctionResponse.Tags: not a field"),
        (
            sdk.ReleaseResponse,
            {"Status": "pending", "TargetRevisionNumber": 1},
            "ReleaseResponse.TargetRevisionNumber: not a field",
        ),
        (
            sdk.GetReleaseStatusResponse,
            {"Status": "failed", "FailedInstanceLogs": ["a", "b"]},
            "GetReleaseStatusResponse.FailedInstanceLogs: expected str, got list",
        ),
        (
            sdk.ListFunctionsResponse,
            {"Items": [{"Id": "f", "Envs": [{"Key": "A", "Value": "1", "Secret": True}]}]},
            "ListFunctionsResponse.Items[0].Envs[0].Secret: not a field of EnvForListFunctionsOutput",
        ),
    ],
)
def test_an_invented_or_mistyped_field_fails_the_check(model: type[Any], answer: Any, problem: str) -> None:
    """The strict check catches what the SDK's own deserializer would silently drop, at any depth."""
    with pytest.raises(SdkShapeMismatch) as mismatch:
        strict_sdk_model(model, answer)
    assert any(found.startswith(problem) for found in mismatch.value.problems), mismatch.value.problems


def test_a_required_field_missing_fails_the_check() -> None:
    """A key the client reads (Release's NewRevisionNumber) missing from an answer fails the check."""
    with pytest.raises(SdkShapeMismatch, match=r"ReleaseResponse\.NewRevisionNumber: required, missing"):
        strict_sdk_model(sdk.ReleaseResponse, {"Status": "inprogress"}, required=("NewRevisionNumber",))
