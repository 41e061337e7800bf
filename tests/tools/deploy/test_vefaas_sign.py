"""The deploy client sends every published veFaaS request (vefaas_sign.json) byte for byte, signature included."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from exporter_tools.deploy.vefaas import API_VERSION, SERVICE, FunctionConfig, TimerConfig, VefaasClient
from handler.adapters import openapi
from handler.adapters.openapi import OpenApiClient
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials, VolcSigner

# What each published case is, as a call of the typed client (the vectors' bodies are exactly these calls').
CALLS: dict[str, Callable[[VefaasClient, dict[str, Any]], object]] = {
    "CreateFunction": lambda client, body: client.create_function(
        FunctionConfig(
            name=body["Name"],
            runtime=body["Runtime"],
            memory_mb=body["MemoryMB"],
            request_timeout=body["RequestTimeout"],
            role=body["Role"],
            description=body["Description"],
            envs={pair["Key"]: pair["Value"] for pair in body["Envs"]},
        ),
        zip_base64=body["Source"],
    ),
    "Release": lambda client, body: client.release(body["FunctionId"], description=body["Description"]),
    "CreateTimer": lambda client, body: client.create_timer(
        body["FunctionId"],
        TimerConfig(
            name=body["Name"],
            crontab=body["Crontab"],
            payload=body["Payload"],
            enabled=body["Enabled"],
            retries=body["Retries"],
            enable_concurrency=body["EnableConcurrency"],
            description=body["Description"],
        ),
    ),
    "ListFunctions": lambda client, body: client.functions_named(body["Filters"][0]["Values"][0]),
    "GetReleaseStatus": lambda client, body: client.release_status(body["FunctionId"]),
}
ANSWERS: dict[str, dict[str, Any]] = {
    "CreateFunction": {"Id": "abc123xy"},
    "Release": {"Status": "inprogress", "NewRevisionNumber": 1, "ReleaseRecordId": "rr-1"},
    "CreateTimer": {"Id": "t-1"},
    "ListFunctions": {"Items": [], "Total": 0},
    "GetReleaseStatus": {"Status": "done", "NewRevisionNumber": 1, "ReleaseRecordId": "rr-1"},
}


def credentials_for(case: dict[str, Any], shared: dict[str, Any]) -> Credentials:
    token = shared["session_token_for_+token_cases"] if case["name"].endswith("+token") else None
    return Credentials(shared["ak"], shared["sk"], token)


def fixed_clock(x_date: str) -> Callable[[], datetime]:
    moment = datetime.strptime(x_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return lambda: moment


@pytest.fixture
def shared(load_vector: Callable[[str], Any]) -> dict[str, Any]:
    """The vectors' common credentials, region, service and X-Date."""
    credentials: dict[str, Any] = load_vector("vefaas_sign.json")["credentials"]
    return credentials


def test_the_deploy_client_sends_each_case_exactly(
    vefaas_sign_case: dict[str, Any], shared: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The typed veFaaS client, through OpenApiClient and the signer at a fixed clock, sends the vector's
    URL, body and headers unchanged."""
    action = vefaas_sign_case["name"].removesuffix("+token")
    monkeypatch.setattr(
        openapi, "VolcSigner", functools.partial(VolcSigner, clock=fixed_clock(shared["x_date"]))
    )
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"ResponseMetadata": {"RequestId": "r-1"}, "Result": ANSWERS[action]})

    url = urlsplit(vefaas_sign_case["url"])
    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        api = OpenApiClient(
            http=http,
            endpoint=f"{url.scheme}://{url.netloc}",
            region=shared["region"],
            service=SERVICE,
            version=API_VERSION,
            credentials=credentials_for(vefaas_sign_case, shared),
            policy=RetryPolicy(max_attempts=1),
            limiter=RateLimiter(1000.0),
        )
        CALLS[action](VefaasClient(api, deadline=float("inf")), json.loads(vefaas_sign_case["body"]))

    (request,) = sent
    assert request.method == "POST"
    assert str(request.url) == vefaas_sign_case["url"]
    assert request.content == vefaas_sign_case["body"].encode()
    for name, value in vefaas_sign_case["headers"].items():
        assert request.headers[name] == value, name
    if not vefaas_sign_case["name"].endswith("+token"):
        assert "X-Security-Token" not in request.headers


def test_every_case_has_a_typed_call(load_vector: Callable[[str], Any]) -> None:
    """No published veFaaS case is left unchecked by the typed client test."""
    names = {name.removesuffix("+token") for name in load_vector("vefaas_sign.json")["cases"]}
    assert names == set(CALLS)
