# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side netboot.talos.talos_upgrade: plans the Talos upgrade and rolls it out, printing each stage as it happens."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.netboot.talos.plugins.plugin_utils import vault as vault_layer

try:
    from ansible_collections.netboot.talos.plugins.module_utils import files, progress
    from ansible_collections.netboot.talos.plugins.module_utils.talos import factory, versions
    from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
    from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api
    from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import rollout, upgrade
except ImportError as exc:  # PyYAML, requests or grpclib missing on the controller
    IMPORT_ERROR = exc
else:
    IMPORT_ERROR = None

display = Display()

NODE_SPEC = dict(name=dict(type="str", required=True), role=dict(type="str", required=True, choices=["controlplane", "worker"]),
                 ip=dict(type="str", required=True), hostname=dict(type="str"), talos_version=dict(type="str", required=True),
                 schematic=dict(type="str", required=True), install_image=dict(type="str"))
ARGUMENT_SPEC = dict(
    cluster=dict(type="str", required=True),
    nodes=dict(type="list", elements="dict", required=True, options=NODE_SPEC),
    kubeconfig=dict(type="path"),
    drain=dict(type="bool", default=True),
    drain_timeout=dict(type="float", default=300),
    upgrade_timeout=dict(type="float", default=900),
    etcd_timeout=dict(type="float", default=300),
    ready_timeout=dict(type="float", default=600),
    batch=dict(type="str", default="1"),
    interval=dict(type="float", default=1),
)


def picked(node):
    """The keys of a node this action reads; talos_inventory's node entries can be passed as they are."""
    if not isinstance(node, dict):
        return node
    chosen = {key: node[key] for key in NODE_SPEC if node.get(key) is not None}
    hostname = (node.get("config") or {}).get("hostname") if isinstance(node.get("config"), dict) else None
    if hostname and "hostname" not in chosen:
        chosen["hostname"] = hostname
    return chosen


def problems_of(args):
    """Every problem with the arguments at once, each naming the node and the variable."""
    problems = []
    names = [node["name"] for node in args["nodes"]]
    if len(set(names)) != len(names):
        problems.append("nodes: names must be unique (%s)" % ", ".join(sorted({n for n in names if names.count(n) > 1})))
    for node in args["nodes"]:
        try:
            versions.contract(node["talos_version"])
        except versions.VersionError as exc:
            problems.append("%s: talos_version: %s" % (node["name"], exc))
        try:
            factory.check_schematic(node["schematic"])
        except ValueError as exc:
            problems.append("%s: schematic: %s" % (node["name"], exc))
    try:
        rollout.batch_size(args["batch"], len([n for n in args["nodes"] if n["role"] != "controlplane"]))
    except ValueError as exc:
        problems.append("batch: %s" % exc)
    if args["kubeconfig"] and not os.path.isfile(args["kubeconfig"]):
        problems.append("kubeconfig: %s does not exist" % args["kubeconfig"])
    for option in ("drain_timeout", "upgrade_timeout", "etcd_timeout", "ready_timeout", "interval"):
        if args[option] <= 0:
            problems.append("%s: must be more than 0" % option)
    return problems


def report(outcome):
    lines = []
    for record in outcome["records"]:
        stages = ", ".join("%s %.1fs" % (s["stage"], s["seconds"]) for s in record["stages"])
        lines.append("%s (%s): upgraded in %.1fs - %s" % (record["name"], record["ip"], record["seconds"], stages))
    return lines or ["nothing upgraded"]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        with vault_layer.in_process(self, task_vars):
            return self._run(tmp, task_vars)

    def _run(self, tmp, task_vars):
        if IMPORT_ERROR:
            raise AnsibleActionFail("talos_upgrade: the Python library %s is missing on the controller" % IMPORT_ERROR.name)
        if not client.HAS_GRPCLIB:
            raise AnsibleActionFail("talos_upgrade: the Python library grpclib is missing on the controller")
        result = super().run(tmp, task_vars)
        if isinstance(self._task.args.get("nodes"), list):
            self._task.args = dict(self._task.args, nodes=[picked(node) for node in self._task.args["nodes"]])
        _validation, args = self.validate_argument_spec(argument_spec=dict(api.CONNECTION_OPTIONS, **ARGUMENT_SPEC))
        problems = problems_of(args)
        if problems:
            raise AnsibleActionFail("talos_upgrade: %s" % "; ".join(problems))
        try:
            connector = api.open_connector(args)
        except ValueError as exc:
            raise AnsibleActionFail("talos_upgrade: %s" % exc)
        kubeconfig = None
        if args["kubeconfig"]:
            kubeconfig = files.read_secret(args["kubeconfig"])
        plans = client.run(upgrade.plan_nodes(connector, args["nodes"]))
        lines = upgrade.text(plans, args["cluster"])
        for line in lines:
            display.display(line)
        changing = [e["name"] for e in plans if e["changed"]]
        result.update(plan=plans, text=lines, changing=changing)
        # Nothing to upgrade needs no healthy cluster: a config rollout may follow while a node is down.
        refused = any(e["action"] == "refused" for e in plans)
        refusals = upgrade.preflight(plans, self._kube_status(kubeconfig, args["nodes"])) if changing or refused else []
        if refusals:
            result.update(failed=True, problems=refusals, msg="nothing upgraded:\n" + "\n".join(refusals))
            return result
        if self._task.check_mode or not changing:
            result["changed"] = bool(changing)
            return result
        outcome = self._roll(connector, args, kubeconfig, plans)
        result.update(outcome, changed=bool(outcome["applied"]), report=report(outcome))
        if outcome["failures"]:
            failed = [failure["msg"] for failure in outcome["failures"]]
            failed.append("upgraded: %s; not touched: %s" % (", ".join(outcome["applied"]) or "none",
                                                             ", ".join(outcome["untouched"]) or "none"))
            result.update(failed=True, msg="upgrade stopped: " + "\n".join(failed))
        return result

    @staticmethod
    def _kube_status(kubeconfig, nodes):
        if kubeconfig is None:
            return None
        names = [node.get("hostname") or node["name"] for node in nodes]
        try:
            return upgrade.kube_statuses(kubeconfig, names)
        except Exception as exc:  # connection, TLS and HTTP errors: nobody can tell whether the nodes are Ready
            return {name: "unknown (%s: %s)" % (type(exc).__name__, exc) for name in names}

    def _roll(self, connector, args, kubeconfig, plans):
        printer = progress.Progress(display.display, {node["name"]: node["name"] for node in args["nodes"]}, "upgraded")

        def on_stage(entry, stage, outcome, seconds):
            words = "%s ..." % stage if outcome == "started" else "%s %s (%.1f s)" % (stage, outcome, seconds)
            printer.note(entry["name"], words)

        runner = upgrade.Upgrade(connector, args["nodes"], kubeconfig, args["drain"], args["drain_timeout"],
                                 args["upgrade_timeout"], args["etcd_timeout"], args["ready_timeout"], args["interval"],
                                 on_stage=on_stage)
        try:
            return client.run(runner.run(plans, args["batch"]))
        except client.TalosApiError as exc:
            raise AnsibleActionFail("talos_upgrade: %s" % exc)
