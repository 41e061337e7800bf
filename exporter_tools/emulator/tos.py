"""The TOS side of the emulator: a small object store on the gateway's port, signed as TOS signs.

Requests are path-style (``/<bucket>/<key>``, ``/<bucket>`` or ``/<bucket>/`` for the bucket), as a client
sends them to an IP or ``localhost`` endpoint, or virtual-hosted (``Host: <bucket>.tos-<region>.volces.com``,
as the official SDK always sends them; docs/facts.md §11). The gateway hands a request to this service when its
``Authorization`` uses ``TOS4-HMAC-SHA256`` or its path is anything but ``/`` (OpenAPI requests always go to
``/``). The signature is checked as TOS does (``exporter_tools.emulator.tos_auth``).

The requests (docs/facts.md §11, §15; the answers' shapes are ``exporter_tools.emulator.tos_answers``'):

- ``HEAD /<bucket>/<key>`` HeadObject: ``Content-Length``, ``ETag``, ``Last-Modified``,
  ``x-tos-hash-crc64ecma`` (decimal), ``x-tos-storage-class``; 404 with no body when there is no such key.
- ``GET /<bucket>/<key>`` GetObject: the whole object (200), or with ``Range: bytes=A-B`` the part (206,
  ``Content-Range: bytes A-B/TOTAL``); a range past the end is 416 ``InvalidRange``.
- ``PUT /<bucket>/<key>`` PutObject: stores the body (at most ``MAX_PUT_BYTES``, else 400
  ``EntityTooLarge``); answers ``ETag`` (the body's MD5, quoted) and ``x-tos-hash-crc64ecma``.
- ``DELETE /<bucket>/<key>`` DeleteObject: 204, also when there is no such key.
- ``GET /<bucket>/?list-type=2&prefix=…&max-keys=…&continuation-token=…&start-after=…`` ListObjectsV2: keys
  in order, ``max-keys`` default and cap 1000, an opaque ``NextContinuationToken``; ``delimiter`` is refused
  (501: the emulator does not group keys).
- ``HEAD /<bucket>`` HeadBucket: ``x-tos-bucket-region``, ``x-tos-storage-class``, ``x-tos-az-redundancy``;
  404 when there is no such bucket.
- ``GET``, ``PUT`` and ``DELETE /<bucket>/?lifecycle``: the bucket's lifecycle rules, kept exactly as they were
  put (``exporter_tools.emulator.tos_lifecycle``: the checks, and 404 ``NoSuchLifecycleConfiguration`` for a
  bucket without rules).

Every answer carries ``Date`` (the emulator's clock, moved by ``clock_offset`` seconds) and
``x-tos-request-id``. Errors carry the JSON body
``{"Code", "Message", "RequestId", "HostId", "Resource", "EC"}`` and the ``x-tos-ec`` header; an answer to a
HEAD has no body and declares none. The codes are the S3-style ones TOS documents in general
(``SignatureDoesNotMatch``, ``AccessDenied``, ``NoSuchBucket``, ``NoSuchKey``, ``InvalidRange``,
``EntityTooLarge``, ``RequestTimeTooSkewed``, ``InvalidAccessKeyId``, ``InvalidSecurityToken``); which one TOS
picks for each case, and the ``EC`` values, are not confirmed.

What a caller may do in a bucket is its access (``bucket_access(name)``): ``read-write``, ``read-only`` (PUT
and DELETE are 403 ``AccessDenied``) or ``none`` (everything is 403); no bucket: 404 ``NoSuchBucket``.
Export tasks write qcow2 files generated range by range (``exporter_tools.emulator.qcow2_image``); objects
put are kept as bytes. The CRC-64 is the CRC-64/ECMA of the content, as TOS computes it (reflected, initial
value and final XOR all ones).

``DELETE /__admin/tos/<bucket>/<key>`` (unsigned, loopback only) or ``remove_object`` makes an object vanish
(a later write brings it back); ``GET /__admin/tos`` lists the objects. ``error_rate`` and
``throttle_rate`` (attributes, 0 by default) answer a share of the signed requests 500 or 429 at random.
``records`` (``exporter_tools.emulator.tos_records``) counts every signed request by kind (list, ranged GET,
PUT, HEAD…) and the bytes each object's GETs sent; ``stats()`` carries the counts and the bytes in all.
``set_lifecycle`` gives a bucket rules as if someone had put them.

``clock_offset`` (seconds, 0 by default) sets TOS's clock apart from the emulator's: every time TOS reports
(``Date``, ``Last-Modified``, a listing's ``LastModified``) and the time a signature is checked against are
moved by it, as a server whose clock is off would; which objects are present is still decided on the
emulator's own timeline, so an export task's object appears when the task ends, whatever the offset.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, get_args
from urllib.parse import parse_qsl, unquote

from exporter_tools.emulator.fleet import BucketAccess
from exporter_tools.emulator.object_store import BytesContent, ObjectStore, StoredObject, crc64_ecma
from exporter_tools.emulator.tos_answers import (
    MAX_KEYS,
    TosReply,
    decode_token,
    error_reply,
    http_date,
    json_reply,
    listing,
    object_headers,
    parse_range,
)
from exporter_tools.emulator.tos_auth import TOS_ALGORITHM, verify_tos_signature
from exporter_tools.emulator.tos_lifecycle import (
    NO_LIFECYCLE_CODE,
    OVERLAP_HEADER,
    LifecycleRefused,
    checked_rules,
)
from exporter_tools.emulator.tos_records import TosRecords, request_kind
from handler.adapters.signing import Credentials

__all__ = [
    "ADMIN_TOS_PATH",
    "BUCKET_ACCESS",
    "MAX_PUT_BYTES",
    "BucketAccess",
    "StoredObject",
    "TosReply",
    "TosService",
    "crc64_ecma",
    "data_disk_object_key",
    "export_object_key",
]

ADMIN_TOS_PATH = "/__admin/tos"


def export_object_key(prefix: str, image_id: str) -> str:
    """The object ExportImage writes: ``<prefix>_<ImageId>_system.qcow2`` (docs/contract.md)."""
    return f"{prefix}_{image_id}_system.qcow2"


def data_disk_object_key(prefix: str, image_id: str, number: int) -> str:
    """The object the emulator's ExportImage writes for data disk ``number`` (from 1, in snapshot order):
    ``<prefix>_<ImageId>_data<N>.qcow2``. The real name is not published (docs/facts.md §16): this one
    follows the system file's and matches ``<prefix>_<ImageId>_*.qcow2``."""
    return f"{prefix}_{image_id}_data{number}.qcow2"


BUCKET_ACCESS: Final[tuple[str, ...]] = get_args(BucketAccess)
MAX_PUT_BYTES = 8 * 1024 * 1024  # the largest body PutObject keeps: the emulator holds manifests, not disks
_STORAGE_CLASSES = frozenset(
    {"STANDARD", "IA", "ARCHIVE_FR", "INTELLIGENT_TIERING", "ARCHIVE", "COLD_ARCHIVE", "DEEP_COLD_ARCHIVE"}
)
_WRITES = frozenset({"PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class _Call:
    """One signed request, parsed."""

    method: str
    path: str
    raw_query: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    bucket: str
    key: str
    request_id: str
    now: datetime  # the emulator's time: which objects are present
    shift: timedelta  # TOS's clock less the emulator's: added to every time TOS reports

    def error(self, status: int, code: str, message: str, resource: str | None = None) -> TosReply:
        resource = resource if resource is not None else f"{self.bucket}/{self.key}".rstrip("/")
        return error_reply(
            status, code, message, request_id=self.request_id, resource=resource, method=self.method
        )


def _address(path: str, host: str, virtual_host_suffix: str) -> tuple[str, str]:
    """(bucket, key) of a virtual-hosted request (``Host: <bucket>.tos-<region>.volces.com``) or a path-style
    one (``/<bucket>/<key>``)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.endswith(virtual_host_suffix):
        return name[: -len(virtual_host_suffix)], unquote(path.lstrip("/"))
    bucket, _, raw_key = path.lstrip("/").partition("/")
    return bucket, unquote(raw_key)


class TosService:
    """The requests above over the objects in ``store`` (``exporter_tools.emulator.object_store``).

    ``bucket_access(name)`` is what the caller may do in a bucket (None: no such bucket), ``bucket_region(name)``
    where it is (None: in ``region``, the region this TOS serves; HeadBucket answers it, nothing else differs);
    ``credentials_for(access_key)`` gives the accepted key pair with that access key (the gateway's
    ``accepted_key``, so TOS accepts the keys the OpenAPI side does). Thread-safe."""

    name = "tos"

    def __init__(
        self,
        *,
        store: ObjectStore,
        bucket_access: Callable[[str], BucketAccess | None],
        credentials_for: Callable[[str], Credentials | None],
        region: str,
        clock: Callable[[], datetime],
        seed: int | None = None,
        bucket_region: Callable[[str], str | None] = lambda _bucket: None,
    ) -> None:
        self._credentials_for = credentials_for
        self.store = store
        self._bucket_access = bucket_access
        self._bucket_region = bucket_region
        self.region = region
        self._virtual_host_suffix = f".tos-{region}.volces.com"
        self._clock = clock
        self._seed = seed
        self._lock = threading.Lock()
        self._requests: dict[str, int] = {}
        self.records = TosRecords()  # requests by kind, bytes read by object
        self._rng = random.Random(seed)  # noqa: S311 - request ids, not secrets
        # Shares of signed requests answered 500 InternalError / 429 TooManyRequests (off unless set; the
        # gateway's Faults do not reach this side). TOS's own throttling code is not confirmed.
        self.error_rate = 0.0
        self.throttle_rate = 0.0
        self._shift = timedelta(0)
        # Each bucket's lifecycle rules as put (in order, every field kept), and whether overlaps were allowed.
        self._lifecycles: dict[str, tuple[list[dict[str, Any]], bool]] = {}

    @property
    def clock_offset(self) -> float:
        """Seconds TOS's clock is ahead of the emulator's (negative: behind); 0 by default."""
        return self._shift.total_seconds()

    @clock_offset.setter
    def clock_offset(self, seconds: float) -> None:
        self._shift = timedelta(seconds=seconds)

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
        return self.store.present(self._clock())

    def head(self, bucket: str, key: str) -> StoredObject | None:
        """The object if it is present now."""
        return self.store.get(bucket, key, self._clock())

    def put_object(
        self, bucket: str, key: str, data: bytes, *, storage_class: str = "STANDARD"
    ) -> StoredObject:
        """Store ``data`` under ``key`` now (as PutObject does, without its checks)."""
        found = StoredObject(bucket, key, BytesContent(data), self._clock(), storage_class)
        self.store.write(found)
        return found

    def set_lifecycle(
        self, bucket: str, rules: list[dict[str, Any]] | None, *, allow_overlap: bool = False
    ) -> None:
        """Give ``bucket`` these lifecycle rules, kept as given (as PutBucketLifecycle does, without its
        checks; ``allow_overlap`` as its ``x-tos-allow-same-action-overlap: true``); None removes them."""
        with self._lock:
            if rules is None:
                self._lifecycles.pop(bucket, None)
            else:
                self._lifecycles[bucket] = (list(rules), allow_overlap)

    def allows_overlap(self, bucket: str) -> bool:
        """Whether the bucket's rules were put allowing same-action overlaps."""
        with self._lock:
            found = self._lifecycles.get(bucket)
        return found is not None and found[1]

    def lifecycle(self, bucket: str) -> list[dict[str, Any]] | None:
        """The bucket's lifecycle rules as they were put, or None when it has none."""
        with self._lock:
            found = self._lifecycles.get(bucket)
        return None if found is None else list(found[0])

    def remove_object(self, bucket: str, key: str) -> bool:
        """Make the object vanish (as if someone deleted it) until a later write; True when it was there."""
        now = self._clock()
        present = self.store.get(bucket, key, now) is not None
        self.store.delete(bucket, key, now)
        return present

    def stats(self) -> dict[str, Any]:
        with self._lock:
            requests = dict(sorted(self._requests.items()))
        return {"requests": requests, "removed": self.store.deletions(), **self.records.stats()}

    def reset(self) -> None:
        """Forget the requests counted and every change made through TOS (the export tasks' objects stay)."""
        self.store.forget_changes()
        with self._lock:
            self._requests.clear()
            self._lifecycles.clear()
            self.records.reset()
            self._rng = random.Random(self._seed)  # noqa: S311 - request ids, not secrets

    def answer(
        self, *, method: str, target: str, headers: Mapping[str, str], loopback: bool, body: bytes = b""
    ) -> TosReply:
        """The reply to one request ``claims`` accepted."""
        path, _, raw_query = target.partition("?")
        if path == ADMIN_TOS_PATH or path.startswith(ADMIN_TOS_PATH + "/"):
            return self._admin(method, path, loopback)
        bucket, key = _address(path, headers.get("host", ""), self._virtual_host_suffix)
        call = _Call(
            method=method,
            path=path,
            raw_query=raw_query,
            query=dict(parse_qsl(raw_query, keep_blank_values=True)),
            headers=headers,
            body=body,
            bucket=bucket,
            key=key,
            request_id=self._request_id(),
            now=self._clock(),
            shift=self._shift,
        )
        reply = self._signed_request(call)
        stamped = (("Date", http_date(call.now + call.shift)), ("x-tos-request-id", call.request_id))
        reply = TosReply(reply.status, (*reply.headers, *stamped), reply.body)
        with self._lock:
            label = f"{method} {reply.status}"
            self._requests[label] = self._requests.get(label, 0) + 1
        kind = request_kind(method, key=key, query=call.query, headers=headers)
        read = len(reply.body) if kind in ("GET", "ranged GET") and reply.status in (200, 206) else 0
        self.records.count(kind, bucket=bucket, key=key, body_bytes=read)
        return reply

    # -- one signed request -----------------------------------------------------------------------------

    def _signed_request(self, call: _Call) -> TosReply:
        refused = self._refusal(call) or self._bucket_refusal(call)
        if refused is not None:
            return refused
        if not call.key:
            return self._bucket_request(call)
        if call.query:
            return call.error(501, "NotImplemented", f"the emulator answers {call.method} without a query")
        action = _OBJECT_ACTIONS.get(call.method)
        if action is None:
            return call.error(
                405, "MethodNotAllowed", f"the emulator does not answer {call.method} on an object"
            )
        return action(self, call)

    def _refusal(self, call: _Call) -> TosReply | None:
        """The error a request gets before anything is looked at: its signature, or an injected fault."""
        problem = verify_tos_signature(
            method=call.method,
            path=call.path,
            raw_query=call.raw_query,
            headers=call.headers,
            credentials_for=self._credentials_for,
            region=self.region,
            now=call.now + call.shift,
        )
        if problem is not None:
            return call.error(*problem)
        if self._roll(self.throttle_rate):
            return call.error(429, "TooManyRequests", "the request rate is too high (injected)")
        if self._roll(self.error_rate):
            return call.error(500, "InternalError", "an internal error occurred (injected); try again")
        return None

    def _bucket_refusal(self, call: _Call) -> TosReply | None:
        """The error a request gets from its bucket: none named, no such bucket, or no access."""
        if not call.bucket:
            return call.error(400, "InvalidArgument", "the emulator serves buckets: /<bucket>/<key>")
        access = self._bucket_access(call.bucket)
        if access is None:
            return call.error(404, "NoSuchBucket", f"the bucket {call.bucket} does not exist", call.bucket)
        writes = call.method in _WRITES
        if access == "none" or (access == "read-only" and writes):
            verb = "write" if writes else "read"
            message = f"the caller may not {verb} objects in the bucket {call.bucket}"
            return call.error(403, "AccessDenied", message, call.bucket)
        return None

    def _bucket_request(self, call: _Call) -> TosReply:
        if call.method == "HEAD" and not call.query:
            return self._head_bucket(call.bucket)
        if call.method == "GET" and call.query.get("list-type") == "2":
            return self._list_objects(call)
        if "lifecycle" in call.query and len(call.query) == 1:
            return self._lifecycle_request(call)
        return call.error(501, "NotImplemented", f"the emulator does not answer {call.method} on a bucket so")

    def _head_bucket(self, bucket: str) -> TosReply:
        return TosReply(
            200,
            (
                ("Content-Length", "0"),
                ("x-tos-bucket-region", self._bucket_region(bucket) or self.region),
                ("x-tos-storage-class", "STANDARD"),
                ("x-tos-az-redundancy", "single-az"),
                ("x-tos-bucket-type", "fns"),
            ),
        )

    def _lifecycle_request(self, call: _Call) -> TosReply:
        """GetBucketLifecycle, PutBucketLifecycle (every rule replaced) and DeleteBucketLifecycle."""
        bucket = call.bucket
        if call.method == "GET":
            with self._lock:
                found = self._lifecycles.get(bucket)
            if found is None:
                return call.error(
                    404, NO_LIFECYCLE_CODE, f"the bucket {bucket} has no lifecycle rules", bucket
                )
            rules, overlap = found
            extra = ((OVERLAP_HEADER, "true"),) if overlap else ()
            return json_reply(200, {"Rules": rules}, *extra)
        if call.method == "PUT":
            try:
                rules = checked_rules(call.body, call.headers, region=self.region)
            except LifecycleRefused as refused:
                return call.error(refused.status, refused.code, refused.message, bucket)
            overlap = call.headers.get(OVERLAP_HEADER, "").strip().lower() == "true"
            with self._lock:
                self._lifecycles[bucket] = (rules, overlap)
            return TosReply(200, (("Content-Length", "0"),))
        if call.method == "DELETE":
            with self._lock:
                self._lifecycles.pop(bucket, None)
            return TosReply(204, ())
        return call.error(405, "MethodNotAllowed", f"the emulator does not answer {call.method} ?lifecycle")

    def _list_objects(self, call: _Call) -> TosReply:
        query = call.query
        if query.get("delimiter"):
            return call.error(
                501, "NotImplemented", "the emulator does not group keys: list without delimiter"
            )
        raw_max = query.get("max-keys", "")
        if raw_max and not raw_max.isdigit():
            return call.error(400, "InvalidArgument", f"max-keys must be a whole number, not {raw_max!r}")
        max_keys = min(int(raw_max), MAX_KEYS) if raw_max else MAX_KEYS
        prefix, token = query.get("prefix", ""), query.get("continuation-token", "")
        start_after = query.get("start-after", "")
        after = start_after
        if token:
            last = decode_token(token)
            if last is None:
                return call.error(
                    400, "InvalidArgument", "the continuation-token is not one this bucket gave"
                )
            after = max(after, last)
        found, truncated = self.store.listing(
            call.bucket, prefix=prefix, after=after, limit=max_keys, now=call.now
        )
        page = listing(
            call.bucket,
            prefix=prefix,
            max_keys=max_keys,
            found=found,
            truncated=truncated,
            continuation_token=token,
            start_after=start_after,
            shift=call.shift,
        )
        return json_reply(200, page)

    def _read_object(self, call: _Call) -> TosReply:
        found = self.store.get(call.bucket, call.key, call.now)
        if found is None:
            return call.error(404, "NoSuchKey", f"the object {call.key} does not exist")
        described = object_headers(found, shift=call.shift)
        total = found.size_bytes
        if call.method == "HEAD":
            return TosReply(200, (("Content-Length", str(total)), *described))
        asked = call.headers.get("range", "")
        wanted = parse_range(asked, total)
        if wanted is None:
            return TosReply(200, (("Content-Length", str(total)), *described), found.content.read(0, total))
        if not wanted:
            reply = call.error(
                416, "InvalidRange", f"the range {asked!r} lies past the object's {total} bytes"
            )
            return TosReply(416, (*reply.headers, ("Content-Range", f"bytes */{total}")), reply.body)
        part = found.content.read(wanted.start, len(wanted))
        headers = (
            ("Content-Length", str(len(part))),
            ("Content-Range", f"bytes {wanted.start}-{wanted.stop - 1}/{total}"),
            *described,
        )
        return TosReply(206, headers, part)

    def _delete_object(self, call: _Call) -> TosReply:
        self.store.delete(call.bucket, call.key, call.now)
        return TosReply(204, ())

    def _put_object(self, call: _Call) -> TosReply:
        if len(call.body) > MAX_PUT_BYTES:
            message = f"the emulator keeps bodies up to {MAX_PUT_BYTES} bytes, not {len(call.body)}"
            return call.error(400, "EntityTooLarge", message)
        storage_class = call.headers.get("x-tos-storage-class", "STANDARD")
        if storage_class not in _STORAGE_CLASSES:
            return call.error(400, "InvalidStorageClass", f"the storage class {storage_class!r} is not TOS's")
        found = StoredObject(call.bucket, call.key, BytesContent(call.body), call.now, storage_class)
        self.store.write(found)
        headers = (("Content-Length", "0"), ("ETag", found.etag), ("x-tos-hash-crc64ecma", str(found.crc64)))
        return TosReply(200, headers)

    # -- the rest ---------------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, loopback: bool) -> TosReply:
        if not loopback:
            return json_reply(403, {"error": "the admin paths answer loopback clients only"})
        if method == "GET" and path == ADMIN_TOS_PATH:
            listed = [
                {"bucket": o.bucket, "key": o.key, "size_bytes": o.size_bytes, "crc64": str(o.crc64)}
                for o in self.objects()
            ]
            return json_reply(200, {"objects": listed})
        bucket, _, key = path[len(ADMIN_TOS_PATH) + 1 :].partition("/")
        if method == "DELETE" and bucket and key:
            return json_reply(200, {"removed": self.remove_object(bucket, unquote(key))})
        return json_reply(404, {"error": f"no admin path {method} {path}"})

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def _request_id(self) -> str:
        with self._lock:
            return "".join(self._rng.choice("0123456789abcdef") for _ in range(24))


_OBJECT_ACTIONS: Final[dict[str, Callable[[TosService, _Call], TosReply]]] = {
    "HEAD": TosService._read_object,
    "GET": TosService._read_object,
    "PUT": TosService._put_object,
    "DELETE": TosService._delete_object,
}
