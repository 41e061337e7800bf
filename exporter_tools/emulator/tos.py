"""The TOS side of the emulator: signed ``HeadObject`` on the objects export tasks wrote, on the gateway's port.

Requests are path-style (``HEAD /<bucket>/<key>``), as a client sends them to an IP or ``localhost``
endpoint (docs/facts.md §11). The gateway hands a request to this service when its ``Authorization`` uses
``TOS4-HMAC-SHA256`` or its path is anything but ``/`` (OpenAPI requests always go to ``/``).

The signature is checked as TOS does (``exporter_tools.emulator.tos_auth``).

Answers follow docs/facts.md §11: ``HeadObject`` gives ``Content-Length``, ``ETag``, ``Last-Modified``,
``x-tos-hash-crc64ecma`` (a decimal string), ``x-tos-storage-class`` and ``x-tos-request-id``; a key that does
not exist is 404 with no body; other errors carry the JSON body ``{"Code", "Message", "RequestId", "HostId",
"EC"}`` (a HEAD answer's body is never sent, as HTTP wants). The error codes are the S3-style ones TOS
documents in general (``SignatureDoesNotMatch``, ``AccessDenied``, ``NoSuchBucket``, ``NoSuchKey``,
``RequestTimeTooSkewed``, ``InvalidAccessKeyId``, ``InvalidSecurityToken``); which one TOS picks for each case,
and the ``EC`` values, are not confirmed. The objects hold no data: ``GET`` of an existing object answers 501.

The CRC-64 of an object is the CRC-64/ECMA (as TOS computes it: reflected, initial value and final XOR all
ones) of its key, a deterministic stand-in for the content the emulator does not have.

``DELETE /__admin/tos/<bucket>/<key>`` (unsigned, loopback only) or ``remove_object`` makes an object vanish
(a later export of the same image writes it again); ``GET /__admin/tos`` lists the objects. ``error_rate`` and
``throttle_rate`` (attributes, 0 by default) answer a share of the signed requests 500 or 429 at random.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote

from exporter_tools.emulator.tos_auth import TOS_ALGORITHM, verify_tos_signature
from handler.adapters.signing import Credentials

__all__ = [
    "ADMIN_TOS_PATH",
    "StoredObject",
    "TosReply",
    "TosService",
    "crc64_ecma",
    "export_object_key",
]

ADMIN_TOS_PATH = "/__admin/tos"
_CRC64_ECMA_REFLECTED = 0xC96C5795D7870F42
_CRC64_TABLE: list[int] = []


def export_object_key(prefix: str, image_id: str) -> str:
    """The object ExportImage writes: ``<prefix>_<ImageId>_system.qcow2`` (docs/contract.md)."""
    return f"{prefix}_{image_id}_system.qcow2"


def crc64_ecma(data: bytes) -> int:
    """CRC-64/ECMA as TOS reports it (``x-tos-hash-crc64ecma``): reflected, init and xorout all ones."""
    if not _CRC64_TABLE:
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ _CRC64_ECMA_REFLECTED if crc & 1 else crc >> 1
            _CRC64_TABLE.append(crc)
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = _CRC64_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object an export task wrote: where, how big, when."""

    bucket: str
    key: str
    size_bytes: int
    written_at: datetime

    @property
    def crc64(self) -> int:
        return crc64_ecma(self.key.encode("utf-8"))

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.key.encode("utf-8"), usedforsecurity=False).hexdigest() + '"'


@dataclass(frozen=True, slots=True)
class TosReply:
    """The HTTP answer to one TOS request; the gateway sends it (without the body for HEAD)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""


# -- the service --------------------------------------------------------------------------------------------


class TosService:
    """HeadObject over the objects ``objects()`` reports, minus those removed since they were written.

    ``bucket_access(name)`` says whether the caller may read a bucket (None: no such bucket);
    ``credentials_for(access_key)`` gives the accepted key pair with that access key (the gateway's
    ``accepted_key``, so TOS accepts the keys the OpenAPI side does). Thread-safe."""

    name = "tos"

    def __init__(
        self,
        *,
        objects: Callable[[], Mapping[tuple[str, str], StoredObject]],
        bucket_access: Callable[[str], bool | None],
        credentials_for: Callable[[str], Credentials | None],
        region: str,
        clock: Callable[[], datetime],
        seed: int | None = None,
    ) -> None:
        self._credentials_for = credentials_for
        self._objects = objects
        self._bucket_access = bucket_access
        self.region = region
        self._clock = clock
        self._seed = seed
        self._lock = threading.Lock()
        self._removed: dict[tuple[str, str], datetime] = {}
        self._requests: dict[str, int] = {}
        self._rng = random.Random(seed)  # noqa: S311 - request ids, not secrets
        # Shares of signed requests answered 500 InternalError / 429 TooManyRequests (off unless set; the
        # gateway's Faults do not reach this side). TOS's own throttling code is not confirmed.
        self.error_rate = 0.0
        self.throttle_rate = 0.0

    def claims(self, *, path: str, headers: Mapping[str, str]) -> bool:
        """True for a request this service answers rather than the OpenAPI gateway."""
        if path == ADMIN_TOS_PATH or path.startswith(ADMIN_TOS_PATH + "/"):
            return True
        if path.startswith("/__admin/"):
            return False
        authorization = headers.get("authorization", "")
        return authorization.startswith(TOS_ALGORITHM + " ") or path not in ("", "/")

    def objects(self) -> list[StoredObject]:
        """The objects present now, by bucket and key."""
        with self._lock:
            removed = dict(self._removed)
        present = [
            found
            for where, found in self._objects().items()
            if where not in removed or found.written_at > removed[where]
        ]
        return sorted(present, key=lambda o: (o.bucket, o.key))

    def head(self, bucket: str, key: str) -> StoredObject | None:
        """The object if it is present now."""
        return next((o for o in self.objects() if (o.bucket, o.key) == (bucket, key)), None)

    def remove_object(self, bucket: str, key: str) -> bool:
        """Make the object vanish (as if someone deleted it); True when it was there."""
        present = self.head(bucket, key) is not None
        with self._lock:
            self._removed[(bucket, key)] = self._clock()
        return present

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(sorted(self._requests.items())), "removed": len(self._removed)}

    def reset(self) -> None:
        with self._lock:
            self._removed.clear()
            self._requests.clear()
            self._rng = random.Random(self._seed)  # noqa: S311 - request ids, not secrets

    def answer(self, *, method: str, target: str, headers: Mapping[str, str], loopback: bool) -> TosReply:
        """The reply to one request ``claims`` accepted."""
        path, _, raw_query = target.partition("?")
        if path == ADMIN_TOS_PATH or path.startswith(ADMIN_TOS_PATH + "/"):
            return self._admin(method, path, loopback)
        request_id = self._request_id()
        reply = self._object_request(method, path, raw_query, headers, request_id)
        with self._lock:
            label = f"{method} {reply.status}"
            self._requests[label] = self._requests.get(label, 0) + 1
        return reply

    def _object_request(
        self, method: str, path: str, raw_query: str, headers: Mapping[str, str], request_id: str
    ) -> TosReply:
        problem = verify_tos_signature(
            method=method,
            path=path,
            raw_query=raw_query,
            headers=headers,
            credentials_for=self._credentials_for,
            region=self.region,
            now=self._clock(),
        )
        if problem is not None:
            return _error(*problem, request_id=request_id)
        if self._roll(self.throttle_rate):
            return _error(429, "TooManyRequests", "the request rate is too high (injected)", request_id)
        if self._roll(self.error_rate):
            return _error(
                500, "InternalError", "an internal error occurred (injected); try again", request_id
            )
        bucket, _, raw_key = path.lstrip("/").partition("/")
        key = unquote(raw_key)
        if method not in ("HEAD", "GET"):
            return _error(
                405, "MethodNotAllowed", f"the emulator answers HEAD and GET, not {method}", request_id
            )
        if not bucket or not key:
            return _error(
                400, "InvalidArgument", "the emulator serves objects, path-style: /<bucket>/<key>", request_id
            )
        return self._object(method, bucket, key, request_id)

    def _object(self, method: str, bucket: str, key: str, request_id: str) -> TosReply:
        """HEAD or GET of an object, once the request is known to be signed and well formed."""
        access = self._bucket_access(bucket)
        if access is None:
            return _error(404, "NoSuchBucket", f"the bucket {bucket} does not exist", request_id)
        if not access:
            return _error(
                403, "AccessDenied", f"the caller may not read objects in the bucket {bucket}", request_id
            )
        found = self.head(bucket, key)
        if found is None:
            if method == "HEAD":
                return TosReply(404, (("x-tos-request-id", request_id), ("Content-Length", "0")))
            return _error(404, "NoSuchKey", f"the object {key} does not exist", request_id)
        if method == "GET":
            return _error(
                501, "NotImplemented", "the emulator's objects have no content: use HEAD", request_id
            )
        return TosReply(
            200,
            (
                ("Content-Length", str(found.size_bytes)),
                ("Content-Type", "application/octet-stream"),
                ("ETag", found.etag),
                ("Last-Modified", format_datetime(found.written_at.astimezone(UTC), usegmt=True)),
                ("x-tos-hash-crc64ecma", str(found.crc64)),
                ("x-tos-storage-class", "STANDARD"),
                ("x-tos-request-id", request_id),
            ),
        )

    def _admin(self, method: str, path: str, loopback: bool) -> TosReply:
        if not loopback:
            return _json(403, {"error": "the admin paths answer loopback clients only"})
        if method == "GET" and path == ADMIN_TOS_PATH:
            listed = [
                {"bucket": o.bucket, "key": o.key, "size_bytes": o.size_bytes, "crc64": str(o.crc64)}
                for o in self.objects()
            ]
            return _json(200, {"objects": listed})
        bucket, _, key = path[len(ADMIN_TOS_PATH) + 1 :].partition("/")
        if method == "DELETE" and bucket and key:
            return _json(200, {"removed": self.remove_object(bucket, unquote(key))})
        return _json(404, {"error": f"no admin path {method} {path}"})

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def _request_id(self) -> str:
        with self._lock:
            return "".join(self._rng.choice("0123456789abcdef") for _ in range(24))


def _json(status: int, payload: Mapping[str, Any]) -> TosReply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return TosReply(status, (("Content-Type", "application/json"), ("Content-Length", str(len(body)))), body)


def _error(status: int, code: str, message: str, request_id: str) -> TosReply:
    ec = f"0000-{status:08d}"  # the EC of each case is not known; the shape is TOS's
    payload = {"Code": code, "Message": message, "RequestId": request_id, "HostId": "tos-emulator", "EC": ec}
    reply = _json(status, payload)
    return TosReply(status, (*reply.headers, ("x-tos-request-id", request_id), ("x-tos-ec", ec)), reply.body)
