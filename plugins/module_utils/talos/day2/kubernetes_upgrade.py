# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Day 2, the Kubernetes upgrade: talosctl upgrade-k8s's order, one component at a time.

What runs is read from the Kubernetes API: the server's /version, each control plane's mirror pods
(kube-apiserver-<node>, kube-controller-manager-<node>, kube-scheduler-<node>), the kube-proxy pods
(kube-system, label k8s-app=kube-proxy, the lowest version any of them runs, as upgrade-k8s finds
its --from; the DaemonSet's template when there are none) and each node's kubeletVersion. Pre-checks refuse, before anything changes and naming
every node concerned: a downgrade, more than one minor version at a time, and a version the Talos a
node runs does not support (versions.py). Nodes that do not answer are refused too.

Then, in this order, each step a config change applied without a reboot and waited for:
  kube-apiserver, kube-controller-manager, kube-scheduler on each control plane (its mirror pod
  runs the new image), kube-proxy on each control plane (no wait, as talosctl: the DaemonSet
  follows the config only through the manifest sync), kubelet on every node, control planes first
  (the node reports the new kubeletVersion), then the bootstrap manifest sync.
The manifest sync (upgrade-k8s's last step): the objects Talos rendered from the new config, read from
the first control plane (COSI Manifests.kubernetes.talos.dev, namespace controlplane), are applied to
the Kubernetes API with server-side apply, field manager `talos`, forcing conflicts; then it waits
until the kube-proxy DaemonSet has rolled out (observedGeneration caught up, every scheduled pod
updated) and every kube-proxy pod runs the new image. Talos itself only creates these objects at
bootstrap, so without the sync kube-proxy would never move and every run would plan it again.
(talosctl applies with UPDATE while a node runs Talos < 1.13; server-side apply gives the same objects,
and the inventory/prune part of talosctl's sync is not done.)
The config of a step is the node's rendered config with that component and the earlier ones at
the new version and the later ones still at what runs. A component that already runs the new
version is no step. The first failure stops the upgrade; a re-run continues where it stopped.
"""

from __future__ import annotations

import asyncio

from ansible_collections.netboot.talos.plugins.module_utils.talos import config as talos_config
from ansible_collections.netboot.talos.plugins.module_utils.talos import versions
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import rollout

COMPONENTS = [name for name, _unused in versions.KUBERNETES_COMPONENTS]
TITLES = {"apiserver": "kube-apiserver", "controller_manager": "kube-controller-manager", "scheduler": "kube-scheduler",
          "proxy": "kube-proxy", "kubelet": "kubelet"}
TITLES["manifests"] = "bootstrap manifests"
STATIC_PODS = ("apiserver", "controller_manager", "scheduler")
VARIABLE = "talos_kubernetes_version"
FIELD_MANAGER = "talos"  # constants.KubernetesFieldManagerName
PROXY_APP = "kube-proxy"


class RefusedError(Exception):
    """Pre-checks failed; ``problems`` names the nodes."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__("%s: nothing changed:\n%s" % (VARIABLE, "\n".join("- " + p for p in problems)))


def image_version(image):
    """`registry.k8s.io/kube-apiserver:v1.34.1` -> `1.34.1` (None without a tag)."""
    name = (image or "").rsplit("/", 1)[-1]
    return name.split(":", 1)[1].lstrip("v") if ":" in name else None


def _container_version(pod_spec, name):
    containers = pod_spec.get("containers") or []
    chosen = next((c for c in containers if c.get("name") == name), containers[0] if containers else {})
    return image_version(chosen.get("image"))


def observe(api, nodes):
    """What runs: {server, proxy, nodes: {name: {component: version}}} from the Kubernetes API."""
    server = (api.get("/version").get("gitVersion") or "").lstrip("v")
    kube_nodes = {item["metadata"]["name"]: item for item in api.get("/api/v1/nodes").get("items", [])}
    pods = {item["metadata"]["name"]: item for item in api.get("/api/v1/namespaces/kube-system/pods").get("items", [])}
    daemonset = api.get("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy")
    proxy_pods = [p for p in pods.values() if ((p.get("metadata") or {}).get("labels") or {}).get("k8s-app") == PROXY_APP]
    running = [v for v in (_container_version(p.get("spec") or {}, PROXY_APP) for p in proxy_pods) if v]
    if running:
        proxy = min(running, key=_core)
    else:
        proxy = _container_version(daemonset.get("spec", {}).get("template", {}).get("spec", {}), PROXY_APP)
    seen = {}
    for node in nodes:
        name = kubernetes_name(node)
        info = (kube_nodes.get(name) or {}).get("status", {}).get("nodeInfo", {})
        current = {"kubelet": (info.get("kubeletVersion") or "").lstrip("v") or None, "proxy": proxy}
        if node["role"] == "controlplane":
            for component in STATIC_PODS:
                pod = pods.get("%s-%s" % (TITLES[component], name)) or {}
                current[component] = _container_version(pod.get("spec") or {}, TITLES[component])
        seen[node["name"]] = current
    return {"server": server, "proxy": proxy, "nodes": seen, "proxy_rollout": rollout_problem(daemonset),
            "proxy_pods": sorted(running, key=_core)}


def rollout_problem(daemonset):
    """None when the DaemonSet has rolled out its current template (kubectl rollout status), else what is left."""
    status, generation = daemonset.get("status") or {}, (daemonset.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return "the DaemonSet controller has not seen generation %s yet" % generation
    desired, updated = status.get("desiredNumberScheduled", 0), status.get("updatedNumberScheduled", 0)
    if updated < desired:
        return "%d of %d pods updated" % (updated, desired)
    return None


def kubernetes_name(node):
    """The node's Kubernetes node name: its config's hostname, else its name."""
    return (node.get("config") or {}).get("hostname") or rollout.member_name(node)


def _core(version):
    return versions.kubernetes_core(version)


def lowest(state):
    """The oldest version any component runs (talosctl's --from), None when nothing reports one."""
    found = [v for current in state["nodes"].values() for v in current.values() if v] + [state["server"]]
    found = [v for v in found if v]
    return min(found, key=_core) if found else None


def check(state, target, talos_versions, by_name):
    """Every reason to refuse the upgrade to target (empty: go)."""
    problems = []
    where = {name: "%s (%s)" % (name, by_name[name]["ip"]) for name in by_name}
    newer = sorted("%s runs %s %s" % (where[n], TITLES[c], v) for n, current in state["nodes"].items()
                   for c, v in current.items() if v and _core(v) > _core(target))
    if newer:
        problems.append("%s would be a downgrade (%s)" % (target, "; ".join(newer)))
    minor = _core(target)[:2]
    older = sorted({"%s runs %s %s" % (where[n], TITLES[c], v) for n, current in state["nodes"].items()
                    for c, v in current.items() if v and _core(v)[:2] < (minor[0], minor[1] - 1)})
    if older:
        problems.append("%s is more than one minor version ahead; upgrade one minor at a time (%s)" % (target, "; ".join(older)))
    for name, tag in sorted(talos_versions.items()):
        try:
            versions.check_kubernetes(tag, target)
        except versions.VersionError as exc:
            problems.append("%s: %s" % (where[name], exc))
    return problems


def plan(nodes, state, target):
    """The steps in talosctl's order: one entry per (component, node) that does not run target yet."""
    controlplanes = [n for n in nodes if n["role"] == "controlplane"]
    workers = [n for n in nodes if n["role"] != "controlplane"]
    entries = []
    for component in COMPONENTS:
        for node in controlplanes + (workers if component == "kubelet" else []):
            running = state["nodes"][node["name"]].get(component)
            if running == target.lstrip("v"):
                continue
            entries.append({"name": node["name"], "role": node["role"], "ip": node["ip"], "component": component,
                            "from": running, "to": target.lstrip("v"), "action": "no_reboot"})
    if controlplanes and state["proxy"] != target.lstrip("v"):
        first = controlplanes[0]
        entries.append({"name": first["name"], "role": first["role"], "ip": first["ip"], "component": "manifests",
                        "from": state["proxy"], "to": target.lstrip("v"), "action": "sync"})
    return entries


def text(entries, target, check_mode):
    """The steps as lines for people."""
    if not entries:
        return ["Kubernetes: every node runs %s; nothing to upgrade" % target]
    rows = [("STEP", "NODE", "COMPONENT", "FROM", "TO")]
    rows += [(str(i + 1), e["name"], TITLES[e["component"]], e["from"] or "?", e["to"]) for i, e in enumerate(entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    verb = "would apply" if check_mode else "applies"
    changes = len([e for e in entries if e["component"] != "manifests"])
    sync = ", then syncs the bootstrap manifests" if changes < len(entries) else ""
    head = "Kubernetes upgrade to %s: %s %d config changes without a reboot%s, in this order" % (target, verb, changes, sync)
    return [head] + ["   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


class KubernetesUpgrade(rollout.Rollout):
    """Moves every node to one Kubernetes version in talosctl upgrade-k8s's order (module docstring)."""

    def __init__(self, connector, nodes, bundle, kubeconfig, target, timeout=300, interval=1.0, on_stage=None):
        super().__init__(connector, nodes, {}, bundle=bundle, kubeconfig=kubeconfig, interval=interval, on_stage=on_stage)
        self.target = target.lstrip("v")
        self.timeout = timeout
        self.state = None

    async def observe(self):
        from ansible_collections.netboot.talos.plugins.module_utils.talos.api import kubernetes

        def read():
            api = kubernetes.client_from_file(self.kubeconfig)
            try:
                return observe(api, self.nodes)
            finally:
                api.close()

        return await asyncio.to_thread(read)

    async def talos_versions(self):
        """{name: running Talos tag}; RefusedError naming the nodes that do not answer."""
        found, problems = {}, []
        for node in self.nodes:
            try:
                stage, detail, tag = await client.probe(self.connector, node["ip"], timeout=5.0)
            except client.TalosApiError as exc:
                stage, detail, tag = client.ERROR, str(exc), None
            if stage == client.UP and tag:
                found[node["name"]] = tag
            else:
                problems.append("%s (%s): not up (%s); every node must answer" % (node["name"], node["ip"], detail))
        if problems:
            raise RefusedError(problems)
        return found

    async def prepare(self):
        """Pre-checks, then the planned steps; RefusedError before anything changes."""
        try:
            talos, unanswered = await self.talos_versions(), None
        except RefusedError as exc:
            talos, unanswered = {}, exc
        try:
            self.state = await self.observe()
        except Exception as exc:  # connection, TLS, HTTP and kubeconfig errors
            raise RefusedError(["the Kubernetes API cannot be read: %s: %s" % (type(exc).__name__, exc)])
        entries = plan(self.nodes, self.state, self.target)
        if not entries or (unanswered and all(entry["from"] is None for entry in entries)):
            # Nothing known to be behind needs no node to answer: a config rollout may follow while
            # nodes are down or not registered yet.
            return []
        if unanswered:
            raise unanswered
        problems = check(self.state, self.target, talos, self.by_name)
        if problems:
            raise RefusedError(problems)
        for entry in (e for e in entries if e["component"] != "manifests"):
            try:
                self.render(entry)
            except talos_config.SpecError as exc:
                raise RefusedError(exc.problems)
        return entries

    def render(self, entry):
        """The node's config with entry's component and the earlier ones at the target, later ones as they run."""
        node = self.by_name[entry["name"]]
        step = COMPONENTS.index(entry["component"])
        fallback = lowest(self.state) or self.target
        current = self.state["nodes"][node["name"]]
        components = {c: self.target if i <= step else (current.get(c) or fallback) for i, c in enumerate(COMPONENTS)}
        spec = dict(node["config"], kubernetes_version=self.target, kubernetes_components=components)
        return talos_config.render(self.bundle, spec).encode("utf-8")

    async def apply(self, entry):
        await client.apply_configuration(self.connector.secure(entry["ip"]), self.render(entry), "no_reboot")

    async def wait_component(self, entry):
        async def reports():
            try:
                self.state = await self.observe()
            except Exception as exc:  # retried until the timeout
                return "%s: %s" % (type(exc).__name__, exc)
            running = self.state["nodes"][entry["name"]].get(entry["component"])
            if running == self.target:
                return None
            return "%s reports %s" % (TITLES[entry["component"]], running or "nothing")

        await self._until(reports, self.timeout, "%s not at %s" % (TITLES[entry["component"]], self.target))

    async def sync_manifests(self, entry):
        """Server-side apply of every bootstrap manifest object the control plane renders now."""
        from ansible_collections.netboot.talos.plugins.module_utils.talos.api import kubernetes

        objects = await client.bootstrap_manifests(self.connector.secure(entry["ip"]))
        if not objects:
            raise RuntimeError("the node lists no %s resources in namespace %s" % (client.MANIFESTS[1], client.MANIFESTS[0]))

        def apply_all():
            api = kubernetes.client_from_file(self.kubeconfig)
            try:
                for item in objects:
                    api.apply(kubernetes.object_path(item), item, FIELD_MANAGER)
            except (OSError, ValueError) as exc:  # requests' errors are OSErrors
                raise RuntimeError("%s: %s" % (type(exc).__name__, exc))
            finally:
                api.close()

        await asyncio.to_thread(apply_all)

    async def wait_proxy(self):
        async def reports():
            try:
                self.state = await self.observe()
            except Exception as exc:  # retried until the timeout
                return "%s: %s" % (type(exc).__name__, exc)
            if self.state["proxy_rollout"]:
                return self.state["proxy_rollout"]
            behind = [v for v in self.state["proxy_pods"] if v != self.target]
            if behind or not self.state["proxy_pods"]:
                return "kube-proxy pods run %s" % (", ".join(sorted(set(behind))) or "nothing")
            return None

        await self._until(reports, self.timeout, "kube-proxy not at %s" % self.target)

    def stages(self, entry):
        title = TITLES[entry["component"]]
        if entry["component"] == "manifests":
            return [("%s: server-side apply" % title, lambda: self.sync_manifests(entry)),
                    ("kube-proxy: runs %s" % self.target, self.wait_proxy)]
        stages = [("%s: apply" % title, lambda: self.apply(entry))]
        if entry["component"] != "proxy":
            stages.append(("%s: runs %s" % (title, self.target), lambda: self.wait_component(entry)))
        return stages

    async def run(self, entries):
        """Each step in turn, stopping at the first failure. Returns the outcome like Rollout.run."""
        outcome = {"steps": [[e["name"], e["component"]] for e in entries], "applied": [], "records": [], "failures": [],
                   "untouched": []}
        for index, entry in enumerate(entries):
            try:
                record = await self.converge(entry)
            except rollout.StageError as exc:
                outcome["failures"].append({"node": entry["name"], "ip": entry["ip"], "stage": exc.stage,
                                            "message": exc.message, "msg": str(exc)})
                outcome["untouched"] = [[e["name"], e["component"]] for e in entries[index + 1:]]
                break
            record["component"] = entry["component"]
            outcome["applied"].append([entry["name"], entry["component"]])
            outcome["records"].append(record)
        return outcome
