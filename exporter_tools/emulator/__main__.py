"""``exporter-tools emulator`` (or ``python -m exporter_tools.emulator``): the local ECS and veFaaS OpenAPI,
and a small TOS (HeadObject, GetObject, PutObject, ListObjectsV2…) on the same port, on 127.0.0.1 until interrupted (Ctrl-C or SIGTERM).

Its first line on stdout is ``emulator listening on ENDPOINT``; then ready-to-paste ``export`` lines that
point ``python -m handler invoke`` at it: every variable it needs (the endpoint, TOS's too, the key pair, the
region, the bucket, and with TLS the certificate to trust).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from exporter_tools.emulator.api import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, Faults
from exporter_tools.emulator.ecs import EcsService
from exporter_tools.emulator.fleet import Fleet, demo_fleet, load_fleet
from exporter_tools.emulator.server import OpenApiEmulator
from exporter_tools.emulator.vefaas import VefaasService
from exporter_tools.options import port
from handler.adapters.signing import Credentials

__all__ = ["build_parser", "export_lines", "main"]


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        msg = "expected a share between 0 and 1"
        raise argparse.ArgumentTypeError(msg)
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exporter-tools emulator",
        description=(
            "A local ECS OpenAPI (ExportImage, DescribeImages, DescribeTasks, TagResources, UntagResources, "
            "ImportImage, DeleteImages) "
            "and TOS object requests (path-style) on 127.0.0.1, with signature checks and optional faults. Point the "
            "function at it with VOLCENGINE_ENDPOINT (and TOS_ENDPOINT)."
        ),
    )
    parser.add_argument("--port", type=port, default=0, help="port on 127.0.0.1 (default 0: a free port)")
    parser.add_argument("--fleet", metavar="FILE", help="fleet JSON file (default: the demo fleet)")
    parser.add_argument(
        "--access-key", default=None, help=f"accepted access key (default {DEFAULT_ACCESS_KEY})"
    )
    parser.add_argument(
        "--secret-key", default=None, help="its secret key (default: the emulator's fake one)"
    )
    parser.add_argument("--session-token", default=None, help="require this X-Security-Token (STS keys)")
    parser.add_argument("--region", default="cn-beijing", help="region of the signature scope (cn-beijing)")
    parser.add_argument("--error-rate", type=_rate, default=0.0, help="share of 500 InternalError answers")
    parser.add_argument("--throttle-rate", type=_rate, default=0.0, help="share of 429 FlowLimitExceeded")
    parser.add_argument(
        "--drop-rate", type=_rate, default=0.0, help="share of ExportImage calls committed, then dropped"
    )
    parser.add_argument("--max-rps", type=float, default=None, help="answer 429 above this many requests/s")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    parser.add_argument(
        "--tos-clock-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="TOS's clock runs this far ahead of local time (negative: behind): its Date and objects' times",
    )
    parser.add_argument(
        "--task-seconds", type=float, default=30.0, help="how long an export task takes (default 30)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed the faults and ids (reproducible runs)")
    parser.add_argument("--verbose", action="store_true", help="print one line per answer")
    parser.add_argument(
        "--tls-cert", metavar="PEM", help="serve over TLS with this certificate (and --tls-key)"
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    return parser


def export_lines(
    endpoint: str, credentials: Credentials, region: str, fleet: Fleet, *, ca_file: str | None = None
) -> list[str]:
    """Shell lines that point the function at this emulator: ``export NAME=value``, values quoted. TOS is on
    the same port (without ``TOS_ENDPOINT`` the follow-up would check the exports on the real TOS); with TLS,
    ``SSL_CERT_FILE`` trusts the emulator's certificate (``ca_file``)."""
    writable = [bucket.name for bucket in fleet.buckets if bucket.put_allowed]
    env = {
        "VOLCENGINE_ENDPOINT": endpoint,
        "TOS_ENDPOINT": endpoint,
        "VOLCENGINE_ACCESS_KEY": credentials.access_key,
        "VOLCENGINE_SECRET_KEY": credentials.secret_key,
        "VOLCENGINE_REGION": region,
    }
    if credentials.session_token:
        env["VOLCENGINE_SESSION_TOKEN"] = credentials.session_token
    if ca_file:
        env["SSL_CERT_FILE"] = ca_file
    lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    if not credentials.session_token:
        lines.append("unset VOLCENGINE_SESSION_TOKEN")
    if writable:
        lines.append(f"export EXPORT_TOS_BUCKET={shlex.quote(writable[0])}")
    else:
        lines.append("# the fleet has no bucket ECS may write to: set EXPORT_TOS_BUCKET to one of yours")
    return lines


def _options(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[Fleet, Faults, Credentials, ssl.SSLContext | None]:
    """The fleet, faults, accepted key pair and TLS context the options ask for; a usage error otherwise."""
    if (args.access_key is None) != (args.secret_key is None):
        parser.error("give both --access-key and --secret-key, or neither")
    if args.session_token and args.access_key is None:
        parser.error("--session-token needs --access-key and --secret-key")
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("give both --tls-cert and --tls-key, or neither")
    try:
        fleet = load_fleet(args.fleet) if args.fleet else demo_fleet()
        faults = Faults(
            error_rate=args.error_rate,
            throttle_rate=args.throttle_rate,
            drop_rate=args.drop_rate,
            max_rps=args.max_rps,
            latency_ms=args.latency_ms,
        )
    except ValueError as exc:
        parser.error(str(exc))
    credentials = Credentials(
        args.access_key or DEFAULT_ACCESS_KEY, args.secret_key or DEFAULT_SECRET_KEY, args.session_token
    )
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"cannot load --tls-cert/--tls-key: {exc}")
    return fleet, faults, credentials, context


def _serve(emulator: OpenApiEmulator) -> int:
    """Serve until Ctrl-C or SIGTERM, then release the port."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        emulator.stop_serving()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        emulator.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator (ECS, and veFaaS for trying ``deploy``) until interrupted (Ctrl-C or SIGTERM).
    Prints its address as its first line, then the ``export`` lines for the function."""
    parser = build_parser()
    args = parser.parse_args(argv)
    fleet, faults, credentials, context = _options(parser, args)
    ecs = EcsService(fleet, task_seconds=args.task_seconds, seed=args.seed)
    try:
        emulator = OpenApiEmulator(
            [ecs, VefaasService(seed=args.seed)],
            credentials=credentials,
            region=args.region,
            faults=faults,
            seed=args.seed,
            port=args.port,
            verbose=args.verbose,
        )
    except OSError as exc:
        print(f"emulator: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    tos = ecs.object_storage(emulator.accepted_key, region=args.region, clock=emulator.clock)
    tos.clock_offset = args.tos_clock_offset
    emulator.side_service = tos
    if context is not None:
        emulator.use_tls(context)
    print(f"emulator listening on {emulator.endpoint}", flush=True)
    print("# point the function at it (paste into the shell that runs `python -m handler invoke`):")
    ca_file = str(Path(args.tls_cert).resolve()) if args.tls_cert else None
    print(
        "\n".join(export_lines(emulator.endpoint, credentials, args.region, fleet, ca_file=ca_file)),
        flush=True,
    )
    print(
        f"accepting access key {credentials.access_key} in region {args.region}; "
        f"{len(fleet.images)} images, {len(fleet.buckets)} buckets",
        file=sys.stderr,
        flush=True,
    )
    return _serve(emulator)


if __name__ == "__main__":
    raise SystemExit(main())
