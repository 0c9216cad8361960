# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Day 2, the rollout: the nodes a plan says change get their config, one step at a time.

Control planes go one at a time, workers in batches (a count or a percentage of the cluster's
workers). Each node passes these stages, and the first one that fails stops the rollout: the nodes
of later steps are not touched, and a re-run plans again and continues where this one stopped.

  etcd healthy before   (control planes) every control plane is an etcd member, every member
                        answers EtcdStatus with a leader and without errors
  apply                 ApplyConfiguration with the mode the plan chose (no_reboot, reboot, staged)
  reboot: going down    (reboot) the API stops answering
  reboot: coming back   (reboot) the API answers over mTLS again
  runs the new config   a dry run of the rendered config finds no changes (not for staged)
  etcd healthy after    (control planes) as before
  kubernetes ready      the Kubernetes node is Ready (when a kubeconfig is given)
"""

from __future__ import annotations

import asyncio
import math
import re
import time

from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import plan as planning

BATCH = re.compile(r"^\s*(\d+)\s*(%?)\s*$")


class StageError(Exception):
    """A node failed one stage of the rollout; str() names the node, its address and the stage."""

    def __init__(self, node, stage, message):
        self.node, self.stage, self.message = node, stage, message
        super().__init__("%s (%s) failed at stage '%s': %s" % (node["name"], node["ip"], stage, message))


def batch_size(value, workers):
    """How many workers go at once: a count (>= 1) or a percentage of the workers (at least 1)."""
    match = BATCH.match(str(value))
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(1)) > 100):
        raise ValueError("%r is neither a count of at least 1 nor a percentage from 1%% to 100%%" % (value,))
    number = int(match.group(1))
    if match.group(2):
        return max(1, int(math.floor(workers * number / 100.0)))
    return number


def steps(plans, batch, workers):
    """The rollout's steps (lists of plan entries): each changing control plane alone, then the changing workers in batches."""
    changing = [entry for entry in plans if entry["changed"]]
    size = batch_size(batch, workers)
    controlplanes = [[entry] for entry in changing if entry["role"] == "controlplane"]
    rest = [entry for entry in changing if entry["role"] != "controlplane"]
    return controlplanes + [rest[i:i + size] for i in range(0, len(rest), size)]


def member_name(node):
    """The node's etcd member and Kubernetes node name."""
    return node.get("hostname") or node["name"]


def node_ready(kubeconfig, name):
    """(ready, status text) of one Kubernetes node."""
    from ansible_collections.netboot.talos.plugins.module_utils.talos.api import kubernetes

    api = kubernetes.KubeClient(kubeconfig)
    try:
        rows = {row["name"]: row for row in map(kubernetes.summarize, api.get("/api/v1/nodes").get("items", []))}
    finally:
        api.close()
    status = rows[name]["status"] if name in rows else "not registered"
    return status == "Ready", status


class Rollout:
    """Rolls the planned changes out to the nodes of one cluster (see the module docstring)."""

    def __init__(self, connector, nodes, configs, bundle=None, kubeconfig=None, reboot_timeout=600, etcd_timeout=300,
                 ready_timeout=600, interval=1.0, on_stage=None):
        self.connector, self.nodes, self.configs, self.bundle = connector, nodes, configs, bundle
        # on_stage(entry, stage, outcome, seconds): outcome is "started", "done" or "failed: <why>".
        self.on_stage = on_stage or (lambda entry, stage, outcome, seconds: None)
        self.kubeconfig = kubeconfig
        self.reboot_timeout, self.etcd_timeout, self.ready_timeout = reboot_timeout, etcd_timeout, ready_timeout
        self.interval = interval
        self.by_name = {node["name"]: node for node in nodes}

    # ---------------------------------------------------------------- checks

    async def etcd_problems(self):
        """None when every control plane is a healthy etcd member, else what is wrong."""
        controlplanes = [n for n in self.nodes if n["role"] == "controlplane"]
        members, errors = None, []
        for node in controlplanes:
            try:
                members = await client.etcd_members(self.connector.secure(node["ip"]), timeout=5.0)
                break
            except client.TalosApiError as exc:
                errors.append(str(exc))
        if members is None:
            return "no control plane lists the etcd members (%s)" % "; ".join(errors)
        problems = []
        listed = {member["hostname"] for member in members}
        missing = [n["name"] for n in controlplanes if member_name(n) not in listed]
        if missing:
            problems.append("not etcd members: %s" % ", ".join(missing))
        problems += ["%s is a learner" % m["hostname"] for m in members if m["is_learner"]]
        for node in controlplanes:
            try:
                status = await client.etcd_status(self.connector.secure(node["ip"]), timeout=5.0)
            except client.TalosApiError as exc:
                problems.append("%s: %s" % (node["name"], exc.detail))
                continue
            if status["errors"]:
                problems.append("%s: etcd reports %s" % (node["name"], "; ".join(status["errors"])))
            elif not status["leader"]:
                problems.append("%s: etcd has no leader" % node["name"])
        return "; ".join(problems) or None

    async def _until(self, check, timeout, what):
        """Poll check() (returns None when satisfied, else a reason) until it passes or timeout seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            reason = await check()
            if reason is None:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError("%s after %ss: %s" % (what, timeout, reason))
            await asyncio.sleep(self.interval)

    async def wait_etcd(self):
        await self._until(self.etcd_problems, self.etcd_timeout, "etcd not healthy")

    async def wait_stage(self, node, wanted):
        results = await client.wait_for_stage(self.connector, [node["ip"]], {wanted}, self.reboot_timeout,
                                              interval=min(self.interval, 0.5), probe_timeout=2.0)
        entry = results[node["ip"]]
        if not entry["reached"]:
            raise TimeoutError("still %s after %ss" % (client.STAGE_TEXT.get(entry["stage"], entry["detail"]), self.reboot_timeout))

    async def runs_config(self, node):
        reply = await client.apply_configuration(self.connector.secure(node["ip"]), self.configs[node["name"]], "auto", dry_run=True)
        _summary, diff = planning.split_details(reply["mode_details"])
        if diff:
            raise RuntimeError("the node runs a config that differs from the rendered one:\n" + planning.redact(diff, self.bundle))

    async def wait_ready(self, node):
        name = member_name(self.by_name[node["name"]])

        async def check():
            try:
                ready, status = await asyncio.to_thread(node_ready, self.kubeconfig, name)
            except Exception as exc:  # connection, TLS and HTTP errors: retried until the timeout
                return "%s: %s" % (type(exc).__name__, exc)
            return None if ready else "the Kubernetes node %s is %s" % (name, status)

        await self._until(check, self.ready_timeout, "not Ready")

    # ---------------------------------------------------------------- one node, all steps

    def stages(self, entry):
        """The (stage name, operation) pairs one node goes through, in order; subclasses (other
        rolling operations) give their own."""
        controlplane = entry["role"] == "controlplane"
        rebooting = entry["action"] == "reboot"
        stages = [("etcd healthy before", self.wait_etcd) if controlplane else None,
                  ("apply", lambda: client.apply_configuration(self.connector.secure(entry["ip"]), self.configs[entry["name"]],
                                                               entry["action"])),
                  ("reboot: going down", lambda: self.wait_stage(entry, client.DOWN)) if rebooting else None,
                  ("reboot: coming back", lambda: self.wait_stage(entry, client.UP)) if rebooting else None,
                  ("runs the new config", lambda: self.runs_config(entry)) if entry["action"] != "staged" else None,
                  ("etcd healthy after", self.wait_etcd) if controlplane else None,
                  ("kubernetes ready", lambda: self.wait_ready(entry)) if self.kubeconfig else None]
        return [stage for stage in stages if stage]

    async def converge(self, entry):
        """Take one node through its stages; returns its record or raises StageError."""
        record = {"name": entry["name"], "ip": entry["ip"], "action": entry["action"], "stages": []}
        start = time.monotonic()
        for name, operation in self.stages(entry):
            begun = time.monotonic()
            self.on_stage(entry, name, "started", 0.0)
            try:
                await operation()
            except (client.TalosApiError, TimeoutError, RuntimeError) as exc:
                error = StageError(entry, name, planning.redact(str(exc), self.bundle))
                self.on_stage(entry, name, "failed: %s" % error.message, time.monotonic() - begun)
                raise error
            seconds = time.monotonic() - begun
            self.on_stage(entry, name, "done", seconds)
            record["stages"].append({"stage": name, "seconds": round(seconds, 2)})
        record["seconds"] = round(time.monotonic() - start, 2)
        return record

    async def run(self, plans, batch):
        """Every step in turn; stops after the first step with a failure. Returns the outcome."""
        workers = len([n for n in self.nodes if n["role"] != "controlplane"])
        todo = steps(plans, batch, workers)
        outcome = {"steps": [[e["name"] for e in step] for step in todo], "applied": [], "records": [], "failures": [], "untouched": []}
        for index, step in enumerate(todo):
            results = await asyncio.gather(*(self.converge(entry) for entry in step), return_exceptions=True)
            for entry, result in zip(step, results):
                if isinstance(result, StageError):
                    outcome["failures"].append({"node": entry["name"], "ip": entry["ip"], "stage": result.stage,
                                                "message": result.message, "msg": str(result)})
                elif isinstance(result, BaseException):
                    raise result
                else:
                    outcome["applied"].append(entry["name"])
                    outcome["records"].append(result)
            if outcome["failures"]:
                outcome["untouched"] = [e["name"] for later in todo[index + 1:] for e in later]
                break
        return outcome
