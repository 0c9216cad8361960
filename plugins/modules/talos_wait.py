# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work happens in the action plugin of the same name (plugins/action/talos_wait.py): the
# controller polls the nodes and prints each change while it waits.

from __future__ import annotations

DOCUMENTATION = r"""
module: talos_wait
short_description: Wait for Talos nodes or Kubernetes nodes, printing each node's progress as it happens
version_added: 0.2.0
description:
  - Runs on the controller and polls every node in O(nodes) concurrently. Each stage change is
    printed at once, one line per node with its name and the seconds since the wait began, e.g.
    C(  cp1   maintenance -> configured and up   29.6 s); while nothing changes a short line says
    every O(progress_every) seconds how many are done and where the others are. The lines go to
    the terminal directly, so they show with any stdout callback and any C(ansible.cfg).
  - "Talos stages (O(wait_for=answering), O(wait_for=maintenance), O(wait_for=up)): no answer,
    maintenance mode, configured and up, as M(netboot.talos.talos_info) probes them; an error an
    O(endpoint) relays for a node is shown with the endpoint's words."
  - With O(configs_dir) each node gets its config C(<configs_dir>/<name>.yaml) applied in
    maintenance mode as soon as it answers there, while the others may still be booting.
  - Kubernetes stages (O(wait_for=ready)) - not registered, registered, Ready - read from the API
    server of O(kubeconfig) as M(netboot.talos.kubernetes_nodes) does; returns the node table.
  - With O(return_after) the wait ends as soon as those nodes reached the stage, and O(bootstrap)
    bootstraps etcd on a control plane the moment it is up, while the other nodes still boot.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
options:
  nodes:
    description: The nodes, each with its name (shown in every line; the Kubernetes node name) and IP.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Node name.
        type: str
        required: true
      ip:
        description: Address of its Talos API (not needed for O(wait_for=ready)).
        type: str
      role:
        description: Not used; lets a cluster's node list (name, role, ip) be passed as it is.
        type: str
  wait_for:
    description:
      - C(answering) - maintenance mode or up; C(maintenance) - maintenance mode only; C(up) -
        configured and up (needs O(talosconfig)); C(ready) - Ready in Kubernetes (needs O(kubeconfig)).
    type: str
    required: true
    choices: [answering, maintenance, up, ready]
  kubeconfig:
    description: Path of the kubeconfig, for O(wait_for=ready).
    type: path
  configs_dir:
    description: Directory of C(<name>.yaml) configs to apply in maintenance mode (config delivery over the API).
    type: path
  fingerprints:
    description: Node name to the SPKI SHA-256 fingerprint its maintenance-mode console prints; pins the apply.
    type: dict
    default: {}
  return_after:
    description: Names of nodes whose arrival ends the wait; default every node.
    type: list
    elements: str
    default: []
  bootstrap:
    description:
      - Name of the control plane to bootstrap etcd on as soon as it is configured and up, from
        within the wait (no task in between); skipped when etcd already has members. Only with
        O(wait_for=up).
    type: str
  bootstrap_timeout:
    description: Seconds to keep retrying the bootstrap while the node answers that it is not ready yet.
    type: float
    default: 600
  timeout:
    description: Seconds to wait in total.
    type: float
    default: 600
  interval:
    description: Seconds between probes of one node (at most 1 for the Talos stages).
    type: float
    default: 0.5
  progress_every:
    description: Seconds without a change before a line says who is still waiting.
    type: float
    default: 30
  fail_on_timeout:
    description: Fail when a node did not get there; otherwise report it in RV(failed_nodes) only.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: With O(configs_dir) a node in maintenance mode gets a dry-run apply and counts as done.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Changes something only when it applies a config to a node in maintenance mode or bootstraps etcd.
"""

EXAMPLES = r"""
- name: Wait until the first control plane is up, delivering configs in maintenance mode
  netboot.talos.talos_wait:
    talosconfig: clusters/home/talosconfig
    nodes:
      - {name: kube01, ip: 10.0.0.11}
      - {name: kube02, ip: 10.0.0.12}
    wait_for: up
    configs_dir: clusters/home/nodes
    return_after: [kube01]
    bootstrap: kube01

- name: Wait until every node is Ready
  netboot.talos.talos_wait:
    kubeconfig: clusters/home/kubeconfig
    nodes: [{name: kube01}, {name: kube02}]
    wait_for: ready
  register: ready
"""

RETURN = r"""
nodes:
  description:
    - Talos stages - per node name its stage, C(stage_text), C(version), C(reached), C(seconds),
      C(history) and C(ip).
    - O(wait_for=ready) - one dict per node with the columns of C(kubectl get nodes -o wide).
  returned: always
  type: raw
summary:
  description: "Talos stages: one line per node - name (ip): stage text, version, seconds until it got there."
  returned: when O(wait_for) is not C(ready)
  type: list
  elements: str
applied:
  description: Names of the nodes whose config was applied in maintenance mode.
  returned: when O(wait_for) is not C(ready)
  type: list
  elements: str
bootstrap:
  description: With O(bootstrap) - C(node), C(changed), C(reason) (e.g. C(etcd already has members (cp1))) and C(attempts).
  returned: when O(wait_for) is not C(ready)
  type: dict
failed_nodes:
  description: Names of the nodes that did not get there in time.
  returned: always
  type: list
  elements: str
reason:
  description: Why the wait did not end well - each node not there with its stage (and the last API error).
  returned: when a node did not get there
  type: str
table:
  description: The node table laid out like C(kubectl get nodes -o wide), header first.
  returned: when O(wait_for=ready)
  type: list
  elements: str
"""
