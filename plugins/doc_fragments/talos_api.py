# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """Connection options of the modules that talk to the Talos API."""

    DOCUMENTATION = r"""
options:
  talosconfig:
    description:
      - Path of the talosconfig whose context holds the cluster's OS CA and an C(os:admin) client
        certificate (base64 PEM, as C(talosctl) writes it).
      - Connections are mTLS; the node's certificate must chain to that CA. The hostname check is
        off, since nodes are reached by addresses that need not be in their certificate's SANs.
    type: path
  context:
    description: Context of the talosconfig to use; default its C(context).
    type: str
  port:
    description: Talos API port of the nodes.
    type: int
    default: 50000
  endpoint:
    description:
      - Talos API endpoint to dial instead of each node itself; the call is then addressed to the
        node through the endpoint's apid with the C(nodes) metadata, and per-node errors are read
        from the reply's metadata. Maintenance-mode connections always dial the node.
    type: str
requirements:
  - grpclib (pure Python gRPC, uses the standard C(ssl) module; grpcio cannot verify Ed25519 certificates)
  - cryptography
  - PyYAML
"""
