"""Deployment tools: the ``template.yaml`` model, the reproducible function zip and the veFaaS deployer.

None of this ships in the function's zip: it runs on the deployer's machine (``exporter-tools
validate-template | package | deploy``) and may use what the function must not (PyYAML, pip, subprocesses).

- ``crontab``, ``references`` (``${env:…}``, secret-looking values), ``model`` (the pydantic model of the
  template), ``storage`` (its ``storage:`` section: storage classes and their order), ``checks`` (what one
  field cannot check alone), ``template`` (loading, filling in, and the ``validate-template`` command);
- ``vefaas`` (the typed veFaaS client), ``tos_lifecycle`` (a bucket's lifecycle rules over TOS),
  ``lifecycle`` (pure: the export prefix's rule merged into the bucket's others), ``plan`` (pure: the writes
  that would make the account match, from reads through ``AccountReader`` and ``LifecycleReader``), ``apply``
  (making them), ``checkup`` (the doctor's checks that end an apply), ``zipcheck`` (what the runtime could not
  start), ``cli`` (the ``deploy`` command);
- ``package`` (``dist/function.zip``, the ``package`` command).
"""

from collections.abc import Sequence

__all__ = ["tool_arguments"]


def tool_arguments(argv: Sequence[str]) -> list[str]:
    """The tool's own arguments: a leading ``--`` (``exporter-tools deploy -- --apply``) is dropped."""
    arguments = list(argv)
    return arguments[1:] if arguments[:1] == ["--"] else arguments
