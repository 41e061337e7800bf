"""Scripted faults: ``fail_next`` and ``drop_next`` give a test one exact failure, after the signature check."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from exporter_tools.emulator.ecs import EcsEmulator
from handler.adapters.signing import Credentials
from tests.support.emulated import CREDENTIALS, signed_get

AVAILABLE = "image-ybqi99s7yq8rx7mnk44b"
EXPORT = {"ImageId": AVAILABLE, "TOSBucket": "demo-exports", "TOSPrefix": "scripted"}


@pytest.fixture
def emulator() -> Iterator[EcsEmulator]:
    emulator = EcsEmulator(credentials=CREDENTIALS, seed=2)
    yield emulator
    emulator.close()


@pytest.fixture
def client(emulator: EcsEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=emulator.transport()) as client:
        yield client


def test_fail_next_answers_the_error_that_many_times_then_the_service(
    emulator: EcsEmulator, client: httpx.Client
) -> None:
    """Two scripted 500s come first, with no export made; the third call exports as usual."""
    emulator.fail_next("ExportImage", 500, "InternalError", "scripted", times=2)
    answers = [signed_get(emulator, "ExportImage", EXPORT, client=client) for _ in range(3)]
    assert [a.status_code for a in answers] == [500, 500, 200]
    assert answers[0].json()["ResponseMetadata"]["Error"] == {"Code": "InternalError", "Message": "scripted"}
    assert emulator.export_tasks_by_image() == {AVAILABLE: 1}
    assert emulator.stats()["injected_errors"] == 2


def test_a_scripted_fault_waits_for_a_correctly_signed_call(
    emulator: EcsEmulator, client: httpx.Client
) -> None:
    """A badly signed call is refused with 401 and leaves the script for the next good one; other actions
    are not affected."""
    emulator.fail_next("ExportImage", 429, "FlowLimitExceeded")
    wrong = Credentials(CREDENTIALS.access_key, "not-the-secret")
    assert signed_get(emulator, "ExportImage", EXPORT, credentials=wrong, client=client).status_code == 401
    assert signed_get(emulator, "DescribeImages", client=client).status_code == 200
    assert signed_get(emulator, "ExportImage", EXPORT, client=client).status_code == 429
    assert emulator.stats()["throttled"] == 1


def test_drop_next_commits_the_write_then_drops_its_answer(
    emulator: EcsEmulator, client: httpx.Client
) -> None:
    """The export is made, and the caller gets a transport error instead of its TaskId."""
    emulator.drop_next("ExportImage")
    with pytest.raises(httpx.ReadError):
        signed_get(emulator, "ExportImage", EXPORT, client=client)
    assert emulator.export_tasks_by_image() == {AVAILABLE: 1}
    assert emulator.stats()["dropped"] == 1


def test_reset_forgets_the_script(emulator: EcsEmulator, client: httpx.Client) -> None:
    """After ``reset`` no scripted fault is left over for the next test."""
    emulator.fail_next("ExportImage", 500, "InternalError")
    emulator.drop_next("ExportImage")
    emulator.reset()
    assert signed_get(emulator, "ExportImage", EXPORT, client=client).status_code == 200


@pytest.mark.parametrize(
    ("status", "times"), [pytest.param(200, 1, id="not-an-error"), pytest.param(500, 0, id="zero-times")]
)
def test_a_script_that_cannot_happen_is_refused(emulator: EcsEmulator, status: int, times: int) -> None:
    """A success status or no repetitions is a mistake in the test, said at once."""
    with pytest.raises(ValueError, match="fail_next needs"):
        emulator.fail_next("ExportImage", status, "X", times=times)
    with pytest.raises(ValueError, match="drop_next needs"):
        emulator.drop_next("ExportImage", times=0)


def test_the_accepted_keys_can_be_replaced(emulator: EcsEmulator, client: httpx.Client) -> None:
    """After new keys are set, the old ones are refused and the new ones accepted; an empty set is refused."""
    other = Credentials("AKLTother0000000001", "other-secret")
    emulator.credentials = other
    assert signed_get(emulator, "DescribeImages", client=client).status_code == 401
    assert signed_get(emulator, "DescribeImages", credentials=other, client=client).status_code == 200
    with pytest.raises(ValueError, match="at least one key pair"):
        emulator.credentials = []
