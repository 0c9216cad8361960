# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Options of talos_plan and talos_rollout (importable without cryptography, so a missing library is reported)."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.netboot.talos.plugins.module_utils import libraries
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api

APPLY_MODES = ("auto", "no_reboot", "reboot", "staged")
NODE_OPTIONS = dict(
    name=dict(type="str", required=True),
    role=dict(type="str", required=True, choices=["controlplane", "worker"]),
    ip=dict(type="str", required=True),
    hostname=dict(type="str"),
    config=dict(type="dict"),
)
ARGUMENT_SPEC = api.argument_spec(
    cluster=dict(type="str", required=True),
    nodes=dict(type="list", elements="dict", required=True, options=NODE_OPTIONS),
    configs_dir=dict(type="path", required=True),
    secrets=dict(type="path"),
    apply_mode=dict(type="str", choices=list(APPLY_MODES), default="auto"),
    staged_record=dict(type="path"),
)


def load(module):
    """The day-2 helpers (day2/modules.py, which also carries client, api, planning and rollout);
    fails the module naming the library when PyYAML or cryptography is missing."""
    try:
        from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import modules as day2
        libraries.check()
    except ImportError as exc:
        module.fail_json(msg=missing_required_lib(exc.name), exception=traceback.format_exc())
    return day2
