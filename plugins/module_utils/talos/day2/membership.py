# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Day 2, who is in the cluster: its etcd members and Kubernetes nodes, and which of them the inventory lacks.

A member is known by its name (etcd member name = Kubernetes node name = the node's hostname) and
an address (the etcd peer URL's host, or the Kubernetes node's InternalIP). A member whose name no
inventory node has is absent: the plan stops naming it unless talos_cluster_remove_absent is true.
"""

from __future__ import annotations

import asyncio
import urllib.parse

from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2.rollout import member_name

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"


class MembershipError(RuntimeError):
    """The cluster's members cannot be read."""


def _host(url):
    try:
        return urllib.parse.urlsplit(url).hostname or ""
    except ValueError:
        return ""


async def etcd_members(connector, nodes, timeout=5.0):
    """The etcd member list as the first control plane of nodes that answers gives it."""
    errors = []
    for node in [n for n in nodes if n["role"] == "controlplane"]:
        try:
            members = await client.etcd_members(connector.secure(node["ip"]), timeout=timeout)
        except client.TalosApiError as exc:
            errors.append(str(exc))
            continue
        return [dict(member, ip=next((_host(u) for u in member["peer_urls"] if _host(u)), "")) for member in members]
    raise MembershipError("no control plane lists the etcd members (%s)" % ("; ".join(errors) or "the inventory has none"))


def kubernetes_nodes(kube):
    """[{name, ip, controlplane}] of the Kubernetes nodes (kube: a KubeClient)."""
    try:
        items = kube.get("/api/v1/nodes").get("items", [])
    except Exception as exc:  # requests' connection, TLS and HTTP errors
        raise MembershipError("the Kubernetes API does not list the nodes: %s: %s" % (type(exc).__name__, exc))
    rows = []
    for item in items:
        metadata, status = item.get("metadata") or {}, item.get("status") or {}
        ip = next((a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), "")
        rows.append({"name": metadata.get("name", ""), "ip": ip,
                     "controlplane": CONTROL_PLANE_LABEL in (metadata.get("labels") or {})})
    return rows


async def members(connector, nodes, kube=None):
    """{name: {name, ip, role, etcd_id, kubernetes}}: every etcd member and (with kube) Kubernetes node."""
    found = {}
    for member in await etcd_members(connector, nodes):
        found[member["hostname"]] = {"name": member["hostname"], "ip": member["ip"], "role": "controlplane",
                                     "etcd_id": member["id"], "kubernetes": False}
    if kube is not None:
        for row in await asyncio.to_thread(kubernetes_nodes, kube):
            entry = found.setdefault(row["name"], {"name": row["name"], "ip": row["ip"], "etcd_id": None,
                                                   "role": "controlplane" if row["controlplane"] else "worker"})
            entry.update(kubernetes=True, ip=entry["ip"] or row["ip"])
    return found


def absent(found, nodes):
    """The members (as found by members()) that no inventory node names, sorted by name."""
    known = {member_name(node) for node in nodes}
    return [found[name] for name in sorted(found) if name not in known]


def describe(member):
    kinds = [kind for kind, present in (("etcd member", member["etcd_id"] is not None),
                                        ("Kubernetes node", member["kubernetes"])) if present]
    return "%s (%s; %s)" % (member["name"], member["ip"] or "no address", ", ".join(kinds))


def problems(missing):
    """One line per absent member, saying what to do."""
    return ["cluster member %s is not in the inventory: add it back, or set talos_cluster_remove_absent: true "
            "to remove it from the cluster" % describe(member) for member in missing]
