# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""What every Talos API module shares: connection options, building a Connector, failing clearly."""

from __future__ import annotations

import copy
import os
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.netboot.talos.plugins.module_utils import libraries, vault
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client

CONNECTION_OPTIONS = dict(
    talosconfig=dict(type="path"),
    context=dict(type="str"),
    port=dict(type="int", default=client.API_PORT),
    endpoint=dict(type="str"),
    **vault.OPTIONS
)


def argument_spec(**options):
    spec = copy.deepcopy(CONNECTION_OPTIONS)
    spec.update(options)
    return spec


def check_requirements(module):
    try:
        libraries.check("yaml")  # cryptography is optional for the client
    except ImportError as exc:
        module.fail_json(msg=missing_required_lib(exc.name), exception=traceback.format_exc())
    if not client.HAS_GRPCLIB:
        module.fail_json(msg=missing_required_lib("grpclib"))


def open_connector(params, require_talosconfig=True, pin=None):
    """A Connector from talosconfig/context/port/endpoint; ValueError says which option is wrong."""
    path = params.get("talosconfig")
    if not path:
        if require_talosconfig:
            raise ValueError("talosconfig: a talosconfig path is required")
        return client.Connector(None, port=params["port"], endpoint=params.get("endpoint"), pin=pin)
    if not os.path.isfile(path):
        raise ValueError("talosconfig: %s does not exist" % path)
    try:
        credentials = client.Credentials.from_talosconfig(path, params.get("context"))
        return client.Connector(credentials, port=params["port"], endpoint=params.get("endpoint"), pin=pin)
    except ValueError as exc:
        raise ValueError("talosconfig: %s" % exc)


def connector(module, require_talosconfig=True, pin=None):
    """A Connector from the module's talosconfig/context/port/endpoint options; fails on bad input."""
    check_requirements(module)
    try:
        return open_connector(module.params, require_talosconfig, pin)
    except ValueError as exc:
        module.fail_json(msg=str(exc))


def fail(module, exc, **result):
    """Fail the module with a Talos API error: its message and the gRPC status it maps to."""
    result = dict(result, error=type(exc).__name__, grpc_code=exc.code, node=exc.node)
    module.fail_json(msg=str(exc), **result)
