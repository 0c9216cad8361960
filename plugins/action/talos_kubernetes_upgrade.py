# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side netboot.talos.talos_kubernetes_upgrade: upgrade-k8s's steps, each printed as it starts and ends."""

from __future__ import annotations

import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.netboot.talos.plugins.plugin_utils import vault as vault_layer

try:
    from ansible_collections.netboot.talos.plugins.module_utils.talos import secrets
    from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
    from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api
    from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import kubernetes_upgrade as upgrade
except ImportError as exc:  # PyYAML, cryptography or requests missing on the controller
    IMPORT_ERROR = exc
else:
    IMPORT_ERROR = None

display = Display()

NODE_SPEC = dict(name=dict(type="str", required=True), role=dict(type="str", required=True, choices=["controlplane", "worker"]),
                 ip=dict(type="str", required=True), config=dict(type="dict", required=True))
ARGUMENT_SPEC = dict(
    nodes=dict(type="list", elements="dict", required=True, options=NODE_SPEC),
    secrets=dict(type="path", required=True),
    kubeconfig=dict(type="path", required=True),
    kubernetes_version=dict(type="str", required=True),
    timeout=dict(type="float", default=300),
    interval=dict(type="float", default=1),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        with vault_layer.in_process(self, task_vars):
            return self._run(tmp, task_vars)

    def _run(self, tmp, task_vars):
        if IMPORT_ERROR:
            raise AnsibleActionFail("talos_kubernetes_upgrade: the Python library %s is missing on the controller" % IMPORT_ERROR.name)
        if not client.HAS_GRPCLIB:
            raise AnsibleActionFail("talos_kubernetes_upgrade: the Python library grpclib is missing on the controller")
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=dict(api.CONNECTION_OPTIONS, **ARGUMENT_SPEC))
        try:
            connector = api.open_connector(args)
            bundle = secrets.load(args["secrets"])
        except (ValueError, secrets.BundleError) as exc:
            raise AnsibleActionFail("talos_kubernetes_upgrade: %s" % exc)
        if bundle is None:
            raise AnsibleActionFail("talos_kubernetes_upgrade: secrets: %s does not exist" % args["secrets"])
        check_mode = self._task.check_mode
        started = time.monotonic()

        def on_stage(entry, stage, outcome, seconds):
            if outcome != "started":
                display.display("  %-12s %-40s %s   %.1f s" % (entry["name"], stage, outcome, time.monotonic() - started))

        job = upgrade.KubernetesUpgrade(connector, args["nodes"], bundle, args["kubeconfig"], args["kubernetes_version"],
                                        timeout=args["timeout"], interval=args["interval"], on_stage=on_stage)
        try:
            entries = client.run(job.prepare())
        except upgrade.RefusedError as exc:
            return dict(result, failed=True, changed=False, msg=str(exc), problems=exc.problems)
        target = job.target
        planned = [dict(step=i + 1, node=e["name"], component=e["component"], **{"from": e["from"], "to": e["to"]})
                   for i, e in enumerate(entries)]
        result.update(changed=bool(entries), planned=planned, text=upgrade.text(entries, target, check_mode))
        if check_mode or not entries:
            return result
        for line in result["text"]:
            display.display(line)
        outcome = client.run(job.run(entries))
        result.update(outcome=outcome, records=outcome["records"], changed=bool(outcome["applied"]))
        if outcome["failures"]:
            failure = outcome["failures"][0]
            result.update(failed=True, msg="%s; not done: %s" % (
                failure["msg"], ", ".join("%s %s" % (n, upgrade.TITLES[c]) for n, c in outcome["untouched"]) or "nothing"))
        return result
