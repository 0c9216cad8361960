#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: boot_logs
short_description: Say what each machine last did, from the boot server's dnsmasq, tftpd and matchbox logs
version_added: 0.2.0
description:
  - Runs on the boot server and reads the end of dnsmasq's log (C(log-dhcp) lines), tftpd's read requests
    (syslog) and matchbox's HTTP requests (a file, or the log of its container).
  - Per node, its last DHCP exchange (messages, address, firmware kind, boot file), the files it fetched over
    TFTP and its iPXE requests to matchbox, with their times.
  - Requests from MACs that are in no host_vars are findings, each shown next to the node whose MAC is
    closest; a node with such a MAC one or two hex digits off gets a warning (a mistyped C(talos_mac)).
  - Logs that are not there are left out and named; with none at all, a skipped finding says so and no
    node gets a verdict. Reads only. Used by C(playbooks/diagnose.yml).
extends_documentation_fragment:
  - netboot.talos.attributes
author:
  - netboot.talos developers (@netboot-talos)
options:
  nodes:
    description: Validated nodes (the C(nodes) of M(netboot.talos.talos_inventory)); C(name), C(mac) and C(ip) are used.
    type: list
    elements: dict
    required: true
  dnsmasq_log:
    description: dnsmasq's log file (C(dhcp_log_file)); without it, dnsmasq's lines are looked for in O(syslog).
    type: path
  syslog:
    description:
      - The syslog file tftpd's C(RRQ from) lines go to.
      - Default the first of C(/var/log/syslog), C(/var/log/daemon.log) and C(/var/log/messages) that exists.
    type: path
  matchbox_log:
    description: A file holding matchbox's log. Without it, O(matchbox_container)'s log is read.
    type: path
  matchbox_container:
    description: matchbox's container (C(matchbox_container_name)), read with O(container_engine) C(logs) when that engine exists.
    type: str
  container_engine:
    description: The container engine running matchbox (C(matchbox_container_engine)).
    type: str
    default: podman
  max_bytes:
    description: How much of the end of each log to read.
    type: int
    default: 4194304
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Reads only.
"""

EXAMPLES = r"""
- name: Read what each machine last did
  netboot.talos.boot_logs:
    nodes: "{{ validated.nodes }}"
    dnsmasq_log: /var/log/netboot-talos-dnsmasq.log
    syslog: /var/log/syslog
    matchbox_container: matchbox
  register: machine_logs
"""

RETURN = r"""
nodes:
  description: Per node name, its C(logs) verdict (C(link), C(status), C(expected), C(seen), C(action)).
  returned: always
  type: dict
findings:
  description: Requests from MACs in no host_vars, each with the closest node.
  returned: always
  type: list
  elements: dict
sources:
  description: The logs read.
  returned: always
  type: list
  elements: str
missing:
  description: Log files given that do not exist.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils.diagnose import logs
from ansible_collections.netboot.talos.plugins.module_utils.diagnose import verdicts as v

SYSLOGS = ("/var/log/syslog", "/var/log/daemon.log", "/var/log/messages")


def tail(path, max_bytes):
    with open(path, "rb") as handle:
        handle.seek(max(0, os.path.getsize(path) - max_bytes))
        return handle.read().decode("utf-8", "replace").splitlines()


def container_log(module, engine, name, max_bytes):
    """The container's log lines (matchbox logs to stderr), or None when there is none to read."""
    binary = module.get_bin_path(engine)
    if not binary or not name:
        return None
    rc, out, err = module.run_command([binary, "logs", "--tail", "20000", name])
    if rc != 0:
        return None
    return (out + err)[-max_bytes:].splitlines()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", required=True),
            dnsmasq_log=dict(type="path"),
            syslog=dict(type="path"),
            matchbox_log=dict(type="path"),
            matchbox_container=dict(type="str"),
            container_engine=dict(type="str", default="podman"),
            max_bytes=dict(type="int", default=4 * 1024 * 1024),
        ),
        supports_check_mode=True,
    )
    params = module.params
    syslog = params["syslog"] or next((path for path in SYSLOGS if os.path.isfile(path)), None)
    activity, sources, missing = logs.Activity(), [], []
    readers = {}
    for path, read in ((params["dnsmasq_log"] or syslog, activity.read_dnsmasq), (syslog, activity.read_tftpd),
                       (params["matchbox_log"], activity.read_matchbox)):
        if path:
            readers.setdefault(path, []).append(read)
    for path, reads in readers.items():
        if not os.path.isfile(path):
            missing.append(path)
            continue
        lines = tail(path, params["max_bytes"])
        for read in reads:
            read(lines)
        sources.append(path)
    if not params["matchbox_log"]:
        lines = container_log(module, params["container_engine"], params["matchbox_container"], params["max_bytes"])
        if lines is not None:
            activity.read_matchbox(lines)
            sources.append("%s logs %s" % (params["container_engine"], params["matchbox_container"]))
    if not sources:
        why = "no boot server log to read%s: set dhcp_log_file, or -e diagnose_syslog=<file>" % (
            " (%s missing)" % ", ".join(missing) if missing else "")
        module.exit_json(changed=False, nodes={}, findings=[v.skipped("logs", why)], sources=[], missing=missing)
    nodes, findings = logs.verdicts(params["nodes"], activity, sources)
    module.exit_json(changed=False, nodes=nodes, findings=findings, sources=sources, missing=missing)


if __name__ == "__main__":
    main()
