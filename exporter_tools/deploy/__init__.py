"""Deployment tools: the ``template.yaml`` model, the reproducible function zip and the veFaaS deployer.

None of this ships in the function's zip: it runs on the deployer's machine (``python -m handler
validate-template | package | deploy``) and may use what the function must not (PyYAML, pip, subprocesses).
"""

from collections.abc import Sequence

__all__ = ["tool_arguments"]


def tool_arguments(argv: Sequence[str]) -> list[str]:
    """The tool's own arguments: a leading ``--`` (``exporter-tools deploy -- --apply``) is dropped."""
    arguments = list(argv)
    return arguments[1:] if arguments[:1] == ["--"] else arguments
