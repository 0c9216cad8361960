# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side netboot.talos.diagnose_report: one verdict per node and link, printed for people."""

from __future__ import annotations

import json
import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.netboot.talos.plugins.module_utils.diagnose import cluster
from ansible_collections.netboot.talos.plugins.module_utils.diagnose import verdicts as v

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("nodes", "boot_chain", "dhcp", "logs", "talos", "kubernetes", "delivery", "withdraw", "report_file"))
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        for required in ("nodes", "boot_chain"):
            if required not in args:
                raise AnsibleActionFail("diagnose_report: the option %r is required" % required)
        nodes, boot_chain = args["nodes"], merged_boot_chain(args["boot_chain"])
        probes = (args.get("talos") or {}).get("nodes") or {}
        rows, kube_error = kubernetes_rows(args.get("kubernetes"))
        extra_links, extra_findings = boot_server_results(args, nodes)
        verdicts = {}
        for node in nodes:
            api = cluster.talos_api(node, probes.get(node["ip"]), args.get("delivery", "http"))
            links = []
            for entry in boot_chain.get("nodes", {}).get(node["name"], []):
                links.append(cluster.settle_config(node, entry, api, bool(args.get("withdraw"))) if entry["link"] == "config" else entry)
            expected_kubernetes = (node.get("config") or {}).get("kubernetes_version")
            links += extra_links[node["name"]]
            verdicts[node["name"]] = v.ordered(links + [api, cluster.kubernetes(node, rows, kube_error, expected_kubernetes)])
        findings = boot_chain.get("findings", []) + extra_findings
        display.display(v.report_text(nodes, verdicts, findings))
        report = {"nodes": verdicts, "findings": findings,
                  "broken": sorted(name for name, links in verdicts.items() if v.is_broken(links))}
        if args.get("report_file"):
            write_json(args["report_file"], report)
        result.update(changed=False, report=report)
        if report["broken"] or v.is_broken(findings):
            where = ["%s: %s" % (name, v.LINK_TITLES[v.first_broken(verdicts[name])["link"]]) for name in report["broken"]]
            result.update(failed=True, msg="broken links: %s" % ("; ".join(where) or v.broken_servers_text(findings)))
        return result


def per_boot_server(result):
    """[(boot server, result)]: a check's result registered over a loop of boot servers (the diagnose
    role's loop_var diagnose_server), each tagged with its boot server; a single result as it is."""
    result = result or {}
    if not isinstance(result.get("results"), list):
        return [(None, result)]
    return [(item.get("diagnose_server", item.get("item")), item) for item in result["results"]]


def tagged(findings, server, servers):
    """Findings with the boot server they are about, when more than one boot server was checked."""
    if len(servers) < 2 or server is None:
        return list(findings)
    return [dict(entry, boot_server=server) for entry in findings]


def merged_boot_chain(result):
    """One boot_chain_check result ({nodes, findings}) from one run per boot server."""
    runs = per_boot_server(result)
    nodes, findings = {}, []
    for server, run in runs:
        nodes.update(run.get("nodes") or {})
        findings += tagged(run.get("findings") or [], server, runs)
    return {"nodes": nodes, "findings": findings}


def boot_server_results(args, nodes):
    """The DHCP and log verdicts per node, and their findings. A check that was not asked adds
    nothing; one that could not run adds a finding saying why."""
    per_node, findings = {node["name"]: [] for node in nodes}, []
    for link in ("dhcp", "logs"):
        runs = per_boot_server(args.get(link))
        for server, result in runs:
            if result.get("failed"):
                findings += tagged([v.warning(link, "the %s check runs on the boot server" % v.LINK_TITLES[link],
                                              "%s not checked: %s" % (v.LINK_TITLES[link], result.get("msg", "")),
                                              "install what it names")], server, runs)
                continue
            for name in per_node:
                per_node[name] += (result.get("nodes") or {}).get(name, [])
            findings += tagged(result.get("findings") or [], server, runs)
    return per_node, findings


def kubernetes_rows(kubernetes_result):
    """(rows, error): the Node rows read, or None and why nothing could be read."""
    if not kubernetes_result or kubernetes_result.get("skipped"):
        return None, None
    if kubernetes_result.get("failed"):
        return None, "the Kubernetes API could not be read: %s" % kubernetes_result.get("msg", "")
    return kubernetes_result.get("nodes") or [], None


def write_json(path, report):
    """The report as JSON, replacing the file atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".diagnose.")
    with os.fdopen(fd, "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
