#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_kubeconfig
short_description: Fetch the admin kubeconfig from a Talos control plane into a 0600 file
version_added: 0.1.0
description:
  - Calls C(Kubeconfig) on a control plane (retrying while it is not ready, until O(timeout)), unpacks
    the streamed tar.gz and writes its C(kubeconfig) to O(dest) with mode 0600.
  - Talos issues a new client certificate on every call, so the content always differs. The
    existing file is therefore kept (changed=false) when it is for the same cluster - same context,
    cluster name, server, CA and user - its client certificate was issued by that CA, and the
    certificate is valid for more than O(renew_days) days. Otherwise it is replaced.
  - Nothing secret is returned or shown in diffs. In check mode the kubeconfig is fetched (a read)
    and compared, but not written.
extends_documentation_fragment:
  - netboot.talos.attributes
  - netboot.talos.talos_api
  - netboot.talos.vault
author:
  - netboot.talos developers (@netboot-talos)
options:
  node:
    description: Address of a control plane.
    type: str
    required: true
  dest:
    description: Path of the kubeconfig file.
    type: path
    required: true
  renew_days:
    description: Replace the kept file when its client certificate expires within this many days.
    type: int
    default: 30
  force:
    description: Always write the freshly issued kubeconfig.
    type: bool
    default: false
  timeout:
    description: Seconds to keep retrying while the node answers FailedPrecondition or is unavailable.
    type: float
    default: 300
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The content is never shown, only its size.
  idempotent:
    support: full
    details: See the description for what counts as a change.
"""

EXAMPLES = r"""
- name: Kubeconfig of the cluster
  netboot.talos.talos_kubeconfig:
    talosconfig: clusters/home/talosconfig
    node: 10.0.0.11
    dest: clusters/home/kubeconfig
"""

RETURN = r"""
dest:
  description: The kubeconfig path.
  returned: always
  type: str
reason:
  description: Why the file was written or kept.
  returned: always
  type: str
server:
  description: The Kubernetes API server in the kubeconfig.
  returned: always
  type: str
cluster:
  description: The cluster name in the kubeconfig.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netboot.talos.plugins.module_utils import vault
from ansible_collections.netboot.talos.plugins.module_utils import files
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import kubernetes
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api


def main():
    module = AnsibleModule(
        argument_spec=api.argument_spec(
            node=dict(type="str", required=True),
            dest=dict(type="path", required=True),
            renew_days=dict(type="int", default=30),
            force=dict(type="bool", default=False),
            timeout=dict(type="float", default=300),
        ),
        supports_check_mode=True,
    )
    vault.configure(module)
    params = module.params
    if params["renew_days"] < 0:
        module.fail_json(msg="renew_days: must not be negative")
    target = api.connector(module).secure(params["node"])
    try:
        content, _attempts = client.run(client.retry(lambda: client.kubeconfig(target), params["timeout"]))
    except client.TalosApiError as exc:
        api.fail(module, exc, dest=params["dest"])
    try:
        fetched = kubernetes.parse_kubeconfig(content)
    except kubernetes.KubeconfigError as exc:
        module.fail_json(msg="node %s returned %s" % (params["node"], exc))
    dest = params["dest"]
    existing = files.read_secret(dest)
    result = dict(dest=dest, server=fetched["server"], cluster=fetched["cluster"])
    reason = None if params["force"] else kubernetes.keep_existing(existing, fetched, params["renew_days"])
    if reason:
        changed, _previous = files.ensure_secret_file(dest, existing, 0o600, check_mode=module.check_mode)
        module.exit_json(changed=changed, reason=reason + (" (mode set to 0600)" if changed else ""), **result)
    changed, previous = files.ensure_secret_file(dest, content, 0o600, check_mode=module.check_mode)
    result["reason"] = "forced" if params["force"] else ("new file" if existing is None else "different cluster or certificate due for renewal")
    if module._diff:
        result["diff"] = files.text_diff(dest, previous, content, hidden=True)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
