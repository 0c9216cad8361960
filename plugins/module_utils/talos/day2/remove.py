# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Day 2, node removal: a node leaves the cluster stage by stage, one node at a time.

  cordon                  (Kubernetes node) spec.unschedulable, so nothing new lands on it
  drain                   (Kubernetes node) every pod but DaemonSet and mirror pods evicted; a
                          PodDisruptionBudget that blocks past the drain timeout fails naming the pod
  leave etcd              (etcd member) EtcdLeaveCluster on the node, or, when it does not answer,
                          EtcdRemoveMemberByID through a remaining control plane; then the remaining
                          members must no longer list it
  reset                   (node answers) Reset graceful, STATE and EPHEMERAL wiped, reboot or power off
  reset: going down       the configured API stops answering
  delete kubernetes node  (Kubernetes node) DELETE /api/v1/nodes/<name>

Before anything changes the whole removal is checked: never the last control plane, never a removal
that leaves etcd without quorum (each leaving member in turn: the healthy members left must still
be a majority of the members left). The first failing stage stops the removal naming node and stage
(Rollout's step machinery); a re-run continues, as finished stages find nothing left to do.
"""

from __future__ import annotations

import asyncio

from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import drain as draining
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import membership
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2.rollout import Rollout, member_name

WIPE = ("STATE", "EPHEMERAL")


def quorum(count):
    return count // 2 + 1


async def node_stage(connector, ip):
    try:
        return (await client.probe(connector, ip, timeout=3.0))[0]
    except client.TalosApiError:
        return client.ERROR


async def etcd_health(connector, found):
    """{member name: None when its node answers EtcdStatus with a leader and no errors, else why not}."""
    async def one(member):
        try:
            status = await client.etcd_status(connector.secure(member["ip"]), timeout=3.0)
        except client.TalosApiError as exc:
            return exc.detail
        if status["errors"]:
            return "; ".join(status["errors"])
        return None if status["leader"] else "no leader"

    etcd = [m for m in found.values() if m["etcd_id"] is not None]
    return dict(zip([m["name"] for m in etcd], await asyncio.gather(*(one(m) for m in etcd))))


def refusals(targets, found, health):
    """Why the removal must not start (the last control plane, etcd quorum); [] when it may."""
    etcd = [m["name"] for m in found.values() if m["etcd_id"] is not None]
    leaving = [t["name"] for t in targets if t["etcd_id"] is not None]
    if not leaving:
        return []
    if not set(etcd) - set(leaving):
        verb, plural = ("is", "") if len(leaving) == 1 else ("are", "s")
        return ["%s: refused: %s the cluster's last control plane%s; a cluster keeps at least one (reset it with "
                "talos_reset, non-graceful, to tear the cluster down)" % (", ".join(leaving), verb, plural)]
    count, healthy = len(etcd), [name for name in etcd if health.get(name) is None]
    unhealthy = ", ".join("%s (%s)" % (name, health[name]) for name in etcd if health.get(name) is not None)
    if len(healthy) < quorum(count):
        return ["%s: refused: etcd has no quorum now, %d of %d members healthy (not healthy: %s)"
                % (", ".join(leaving), len(healthy), count, unhealthy)]
    for name in leaving:
        count -= 1
        if name in healthy:
            healthy.remove(name)
        if len(healthy) < quorum(count):
            return ["%s: refused: removing it would break etcd quorum - %d of the %d members left would be healthy and "
                    "etcd needs %d (not healthy: %s)" % (name, len(healthy), count, quorum(count), unhealthy or "none")]
    return []


def entry_for(name, role, ip, member, stage):
    """A removal plan entry: what the node still is, so finished stages are skipped on a re-run."""
    member = member or {}
    etcd_id = member.get("etcd_id")
    kubernetes = bool(member.get("kubernetes"))
    changed = etcd_id is not None or kubernetes or stage == client.UP
    return {"name": name, "role": role, "ip": ip or member.get("ip", ""), "state": stage, "etcd_id": etcd_id,
            "kubernetes": kubernetes, "action": "remove" if changed else "none", "changed": changed}


async def plan(connector, nodes, names, found, absent=()):
    """Plan entries: the inventory nodes named in names, then the absent members (not in the inventory)."""
    by_name = {node["name"]: node for node in nodes}
    wanted = [(by_name[n]["name"], by_name[n]["role"], by_name[n]["ip"], found.get(member_name(by_name[n]))) for n in names]
    wanted += [(m["name"], m["role"], m["ip"], m) for m in absent]
    stages = await asyncio.gather(*(node_stage(connector, ip or (member or {}).get("ip", ""))
                                    for _name, _role, ip, member in wanted))
    return [entry_for(*item, stage=stage) for item, stage in zip(wanted, stages)]


def text(plans, check_mode):
    verb = "would remove" if check_mode else "removes"
    lines = []
    for entry in plans:
        if not entry["changed"]:
            lines.append("%s (%s): already out of the cluster" % (entry["name"], entry["ip"]))
            continue
        what = [w for w, present in (("cordon, drain", entry["kubernetes"]), ("leave etcd", entry["etcd_id"] is not None),
                                     ("reset", entry["state"] == client.UP), ("delete the Kubernetes node", entry["kubernetes"]))
                if present]
        lines.append("%s (%s, %s, %s): %s - %s" % (entry["name"], entry["ip"], entry["role"], entry["state"], verb, ", ".join(what)))
    return lines or ["nothing to remove"]


class Removal(Rollout):
    """Takes planned nodes out of the cluster (see the module docstring); run(plans, "1") does it."""

    def __init__(self, connector, found, kube=None, reboot=False, drain_timeout=300, reset_timeout=300, interval=1.0,
                 on_stage=None):
        super().__init__(connector, [], {}, reboot_timeout=reset_timeout, interval=interval, on_stage=on_stage)
        self.found, self.kube, self.reboot, self.drain_timeout = found, kube, reboot, drain_timeout
        self.leaving = set()

    @staticmethod
    async def _guard(awaitable):
        try:
            return await awaitable
        except RuntimeError:
            raise
        except Exception as exc:  # requests' connection, TLS and HTTP errors
            raise RuntimeError("Kubernetes API: %s: %s" % (type(exc).__name__, exc))

    def _kube(self, function, *args):
        return self._guard(asyncio.to_thread(function, self.kube, *args))

    def _remaining(self):
        return [m for m in self.found.values() if m["etcd_id"] is not None and m["name"] not in self.leaving]

    async def leave_etcd(self, entry):
        self.leaving.add(entry["name"])
        remaining = self._remaining()
        if entry["state"] == client.UP:
            await client.etcd_leave_cluster(self.connector.secure(entry["ip"]))
        else:
            await self._remove_member(entry, remaining)
        members = await membership.etcd_members(self.connector, [{"role": "controlplane", "ip": m["ip"]} for m in remaining])
        if any(m["id"] == entry["etcd_id"] for m in members):
            raise RuntimeError("the remaining etcd members still list %s" % entry["name"])

    async def _remove_member(self, entry, remaining):
        errors = []
        for member in remaining:
            try:
                return await client.etcd_remove_member(self.connector.secure(member["ip"]), entry["etcd_id"])
            except client.TalosApiError as exc:
                if exc.code == client.NOT_FOUND:
                    return None  # removed already
                errors.append(str(exc))
        raise RuntimeError("no remaining control plane removed the member %016x: %s" % (entry["etcd_id"], "; ".join(errors)))

    async def reset(self, entry):
        await client.reset(self.connector.secure(entry["ip"]), graceful=True, reboot=self.reboot, wipe=WIPE)

    async def gone(self, entry):
        results = await client.wait_for_stage(self.connector, [entry["ip"]], {client.DOWN, client.MAINTENANCE},
                                              self.reboot_timeout, interval=min(self.interval, 0.5), probe_timeout=2.0)
        if not results[entry["ip"]]["reached"]:
            stage = client.STAGE_TEXT.get(results[entry["ip"]]["stage"], "answering")
            raise TimeoutError("still %s after %ss" % (stage, self.reboot_timeout))

    def stages(self, entry):
        kubernetes = entry["kubernetes"] and self.kube is not None
        name = entry["name"]
        stages = [("cordon", lambda: self._kube(draining.cordon, name)) if kubernetes else None,
                  ("drain", lambda: self._guard(draining.drain(self.kube, name, timeout=self.drain_timeout, interval=self.interval)))
                  if kubernetes else None,
                  ("leave etcd", lambda: self.leave_etcd(entry)) if entry["etcd_id"] is not None else None,
                  ("reset", lambda: self.reset(entry)) if entry["state"] == client.UP else None,
                  ("reset: going down", lambda: self.gone(entry)) if entry["state"] == client.UP else None,
                  ("delete kubernetes node", lambda: self._kube(lambda kube, path: kube.delete(path), draining.node_path(name)))
                  if kubernetes else None]
        return [stage for stage in stages if stage]


async def prepare(connector, nodes, names, kube=None, remove_absent=False):
    """{found, absent, plans, problems}: what removing names (and, with remove_absent, the absent
    members) means now; problems are absent members not to be removed, or refusals."""
    found = await membership.members(connector, nodes, kube)
    missing = membership.absent(found, nodes)
    result = {"found": found, "absent": missing, "plans": [], "problems": []}
    if missing and not remove_absent:
        return dict(result, problems=membership.problems(missing))
    plans = await plan(connector, nodes, names, found, missing)
    changing = [entry for entry in plans if entry["changed"]]
    health = await etcd_health(connector, found) if changing else {}
    return dict(result, plans=plans, problems=refusals(changing, found, health))


def endpoints(nodes, plans, found):
    """The addresses of the inventory's control planes that stay etcd members once the planned nodes
    are gone: the talosconfig's endpoints."""
    gone = {entry["name"] for entry in plans}
    members = {name for name, member in found.items() if member["etcd_id"] is not None}
    return [node["ip"] for node in nodes if node["role"] == "controlplane" and node["name"] not in gone
            and (member_name(node) in members or not members)]
