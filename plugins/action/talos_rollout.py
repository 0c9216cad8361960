# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side netboot.talos.talos_rollout: rolls the plan out from the controller and prints
each node's stages as they happen (the options and return values are documented in the module file)."""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.netboot.talos.plugins.module_utils import files
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import live
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import options
from ansible_collections.netboot.talos.plugins.plugin_utils import vault as vault_layer

display = Display()

ARGUMENT_SPEC = dict(
    options.ARGUMENT_SPEC,
    batch=dict(type="str", default="1"),
    kubeconfig=dict(type="path"),
    reboot_timeout=dict(type="float", default=600),
    etcd_timeout=dict(type="float", default=300),
    ready_timeout=dict(type="float", default=600),
    interval=dict(type="float", default=1),
    **live.PROGRESS_OPTIONS
)


def report(outcome, action_text):
    lines = []
    for record in outcome["records"]:
        stages = ", ".join("%s %.1fs" % (s["stage"], s["seconds"]) for s in record["stages"])
        lines.append("%s (%s): %s in %.1fs - %s" % (
            record["name"], record["ip"], action_text[record["action"]], record["seconds"], stages))
    return lines or ["nothing to apply"]


def problems_of(params, rollout):
    workers = len([n for n in params["nodes"] if n["role"] != "controlplane"])
    problems = []
    try:
        rollout.batch_size(params["batch"], workers)
    except ValueError as exc:
        problems.append("batch: %s" % exc)
    if params["kubeconfig"] and not os.path.isfile(params["kubeconfig"]):
        problems.append("kubeconfig: %s does not exist" % params["kubeconfig"])
    return problems


def main(module, progress):
    day2 = options.load(module)
    client, api, planning, rollout = day2.client, day2.api, day2.planning, day2.rollout
    params = module.params
    problems = problems_of(params, rollout)
    if problems:
        module.fail_json(msg="\n".join(problems), problems=problems)
    connector, configs, bundle, staged = day2.prepare(module)
    plans = day2.plan(module, connector, configs, bundle, staged)
    result = day2.plan_result(module, plans)
    del result["text"]
    refused = planning.problems(plans)
    if refused:
        module.fail_json(msg="nothing applied; the plan is refused for:\n" + "\n".join(refused), problems=refused, **result)
    if module.check_mode or not result["changing"]:
        day2.write_staged(None if module.check_mode else params["staged_record"], plans, staged, {})
        module.exit_json(changed=bool(result["changing"]), **result)
    kubeconfig = None
    if params["kubeconfig"]:
        kubeconfig = files.read_secret(params["kubeconfig"])
    runner = rollout.Rollout(connector, params["nodes"], configs, bundle, kubeconfig, params["reboot_timeout"],
                             params["etcd_timeout"], params["ready_timeout"], params["interval"], on_stage=progress.on_stage)
    try:
        outcome = progress.run(runner.run(plans, params["batch"]), result["changing"])
    except client.TalosApiError as exc:
        api.fail(module, exc, **result)
    staged_now = {e["name"]: planning.config_digest(configs[e["name"]]) for e in plans
                  if e["action"] == "staged" and e["name"] in outcome["applied"]}
    day2.write_staged(params["staged_record"], plans, staged, staged_now)
    result.update(outcome, report=report(outcome, planning.ACTION_TEXT))
    if outcome["failures"]:
        lines = [failure["msg"] for failure in outcome["failures"]]
        lines.append("applied: %s; not touched: %s" % (", ".join(outcome["applied"]) or "none", ", ".join(outcome["untouched"]) or "none"))
        module.fail_json(msg="rollout stopped: " + "\n".join(lines), changed=bool(outcome["applied"]), **result)
    module.exit_json(changed=True, **result)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        with vault_layer.in_process(self, task_vars):
            return self._run(tmp, task_vars)

    def _run(self, tmp, task_vars):
        result = super().run(tmp, task_vars)
        result.update(live.run_action(self, ARGUMENT_SPEC, main, display.display))
        return result
