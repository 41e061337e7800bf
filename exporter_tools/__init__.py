"""Tools around the exporter function, never shipped in its zip: the local ECS/veFaaS emulator, the webhook
receiver, the demo, deployment (template, package, plan/apply) and the benchmarks.

``exporter-tools COMMAND`` runs them (``exporter_tools.cli``). These modules may import the function's
package ``handler``; the function never imports them (``tests/function/unit/test_import_discipline.py``).
"""
