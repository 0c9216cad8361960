# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side netboot.talos.talos_wait: polls the nodes from the controller and prints each change as it happens.

A module cannot print while it runs; an action plugin can: Display in the worker process reaches
the terminal at once, whatever the stdout callback.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.netboot.talos.plugins.plugin_utils import vault as vault_layer

try:
    from ansible_collections.netboot.talos.plugins.module_utils import progress
    from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client, kubernetes
    from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api
    from ansible_collections.netboot.talos.plugins.module_utils import libraries
    libraries.check("yaml")
except ImportError as exc:  # PyYAML or requests missing on the controller
    IMPORT_ERROR = exc
else:
    IMPORT_ERROR = None

display = Display()

WANTED = {"answering": ("maintenance", "up"), "maintenance": ("maintenance",), "up": ("up",)}
NODE_SPEC = dict(name=dict(type="str", required=True), ip=dict(type="str"), role=dict(type="str"))
ARGUMENT_SPEC = dict(
    nodes=dict(type="list", elements="dict", required=True, options=NODE_SPEC),
    wait_for=dict(type="str", required=True, choices=sorted(WANTED) + ["ready"]),
    kubeconfig=dict(type="path"),
    configs_dir=dict(type="path"),
    fingerprints=dict(type="dict", default={}),
    return_after=dict(type="list", elements="str", default=[]),
    bootstrap=dict(type="str"),
    bootstrap_timeout=dict(type="float", default=600),
    timeout=dict(type="float", default=600),
    interval=dict(type="float", default=0.5),
    progress_every=dict(type="float", default=30),
    fail_on_timeout=dict(type="bool", default=True),
)


def problems_of(args):
    """Every problem with the arguments at once."""
    problems = []
    names = [node["name"] for node in args["nodes"]]
    if not names:
        problems.append("nodes: at least one node is needed")
    if len(set(names)) != len(names):
        problems.append("nodes: names must be unique (%s)" % ", ".join(sorted({n for n in names if names.count(n) > 1})))
    unknown = [name for name in args["return_after"] + [args["bootstrap"] or names[0]] if name not in names]
    if unknown:
        problems.append("return_after, bootstrap: %s not in nodes" % ", ".join(unknown))
    if args["bootstrap"] and args["wait_for"] != "up":
        problems.append("bootstrap: only with wait_for=up")
    if args["wait_for"] == "ready":
        if not args["kubeconfig"]:
            problems.append("kubeconfig: required with wait_for=ready")
        return problems
    missing_ip = [node["name"] for node in args["nodes"] if not node.get("ip")]
    if missing_ip:
        problems.append("nodes: %s without ip" % ", ".join(missing_ip))
    if not 0 < args["interval"] <= 1:
        problems.append("interval: must be more than 0 and at most 1 second")
    if args["configs_dir"]:
        absent = [name for name in dict.fromkeys(names) if not os.path.isfile(config_path(args, name))]
        if absent:
            problems.append("configs_dir: no config for %s in %s" % (", ".join(absent), args["configs_dir"]))
    return problems


def config_path(args, name):
    return os.path.join(args["configs_dir"], "%s.yaml" % name)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        with vault_layer.in_process(self, task_vars):
            return self._run(tmp, task_vars)

    def _run(self, tmp, task_vars):
        if IMPORT_ERROR:
            raise AnsibleActionFail("talos_wait: the Python library %s is missing on the controller" % IMPORT_ERROR.name)
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=dict(api.CONNECTION_OPTIONS, **ARGUMENT_SPEC))
        problems = problems_of(args)
        if problems:
            raise AnsibleActionFail("talos_wait: %s" % "; ".join(problems))
        if args["wait_for"] == "ready":
            result.update(self._wait_ready(args))
        else:
            if not client.HAS_GRPCLIB:
                raise AnsibleActionFail("talos_wait: the Python library grpclib is missing on the controller")
            result.update(self._wait_talos(args))
        if "reason" in result and args["fail_on_timeout"]:
            result.update(failed=True, msg=result["reason"])
        return result

    # ------------------------------------------------------------------ Talos stages

    def _wait_talos(self, args):
        try:
            connector = api.open_connector(args, require_talosconfig=args["wait_for"] == "up")
        except ValueError as exc:
            raise AnsibleActionFail("talos_wait: %s" % exc)
        by_ip = {node["ip"]: node["name"] for node in args["nodes"]}
        printer = progress.Progress(display.display, by_ip, args["wait_for"], args["progress_every"], progress.TALOS_STAGES)
        configs = {}
        if args["configs_dir"]:
            for name in by_ip.values():
                with open(config_path(args, name), "rb") as handle:
                    configs[name] = handle.read()
        applied, bootstrap = [], {}
        check = self._task.check_mode

        async def on_change(ip, entry, previous):
            seconds = entry["history"][-1][0]
            printer.change(ip, previous, entry["stage"], seconds, entry["error"])
            name = by_ip[ip]
            if entry["stage"] == client.UP and name == args["bootstrap"]:
                # At once, in this loop: etcd needs this node only, the others may still boot.
                changed, reason, attempts = await client.bootstrap_once(connector.secure(ip), args["bootstrap_timeout"],
                                                                        check=check)
                bootstrap.update(node=name, changed=changed, reason=reason, attempts=attempts)
                printer.note(ip, "etcd: %s" % reason)
                return False
            if entry["stage"] != client.MAINTENANCE or name not in configs:
                return False
            # Delivered as soon as this node answers: the others may still be booting.
            target = connector.maintenance(ip, args["fingerprints"].get(name))
            outcome = await client.apply_configuration(target, configs[name], dry_run=check)
            applied.append(name)
            printer.note(ip, "config %s in maintenance mode (%s)" % ("would be applied" if check else "applied", outcome["mode"]))
            return check  # in check mode the node would install now; there is nothing more to wait for

        def on_tick(seconds, results):
            printer.tick(seconds, {ip: entry["stage"] for ip, entry in results.items()},
                         {ip for ip, entry in results.items() if entry["reached"]})

        enough = [ip for ip, name in by_ip.items() if name in args["return_after"]] or None
        results = client.run(client.wait_for_stage(connector, list(by_ip), set(WANTED[args["wait_for"]]), args["timeout"],
                                                   interval=args["interval"], on_change=on_change, on_tick=on_tick,
                                                   enough=enough))
        nodes, summary = {}, []
        for ip, name in by_ip.items():
            entry = dict(results[ip], ip=ip, stage_text=progress.stage_text(results[ip]))
            nodes[name] = entry
            summary.append(progress.summary_line("%s (%s)" % (name, ip), entry, True))
        missing = [by_ip[ip] for ip in (enough or by_ip) if not results[ip]["reached"]]
        outcome = dict(changed=bool(applied) or bootstrap.get("changed", False), nodes=nodes, summary=summary,
                       applied=applied, failed_nodes=missing, bootstrap=bootstrap)
        if missing:
            reasons = ["%s (%s) is %s" % (name, nodes[name]["ip"], nodes[name]["stage_text"]) for name in missing]
            outcome["reason"] = "not %s after %ss: %s" % (args["wait_for"], args["timeout"], "; ".join(reasons))
        return outcome

    # ------------------------------------------------------------------ Kubernetes Ready

    def _wait_ready(self, args):
        if not kubernetes.HAS_REQUESTS:
            raise AnsibleActionFail("talos_wait: the Python library requests is missing on the controller")
        try:
            kube = kubernetes.client_from_file(args["kubeconfig"])
        except kubernetes.KubeconfigError as exc:
            raise AnsibleActionFail("talos_wait: %s" % exc)
        names = [node["name"] for node in args["nodes"]]
        printer = progress.Progress(display.display, {name: name for name in names}, "Ready", args["progress_every"])

        def on_tick(seconds, stages):
            printer.tick(seconds, stages, {name for name, stage in stages.items() if stage == kubernetes.READY})

        try:
            outcome = kubernetes.wait_ready(kube, names, args["timeout"], args["interval"],
                                            on_change=printer.change, on_tick=on_tick)
        finally:
            kube.close()
        rows = outcome["rows"]
        result = dict(changed=False, nodes=rows, table=kubernetes.table(rows), seconds=outcome["seconds"],
                      failed_nodes=outcome["waiting"])
        if not outcome["ready"]:
            result["reason"] = kubernetes.not_ready_message(outcome, args["timeout"], kube.server)
        return result
