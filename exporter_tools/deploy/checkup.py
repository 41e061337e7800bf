"""The end of ``deploy --apply``: the doctor's checks (``exporter_tools.doctor``, as ``exporter-tools doctor``
runs them) with the function's environment as it was just deployed, printed as the doctor's table.

They run here, not in the function: veFaaS's API for invoking a function is not among the verified facts
(docs/facts.md §9), so deploy does not send the ``Doctor`` event. What differs from the function's own run is
what only this machine can use: the deployer's keys (not the function's role), the endpoints deploy reached
and this machine's CA bundle. The last line says how to run the ``Doctor`` event in the function itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

from exporter_tools.deploy.connect import Connection
from handler.models.settings import CREDENTIAL_VARIABLES

__all__ = ["DOCTOR_EVENT_HINT", "check_deployment", "deployed_environment"]

# How to run the checks with the function's own role; deploy cannot (no invoke API in the facts).
DOCTOR_EVENT_HINT = (
    'With the function\'s own role: in the veFaaS console, test {name} with the event {{"Doctor": true}}.'
)
# The deployed values this machine cannot use as they are: the function's credentials, endpoints and CA bundle.
_FUNCTIONS_OWN = frozenset({*CREDENTIAL_VARIABLES, "VOLCENGINE_ENDPOINT", "TOS_ENDPOINT", "SSL_CERT_FILE"})


def deployed_environment(
    envs: Mapping[str, str], connected: Connection, environ: Mapping[str, str]
) -> dict[str, str]:
    """The function's environment as deployed (``envs``), with the deployer's keys and the endpoints deploy
    used (``connected``) in place of the function's own, and this machine's ``SSL_CERT_FILE`` (``environ``)."""
    env = {name: value for name, value in envs.items() if name not in _FUNCTIONS_OWN}
    credentials = connected.credentials
    env |= {
        "VOLCENGINE_ENDPOINT": connected.gateway,
        "TOS_ENDPOINT": connected.tos_endpoint,
        "VOLCENGINE_ACCESS_KEY": credentials.access_key,
        "VOLCENGINE_SECRET_KEY": credentials.secret_key,
    }
    if credentials.session_token:
        env["VOLCENGINE_SESSION_TOKEN"] = credentials.session_token
    if environ.get("SSL_CERT_FILE"):
        env["SSL_CERT_FILE"] = environ["SSL_CERT_FILE"]
    return env


def check_deployment(
    name: str,
    envs: Mapping[str, str],
    connected: Connection,
    environ: Mapping[str, str],
    *,
    out: TextIO,
    timeout: float = 120.0,
) -> bool:
    """Run the doctor's checks on the function ``name`` as deployed and print its table; True when no check
    failed (warnings allowed)."""
    from exporter_tools.doctor import examine_environment, report  # noqa: PLC0415 - only after an apply

    reading, checks = examine_environment(deployed_environment(envs, connected, environ), timeout=timeout)
    lines = report(reading, checks)
    lines.insert(1, "The settings just deployed, checked from here with your keys:")
    out.write("\n" + "\n".join(lines) + "\n" + DOCTOR_EVENT_HINT.format(name=name) + "\n")
    return not any(check.status == "fail" for check in checks)
