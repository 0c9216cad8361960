# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""The controller's links of the chain: the Talos API and Kubernetes, and the config URL's 404
read in the light of what the node runs.

Pure functions over what talos_info and kubernetes_nodes returned.
"""

from __future__ import annotations

from ansible_collections.netboot.talos.plugins.module_utils.diagnose import verdicts as v

FOREIGN_CA = "not issued by the talosconfig's OS CA"
REJECTED_CLIENT = "rejected the client certificate"


def talos_api(node, probe, delivery):
    """Verdict on the node's Talos API from its talos_info entry (None when it was not probed)."""
    address = "%s:50000" % node["ip"]
    if probe is None:
        return v.skipped("talos_api", "not probed")
    stage, detail = probe.get("stage"), probe.get("detail") or probe.get("error") or ""
    if stage == "up":
        running = probe.get("version")
        if running and running != node["talos_version"]:
            return v.warning("talos_api", "Talos %s (talos_version)" % node["talos_version"],
                             "configured and up, but runs Talos %s" % running,
                             "the inventory moved on: upgrade the node, or set talos_version to what it runs")
        return v.ok("talos_api", "configured and up%s" % (", Talos " + running if running else ""))
    if stage == "maintenance":
        if delivery == "api":
            return v.warning("talos_api", "configured and up", "%s answers in maintenance mode, waiting for its config" % address,
                             "run playbooks/cluster.yml: it applies the config over the API")
        return v.broken("talos_api", "configured and up", "%s answers in maintenance mode: Talos booted without its config" % address,
                        "the config URL did not reach the kernel: see the config URL line; then reprovision the node")
    if stage == "down":
        return v.broken("talos_api", "configured and up", "no answer from %s (%s)" % (address, detail or "down"),
                        "the machine runs no Talos: look at its console (did it PXE boot? is the network first in the boot order?)")
    return _certificate_verdict(address, detail)


def _certificate_verdict(address, detail):
    if FOREIGN_CA in detail:
        return v.broken("talos_api", "a certificate issued by this cluster's OS CA",
                        "%s presents a certificate of another CA" % address,
                        "the secrets were regenerated since it was installed, or this IP belongs to a node of another "
                        "cluster: reprovision it (playbooks/reprovision.yml) or fix talos_ip")
    if REJECTED_CLIENT in detail:
        return v.broken("talos_api", "the node accepts the talosconfig", "%s refuses our client certificate" % address,
                        "the talosconfig is of another cluster or its CA changed: re-run playbooks/configs.yml, "
                        "or reprovision the node")
    return v.broken("talos_api", "configured and up", "%s: %s" % (address, detail or "unknown error"), "see the error")


def kubernetes(node, rows, error, expected_version=None):
    """Verdict on the node's Kubernetes Node object; rows is None when nothing could be read."""
    if rows is None:
        return v.skipped("kubernetes", error or "no kubeconfig yet (the cluster is not bootstrapped)")
    row = next((r for r in rows if r.get("name") == node["name"]), None)
    if row is None:
        return v.broken("kubernetes", "node %s registered and Ready" % node["name"], "not registered with the API server",
                        "its kubelet does not reach the API server: look at the Talos API line, then `talosctl logs kubelet`")
    if row.get("status") != "Ready":
        return v.broken("kubernetes", "Ready", "%s (kubelet %s)" % (row.get("status"), row.get("version")),
                        "look at the node's conditions (kubectl describe node %s)" % node["name"])
    version = row.get("version")
    if expected_version and version and version.lstrip("v") != expected_version.lstrip("v"):
        return v.warning("kubernetes", "kubelet %s (talos_kubernetes_version)" % expected_version,
                         "Ready, kubelet %s" % version, "a Kubernetes upgrade is due")
    return v.ok("kubernetes", "Ready, kubelet %s" % version)


def settle_config(node, config_verdict, api_verdict, withdraw):
    """A config URL answering 404: on purpose when withdrawal is on and the node runs its config."""
    if config_verdict["status"] != v.WITHDRAWN:
        return config_verdict
    url = config_verdict["seen"]
    if withdraw and api_verdict["status"] in (v.OK, v.WARN) and api_verdict["seen"].startswith("configured"):
        return v.ok("config", "%s: withdrawn on purpose (talos_config_withdraw), the node runs its config" % url)
    if withdraw:
        return v.broken("config", config_verdict["expected"], "%s: withdrawn, but the node does not run its config" % url,
                        "run playbooks/reprovision.yml -e nodes=%s (it serves the config again before the boot)" % node["name"])
    return v.broken("config", config_verdict["expected"], "%s: not published" % url, "re-run playbooks/boot_server.yml")
