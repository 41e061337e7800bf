"""One HTTP exchange reads at most what it is allowed of an answer's body."""

from __future__ import annotations

import math

import httpx
import pytest

from handler.adapters.exchange import exchange


@pytest.mark.parametrize(("status", "read"), [(206, 3), (404, 10), (200, 0)])
def test_the_body_cap_may_depend_on_the_answers_status(status: int, read: int) -> None:
    """A cap given as a function of the status reads a success to its own size and an error to another."""
    body = b"0123456789abcdef"
    http = httpx.Client(transport=httpx.MockTransport(lambda _request: httpx.Response(status, content=body)))
    limits = {206: 3, 200: 0}
    answer = exchange(
        http, "GET", "https://b.example/k", seconds=math.inf, max_bytes=lambda s: limits.get(s, 10)
    )
    assert (answer.status, answer.body, answer.complete) == (status, body[:read], False)
