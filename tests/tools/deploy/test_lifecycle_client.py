"""Deploy's TOS lifecycle client (GET, PUT and DELETE ``/?lifecycle``) against the emulator's TOS, through the
function's own TOS sender: rules read as sent, the whole set written, and every answer that cannot be held
rule for rule refused."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from exporter_tools.deploy.tos_lifecycle import LifecycleClient, lifecycle_body
from exporter_tools.emulator.vefaas import VefaasEmulator
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials
from handler.adapters.tos import tos_sender
from handler.errors import (
    AccessDenied,
    AuthenticationFailed,
    BucketNotFound,
    InvalidParameter,
    MalformedResponse,
    TerminalApiError,
)
from tests.support.fakes import FakeClock

CREDENTIALS = Credentials("AKLTlifecycle0000001", "lifecycle-secret-00000001")
BUCKET = "my-exports"
ENDPOINT = "http://127.0.0.1"
FOREIGN: list[dict[str, Any]] = [
    {"Status": "Enabled", "ID": "logs-expire", "Prefix": "logs/", "Expiration": {"Days": 14}},
    {
        "ID": "tmp-cleanup",
        "Prefix": "tmp/",
        "Status": "Disabled",
        "Filter": {"ObjectSizeGreaterThan": 1024},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
    },
]


@pytest.fixture
def emulator() -> Iterator[VefaasEmulator]:
    """An account with one bucket, answering in-process only."""
    emulator = VefaasEmulator(credentials=CREDENTIALS, seed=5, port=None, buckets=[BUCKET])
    yield emulator
    emulator.close()


def client_for(transport: httpx.BaseTransport) -> Iterator[LifecycleClient]:
    clock = FakeClock(wall=None)
    with httpx.Client(transport=transport) as http:
        sender = tos_sender(
            http=http,
            region="cn-beijing",
            credentials=CREDENTIALS,
            policy=RetryPolicy(max_attempts=3, base=0.0, cap=0.0),
            limiter=RateLimiter(1000.0, clock=clock),
            clock=clock,
        )
        yield LifecycleClient(sender, ENDPOINT, deadline=clock.monotonic() + 60)


@pytest.fixture
def client(emulator: VefaasEmulator) -> Iterator[LifecycleClient]:
    yield from client_for(emulator.transport())


def test_a_bucket_without_rules_reads_as_none(client: LifecycleClient) -> None:
    """404 NoSuchLifecycleConfiguration is an empty rule set, not an error."""
    found = client.get(BUCKET)
    assert (found.bucket, found.rules, found.allow_overlap) == (BUCKET, (), False)
    assert found.request_id


def test_rules_are_read_as_the_objects_tos_sent(emulator: VefaasEmulator, client: LifecycleClient) -> None:
    """Each rule comes back as the JSON object TOS sent: every field, in its order."""
    emulator.tos.set_lifecycle(BUCKET, FOREIGN)
    found = client.get(BUCKET)
    assert [json.dumps(rule) for rule in found.rules] == [json.dumps(rule) for rule in FOREIGN]


def test_a_put_writes_the_whole_set_and_a_delete_removes_it(
    emulator: VefaasEmulator, client: LifecycleClient
) -> None:
    """PUT sends the rules in order (compact JSON, Content-MD5 checked by the emulator); DELETE empties the
    bucket; a PUT of nothing is refused before anything is sent."""
    ours = {"ID": "image-exporter-x", "Prefix": "x_", "Status": "Enabled"}
    ours["Transitions"] = [{"Days": 30, "StorageClass": "IA"}]  # type: ignore[assignment]
    client.put(BUCKET, [*FOREIGN, ours])
    assert emulator.tos.lifecycle(BUCKET) == [*FOREIGN, ours]
    assert lifecycle_body([ours]) == (
        b'{"Rules":[{"ID":"image-exporter-x","Prefix":"x_","Status":"Enabled",'
        b'"Transitions":[{"Days":30,"StorageClass":"IA"}]}]}'
    )
    client.delete(BUCKET)
    assert emulator.tos.lifecycle(BUCKET) is None
    with pytest.raises(ValueError, match="at least one rule"):
        client.put(BUCKET, [])


def test_the_overlap_flag_is_read_and_sent_back(emulator: VefaasEmulator, client: LifecycleClient) -> None:
    """A bucket whose rules were put allowing same-action overlaps says so; a PUT with allow_overlap keeps it."""
    client.put(BUCKET, FOREIGN, allow_overlap=True)
    assert client.get(BUCKET).allow_overlap
    client.put(BUCKET, FOREIGN)
    assert not client.get(BUCKET).allow_overlap


def test_tos_refusals_are_typed(emulator: VefaasEmulator, client: LifecycleClient) -> None:
    """No such bucket: BucketNotFound; a read-only bucket's PUT: AccessDenied; a rule TOS refuses: a terminal
    error with TOS's code; a bucket name that cannot be one: refused unsent."""
    with pytest.raises(BucketNotFound):
        client.get("no-such-bucket")
    emulator.set_bucket_access(BUCKET, "read-only")
    with pytest.raises(AccessDenied):
        client.put(BUCKET, FOREIGN)
    emulator.set_bucket_access(BUCKET, "read-write")
    with pytest.raises(TerminalApiError) as refused:
        client.put(BUCKET, [{"ID": "r", "Status": "Enabled"}])
    assert refused.value.code == "InvalidArgument"
    with pytest.raises(InvalidParameter):
        client.get("Not_A_Bucket")


def test_server_errors_are_retried(emulator: VefaasEmulator, client: LifecycleClient) -> None:
    """Injected 500s on every other request: the read and the write still land (retried by the one engine)."""
    emulator.tos.error_rate = 0.5
    client.put(BUCKET, FOREIGN)
    assert client.get(BUCKET).rules == tuple(FOREIGN)


def test_a_tos_clock_far_from_ours_refuses_the_signature(
    emulator: VefaasEmulator, client: LifecycleClient
) -> None:
    """TOS's clock ten minutes off still accepts our signature; twenty minutes off: RequestTimeTooSkewed."""
    emulator.tos.clock_offset = 600
    assert client.get(BUCKET).rules == ()
    emulator.tos.clock_offset = -1200
    with pytest.raises(AuthenticationFailed) as skewed:
        client.get(BUCKET)
    assert skewed.value.code == "RequestTimeTooSkewed"


def answering(status: int, body: bytes, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"x-tos-request-id": "r-1", **headers})

    return respond


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        pytest.param(200, b"{not json", "not JSON", id="not-json"),
        pytest.param(200, b'{"Rules": {"ID": "x"}}', "rule objects", id="rules-not-a-list"),
        pytest.param(200, b'{"Rules": ["x"]}', "rule objects", id="rule-not-an-object"),
        pytest.param(200, b"{}", "rule objects", id="no-rules-field"),
        pytest.param(200, b'{"Rules": [{"ID": "a", "ID": "b"}]}', "the key 'ID' twice", id="key-twice"),
        pytest.param(204, b"", "HTTP 204", id="no-content"),
    ],
)
def test_an_answer_that_cannot_be_held_rule_for_rule_is_malformed(
    status: int, body: bytes, words: str
) -> None:
    """Rules that are not JSON, not a list of objects, or an object with a key twice: MalformedResponse, so
    nothing is written over rules that were misread."""
    for client in client_for(httpx.MockTransport(answering(status, body))):
        with pytest.raises(MalformedResponse, match=words):
            client.get(BUCKET)


def test_only_no_such_lifecycle_configuration_reads_as_no_rules() -> None:
    """A 404 with another code (or none) is an error, never an empty rule set that a PUT would overwrite."""
    other = json.dumps({"Code": "NoSuchThing", "Message": "gone"}).encode()
    for client in client_for(httpx.MockTransport(answering(404, other))):
        with pytest.raises(TerminalApiError) as refused:
            client.get(BUCKET)
        assert refused.value.code == "NoSuchThing"
    for client in client_for(httpx.MockTransport(answering(404, b""))):
        with pytest.raises(BucketNotFound):
            client.get(BUCKET)
