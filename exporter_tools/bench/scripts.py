"""The programs the benchmark starts: the floor, the deployed zip's runner, the SDK baseline's scripts, and
our warm loop.

The SDK scripts run in the SDK's own environment, so they are plain source here, written to the work
directory at run time; each is what an SDK user would write (``Configuration`` set as the default, then
``ECSApi()``). They read the endpoint from ``BENCH_SDK_HOST`` / ``BENCH_SDK_SCHEME``, the credentials from
the official variables, and trust ``SSL_CERT_FILE`` through ``Configuration.ssl_ca_cert``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SCRIPTS", "SDK_INDEX", "write_scripts"]

# The floor of the stack: what any function built on httpx, pydantic and structlog pays before its own work:
# the three imports, one model defined and validated, one client.
FLOOR = """\
import httpx
import structlog
from pydantic import BaseModel


class Probe(BaseModel):
    name: str


Probe.model_validate({"name": "floor"})
httpx.Client()
"""

# The deployed function as the runtime starts it: argv[1] is the unzipped package (the only path searched),
# argv[2] the event file. Run as `python3.12 -I -B`: no site-packages, no bytecode written.
DEPLOYED = """\
import json
import sys

sys.path.insert(0, sys.argv[1])
import index

with open(sys.argv[2], encoding="utf-8") as file:
    event = json.load(file)
print(json.dumps(index.handler(event, None)))
"""

# The floor of our stack as deployed: the three imports and one client, from the unzipped package in argv[1],
# run as the deployed function is.
DEPLOYED_FLOOR = """\
import sys

sys.path.insert(0, sys.argv[1])
import httpx
import pydantic
import structlog

httpx.Client()
"""

# The SDK's client as its users set it up, pointed at the emulator, and one export: shared by every SDK script
# and by the SDK's function (``SDK_INDEX``).
_SDK_CLIENT = """\
configuration = volcenginesdkcore.Configuration()
configuration.ak = os.environ["VOLCENGINE_ACCESS_KEY"]
configuration.sk = os.environ["VOLCENGINE_SECRET_KEY"]
configuration.region = os.environ.get("VOLCENGINE_REGION", "cn-beijing")
configuration.host = os.environ["BENCH_SDK_HOST"]
configuration.scheme = os.environ["BENCH_SDK_SCHEME"]
if os.environ.get("SSL_CERT_FILE"):
    configuration.ssl_ca_cert = os.environ["SSL_CERT_FILE"]
volcenginesdkcore.Configuration.set_default(configuration)
api = volcenginesdkecs.ECSApi()
bucket = os.environ["EXPORT_TOS_BUCKET"]


def export(image_id):
    request = volcenginesdkecs.ExportImageRequest(image_id=image_id, tos_bucket=bucket, tos_prefix="imgexport")
    return api.export_image(request).task_id
"""

_SDK_SETUP = (
    """\
import json
import os
import sys
import time

import volcenginesdkcore
import volcenginesdkecs

"""
    + _SDK_CLIENT
)

# The official SDK's function, as its users write one: the runtime imports ``index`` and calls
# ``index.handler(event, context)`` for each event; one ExportImage per direct event.
SDK_INDEX = (
    '''"""One ExportImage per direct event, with the official SDK: veFaaS calls index.handler(event, context)."""

import os

import volcenginesdkcore
import volcenginesdkecs

'''
    + _SDK_CLIENT
    + """

def handler(event, context):
    image_id = event["ImageId"]
    return {"image_id": image_id, "task_id": export(image_id)}
"""
)

# One direct event, as a cold process: argv[1] is the event file.
SDK_COLD = (
    _SDK_SETUP
    + """
with open(sys.argv[1], encoding="utf-8") as file:
    event = json.load(file)
print(json.dumps({"image_id": event["ImageId"], "task_id": export(event["ImageId"])}))
"""
)

# Warm, the same work as ours for a direct event: look the image's export tasks up (DescribeTasks), then
# ExportImage. argv[1] is a JSON list of image ids; the first is a warm-up, the rest are timed.
SDK_WARM = (
    _SDK_SETUP
    + """
def look_up_then_export(image_id):
    api.describe_tasks(volcenginesdkecs.DescribeTasksRequest(resource_ids=[image_id]))
    return export(image_id)


with open(sys.argv[1], encoding="utf-8") as file:
    ids = json.load(file)
look_up_then_export(ids[0])
seconds, cpu = [], []
for image_id in ids[1:]:
    start, start_cpu = time.perf_counter(), time.process_time()
    look_up_then_export(image_id)
    seconds.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
print(json.dumps({"seconds": seconds, "cpu": cpu}))
"""
)

# The throughput job as SDK users write it: list the new images, then export each. argv[1]: threads.
SDK_JOB = (
    _SDK_SETUP
    + """
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from volcenginesdkcore.rest import ApiException

threads = int(sys.argv[1])
cutoff = datetime.now(timezone.utc) - timedelta(hours=25)
images, token = [], None
while True:
    page = api.describe_images(
        volcenginesdkecs.DescribeImagesRequest(
            visibility="private", status=["available"], max_results=100, next_token=token
        )
    )
    images += [i.image_id for i in page.images or [] if datetime.fromisoformat(i.created_at) >= cutoff]
    token = page.next_token
    if not token:
        break


def attempt(image_id):
    try:
        export(image_id)
    except ApiException as exc:
        return f"HTTP {exc.status}"
    except Exception as exc:
        return type(exc).__name__
    return None


if threads == 1:
    outcomes = [attempt(image_id) for image_id in images]
else:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        outcomes = list(pool.map(attempt, images))
errors = Counter(o for o in outcomes if o is not None)
print(json.dumps({"images": len(images), "exported": outcomes.count(None), "errors": dict(errors)}))
"""
)

# Ours, warm: the entry called in one process, as the platform calls it. argv[1]: a JSON list of image ids.
OURS_WARM = """\
import json
import sys
import time

from handler import handler

with open(sys.argv[1], encoding="utf-8") as file:
    ids = json.load(file)


def invoke(image_id):
    status = handler({"ImageId": image_id}, None)["results"][0]["status"]
    if status != "started":
        raise SystemExit(f"{image_id}: {status}")


invoke(ids[0])
seconds, cpu = [], []
for image_id in ids[1:]:
    start, start_cpu = time.perf_counter(), time.process_time()
    invoke(image_id)
    seconds.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
print(json.dumps({"seconds": seconds, "cpu": cpu}))
"""

# The end of a warm profile: own time per invocation grouped by package, printed as {group: seconds}, largest
# first. ``profile`` ran ``len(ids) - 1`` invocations.
_PROFILE_GROUPS = """

def group(path, name):
    if path == "~":
        return "TLS and socket I/O" if "_ssl." in name or "socket" in name else "builtins"
    if "/handler/" in path:
        return "handler (ours)"
    if "site-packages/" in path:
        return path.split("site-packages/")[1].split("/")[0].removesuffix(".py")
    return "standard library"


totals = {}
for (path, _, name), (_, _, own, _, _) in pstats.Stats(profile).stats.items():
    totals[group(path, name)] = totals.get(group(path, name), 0.0) + own / (len(ids) - 1)
print(json.dumps(dict(sorted(totals.items(), key=lambda item: -item[1]))))
"""

# Ours, warm, under cProfile: where an invocation's time goes, by package (argv[1]: a JSON list of image ids;
# the first is a warm-up).
OURS_WARM_PROFILE = (
    """\
import cProfile
import json
import pstats
import sys

from handler import handler

with open(sys.argv[1], encoding="utf-8") as file:
    ids = json.load(file)
handler({"ImageId": ids[0]}, None)
profile = cProfile.Profile()
profile.enable()
for image_id in ids[1:]:
    handler({"ImageId": image_id}, None)
profile.disable()
"""
    + _PROFILE_GROUPS
)

# The SDK doing the same work, profiled the same way.
SDK_WARM_PROFILE = (
    _SDK_SETUP
    + """
import cProfile
import pstats

with open(sys.argv[1], encoding="utf-8") as file:
    ids = json.load(file)


def look_up_then_export(image_id):
    api.describe_tasks(volcenginesdkecs.DescribeTasksRequest(resource_ids=[image_id]))
    return export(image_id)


look_up_then_export(ids[0])
profile = cProfile.Profile()
profile.enable()
for image_id in ids[1:]:
    look_up_then_export(image_id)
profile.disable()
"""
    + _PROFILE_GROUPS
)

SCRIPTS = {
    "floor.py": FLOOR,
    "deployed.py": DEPLOYED,
    "deployed_floor.py": DEPLOYED_FLOOR,
    "sdk_index.py": SDK_INDEX,
    "sdk_cold.py": SDK_COLD,
    "sdk_warm.py": SDK_WARM,
    "sdk_job.py": SDK_JOB,
    "ours_warm.py": OURS_WARM,
    "ours_warm_profile.py": OURS_WARM_PROFILE,
    "sdk_warm_profile.py": SDK_WARM_PROFILE,
}


def write_scripts(directory: Path) -> dict[str, Path]:
    """Write every script into ``directory``; returns each file by its name."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, source in SCRIPTS.items():
        path = directory / name
        path.write_text(source, encoding="utf-8")
        paths[name] = path
    return paths
