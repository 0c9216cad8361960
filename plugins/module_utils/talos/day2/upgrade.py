# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Day 2, the Talos OS upgrade: every node runs the inventory's talos_version and schematic.

The plan reads each node's running version (Version) and the schematic it booted (the `schematic`
extension Image Factory puts in its images, COSI ExtensionStatuses; none = the vanilla schematic)
and compares them with the inventory. A node that differs gets the installer image
`factory.talos.dev/installer/<schematic>:<version>` (metal-installer from 1.14), or
talos_install_image when that is set (then only the version is compared).

A plan entry: {name, role, ip, state, detail, running, running_schematic, version, schematic,
image, api, action, changed, reason}
  action  none, upgrade, refused (the installer would refuse this version path), skipped (not up)
  api     lifecycle (1.13+: ImageService/Pull, LifecycleService/Upgrade, Reboot) or legacy
          (MachineService/Upgrade), after the version the node RUNS

The rollout is a Rollout (control planes one at a time, workers in batches); per node:

  etcd healthy before   (control planes) as rollout.py
  cordon, drain         (with a kubeconfig and drain on) spec.unschedulable, then evict (drain.py)
  pull installer        (lifecycle) ImageService/Pull into the system containerd namespace
  install               (lifecycle) LifecycleService/Upgrade, exit code 0
  reboot                (lifecycle) MachineService/Reboot
  upgrade               (legacy) MachineService/Upgrade: the node pulls, installs and reboots
  going down            the API stops answering
  coming back           the API answers over mTLS again (within the upgrade timeout)
  runs the new version  Version reports the target tag, and the schematic is the target's
  services healthy      ServiceList: every service Running and healthy (machined may be unknown)
  etcd healthy after    (control planes)
  kubernetes ready      the Kubernetes node is Ready (with a kubeconfig)
  uncordon              (with drain) spec.unschedulable removed

A node that fails after it was cordoned: when nothing was installed yet (drain, pull installer, a
refused legacy Upgrade call) it is uncordoned again; from the install on it stays cordoned, since
it may run anything, and the failure says so.

Talos's own etcd check of the legacy path is not made on the lifecycle path; the rollout checks
etcd itself before and after each control plane, which goes alone.
"""

from __future__ import annotations

import asyncio

from ansible_collections.netboot.talos.plugins.module_utils.talos import factory, versions
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import rollout

ACTION_TEXT = {"none": "up to date", "upgrade": "upgrade", "refused": "refused", "skipped": "skipped"}
# Services that may report no health (talos-day2.md §6).
HEALTH_UNKNOWN_OK = ("machined",)
# Stages that fail with the node as it was: the drain, the pull of the installer, and the legacy
# Upgrade call (refused by the node before it starts, e.g. its etcd quorum check). From the
# lifecycle install on the node may have written its new system.
UNTOUCHED_STAGES = ("drain", "pull installer", "upgrade")


def target_image(node):
    """The installer image a node is upgraded with."""
    if node.get("install_image"):
        return node["install_image"]
    return factory.installer_image(node["talos_version"], node["schematic"])


def wanted_schematic(node):
    """The schematic to compare with, None when talos_install_image decides what is installed."""
    return None if node.get("install_image") else node["schematic"]


async def running_schematic(target):
    return await client.schematic(target) or factory.VANILLA_SCHEMATIC


async def plan_node(connector, node):
    """The plan entry of one node (see the module docstring); never changes the node."""
    version = versions.normalize(node["talos_version"])
    entry = dict(name=node["name"], role=node["role"], ip=node["ip"], state=None, detail="", running=None,
                 running_schematic=None, version=version, schematic=wanted_schematic(node), image=target_image(node),
                 api=None, action="skipped", changed=False, reason="")
    try:
        stage, detail, tag = await client.probe(connector, node["ip"])
        entry.update(state=stage, detail=detail, running=tag)
        if stage != client.UP:
            return entry
        if entry["schematic"] is not None:
            entry["running_schematic"] = await running_schematic(connector.secure(node["ip"]))
    except client.TalosApiError as exc:
        return dict(entry, state=client.ERROR, detail=str(exc))
    if versions.same_release(tag, version) and entry["schematic"] in (None, entry["running_schematic"]):
        return dict(entry, action="none")
    try:
        problem = versions.upgrade_path_problem(tag, version)
    except versions.VersionError as exc:
        problem = str(exc)
    if problem:
        return dict(entry, action="refused", reason=problem)
    api = "lifecycle" if versions.has_lifecycle_upgrade(tag) else "legacy"
    return dict(entry, action="upgrade", changed=True, api=api)


async def plan_nodes(connector, nodes):
    return list(await asyncio.gather(*(plan_node(connector, node) for node in nodes)))


def preflight(plans, kube_status=None):
    """Lines naming what forbids starting: refused version paths (naming talos_version), nodes not up, not Ready.

    kube_status: {node name: Kubernetes status} when a kubeconfig is given.
    """
    lines, refused = [], {}
    for entry in plans:
        if entry["action"] == "refused":
            refused.setdefault((entry["version"], entry["reason"]), []).append(entry["name"])
    for (version, reason), names in sorted(refused.items()):
        lines.append("talos_version %s cannot be installed on %s: %s" % (version, ", ".join(names), reason))
    down = ["%s (%s): %s" % (e["name"], e["ip"], e["detail"] or e["state"]) for e in plans if e["state"] != client.UP]
    if down:
        lines.append("every node must be up before an upgrade; not up: %s" % "; ".join(down))
    if kube_status is not None:
        not_ready = ["%s is %s" % (name, status) for name, status in sorted(kube_status.items()) if status != "Ready"]
        if not_ready:
            lines.append("every Kubernetes node must be Ready before an upgrade: %s" % "; ".join(not_ready))
    return lines


def describe(entry):
    if entry["state"] != client.UP:
        return "skipped: %s" % client.STAGE_TEXT.get(entry["state"], entry["detail"])
    if entry["action"] == "refused":
        return "refused: %s" % entry["reason"]
    if entry["action"] == "none":
        return ACTION_TEXT["none"]
    what = [entry["running"] + " -> " + entry["version"]] if not versions.same_release(entry["running"], entry["version"]) else []
    if entry["schematic"] not in (None, entry["running_schematic"]):
        what.append("schematic %s... -> %s..." % (entry["running_schematic"][:12], entry["schematic"][:12]))
    path = "ImageService/Pull + LifecycleService/Upgrade" if entry["api"] == "lifecycle" else "MachineService/Upgrade"
    return "upgrade %s with %s (%s)" % (", ".join(what), entry["image"], path)


def text(plans, cluster):
    """The plan as a table for people."""
    changing = [e for e in plans if e["changed"]]
    rows = [("NODE", "ROLE", "ADDRESS", "RUNNING", "PLAN")]
    rows += [(e["name"], e["role"], e["ip"], e["running"] or "-", describe(e)) for e in plans]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["Upgrade plan for cluster %s: %d of %d nodes upgrade" % (cluster, len(changing), len(plans))]
    lines += ["   ".join([cell.ljust(width) for cell, width in zip(row[:4], widths)] + [row[4]]) for row in rows]
    return lines


def kube_statuses(kubeconfig, names):
    """{name: Ready / NotReady / not registered} from one node list."""
    from ansible_collections.netboot.talos.plugins.module_utils.talos.api import kubernetes

    api = kubernetes.KubeClient(kubeconfig)
    try:
        rows = {row["name"]: row["status"] for row in map(kubernetes.summarize, api.get("/api/v1/nodes").get("items", []))}
    finally:
        api.close()
    return {name: rows.get(name, "not registered") for name in names}


def service_problems(services):
    """None when every service runs healthy, else the ones that do not."""
    bad = ["%s %s" % (s["id"], s["state"] if s["state"] != "Running" else "not healthy") for s in services
           if s["state"] != "Running" or not (s["healthy"] or s["id"] in HEALTH_UNKNOWN_OK)]
    return ", ".join(bad) or None


class Upgrade(rollout.Rollout):
    """The rolling upgrade (see the module docstring); run(plans, batch) as Rollout's."""

    def __init__(self, connector, nodes, kubeconfig=None, drain=True, drain_timeout=300, upgrade_timeout=900,
                 etcd_timeout=300, ready_timeout=600, interval=1.0, on_stage=None):
        super().__init__(connector, nodes, {}, None, kubeconfig, reboot_timeout=upgrade_timeout, etcd_timeout=etcd_timeout,
                         ready_timeout=ready_timeout, interval=interval, on_stage=on_stage)
        self.drain, self.drain_timeout = drain and kubeconfig is not None, drain_timeout
        self.upgrade_timeout = upgrade_timeout

    # ---------------------------------------------------------------- Kubernetes side

    async def _kube(self, operation, *args):
        """Run operation(kube, *args) with a fresh KubeClient; HTTP and connection errors become RuntimeError."""
        from ansible_collections.netboot.talos.plugins.module_utils.talos.api import kubernetes

        api = kubernetes.KubeClient(self.kubeconfig)
        try:
            if asyncio.iscoroutinefunction(operation):
                return await operation(api, *args)
            return await asyncio.to_thread(operation, api, *args)
        except (OSError, ValueError) as exc:  # requests' errors are OSErrors
            raise RuntimeError("%s: %s" % (type(exc).__name__, exc))
        finally:
            api.close()

    def _cordon(self, entry, value):
        from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import drain

        return self._kube(drain.cordon if value else drain.uncordon, rollout.member_name(self.by_name[entry["name"]]))

    async def _drain(self, entry):
        from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import drain

        name = rollout.member_name(self.by_name[entry["name"]])
        await self._kube(drain.drain, name, self.drain_timeout, self.interval)

    # ---------------------------------------------------------------- Talos side

    def _install_stages(self, entry):
        def target():  # a fresh target per call
            return self.connector.secure(entry["ip"])

        if entry["api"] == "lifecycle":
            return [("pull installer", lambda: client.image_pull(target(), entry["image"], timeout=self.upgrade_timeout)),
                    ("install", lambda: client.lifecycle_upgrade(target(), entry["image"], timeout=self.upgrade_timeout)),
                    ("reboot", lambda: client.reboot(target()))]
        return [("upgrade", lambda: client.upgrade_legacy(target(), entry["image"], timeout=self.upgrade_timeout))]

    async def _runs_target(self, entry):
        target = self.connector.secure(entry["ip"])
        tag = (await client.version(target))["tag"]
        if not versions.same_release(tag, entry["version"]):
            raise RuntimeError("the node came back running %s, not %s" % (tag, entry["version"]))
        if entry["schematic"] is not None:
            booted = await running_schematic(target)
            if booted != entry["schematic"]:
                raise RuntimeError("the node came back with schematic %s, not %s" % (booted, entry["schematic"]))

    async def _services_healthy(self, entry):
        async def check():
            try:
                return service_problems(await client.service_list(self.connector.secure(entry["ip"])))
            except client.TalosApiError as exc:
                return exc.detail

        await self._until(check, self.ready_timeout, "services not healthy")

    async def converge(self, entry):
        """As Rollout's; a node cordoned for its upgrade is uncordoned again when it failed before
        anything was installed, and left cordoned (the message says so) when it failed later."""
        try:
            return await super().converge(entry)
        except rollout.StageError as exc:
            if not self.drain or exc.stage in ("etcd healthy before", "cordon"):
                raise
            if exc.stage not in UNTOUCHED_STAGES:
                raise rollout.StageError(entry, exc.stage, "%s; left cordoned, as the install had started: uncordon "
                                         "it once it runs healthy" % exc.message) from exc
            try:
                await self._cordon(entry, False)
                note = "uncordoned again, nothing was installed"
            except RuntimeError as undo:
                note = "nothing was installed, but uncordoning failed too (%s): it is still cordoned" % undo
            raise rollout.StageError(entry, exc.stage, "%s; %s" % (exc.message, note)) from exc

    def stages(self, entry):
        controlplane = entry["role"] == "controlplane"
        stages = [("etcd healthy before", self.wait_etcd) if controlplane else None,
                  ("cordon", lambda: self._cordon(entry, True)) if self.drain else None,
                  ("drain", lambda: self._drain(entry)) if self.drain else None]
        stages += self._install_stages(entry)
        stages += [("going down", lambda: self.wait_stage(entry, client.DOWN)),
                   ("coming back", lambda: self.wait_stage(entry, client.UP)),
                   ("runs the new version", lambda: self._runs_target(entry)),
                   ("services healthy", lambda: self._services_healthy(entry)),
                   ("etcd healthy after", self.wait_etcd) if controlplane else None,
                   ("kubernetes ready", lambda: self.wait_ready(entry)) if self.kubeconfig else None,
                   ("uncordon", lambda: self._cordon(entry, False)) if self.drain else None]
        return [stage for stage in stages if stage]
