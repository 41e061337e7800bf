"""Deployment tools: the ``template.yaml`` model, the reproducible function zip and the veFaaS deployer.

None of this ships in the function's zip: it runs on the deployer's machine (``python -m handler
validate-template | package | deploy``) and may use what the function must not (PyYAML, pip, subprocesses).
"""
