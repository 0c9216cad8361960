# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""What talos_plan and talos_rollout share: reading their inputs, planning. options.load() imports it."""

from __future__ import annotations

import json
import os

from ansible_collections.netboot.talos.plugins.module_utils import files
from ansible_collections.netboot.talos.plugins.module_utils.talos import config as talos_config
from ansible_collections.netboot.talos.plugins.module_utils.talos import secrets
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import modules as api
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import plan as planning
# rollout is imported for talos_rollout, which reaches it through this module.
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import rollout  # noqa: F401 pylint: disable=unused-import


def read_staged(path):
    if not path:
        return {}
    raw = files.read_bytes(path)
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def write_staged(path, plans, staged, applied):
    """Keep the digest of each config staged by this run; forget nodes that now run their config."""
    if not path:
        return
    record = {name: digest for name, digest in staged.items()
              if any(e["name"] == name and e["action"] in ("pending", "staged") for e in plans)}
    record.update(applied)
    if record != staged:
        files.ensure_file(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode(), 0o600)


def _configs(params, bundle, problems):
    """Each node's config: rendered from its spec when it has one (so check mode plans the inventory
    as it is now, before configs.yml writes anything), else read from configs_dir."""
    configs = {}
    for node in params["nodes"]:
        if node.get("config") and bundle is not None:
            try:
                configs[node["name"]] = talos_config.render(bundle, node["config"]).encode("utf-8")
            except talos_config.SpecError as exc:
                problems.extend(exc.problems)
            continue
        path = os.path.join(params["configs_dir"], node["name"] + ".yaml")
        configs[node["name"]] = files.read_secret(path)
        if configs[node["name"]] is None:
            problems.append("%s: configs_dir: %s does not exist (render the configs first)" % (node["name"], path))
    return configs


def prepare(module):
    """(connector, configs, bundle, staged) from the module's options; fails listing every problem."""
    params = module.params
    problems, bundle = [], None
    if params["secrets"]:
        try:
            bundle = secrets.load(params["secrets"])
        except secrets.BundleError as exc:
            problems.append("secrets: %s" % exc)
    configs = _configs(params, bundle, problems)
    if problems:
        module.fail_json(msg="\n".join(problems), problems=problems)
    connector = api.connector(module)
    return connector, configs, bundle, read_staged(params["staged_record"])


def plan(module, connector, configs, bundle, staged):
    params = module.params
    try:
        return list(client.run(planning.plan_nodes(connector, params["nodes"], configs, params["apply_mode"], bundle, staged)))
    except client.TalosApiError as exc:
        api.fail(module, exc)


def plan_result(module, plans):
    """The keys both modules return about the plan."""
    result = dict(plan=plans, text=planning.text(plans, module.params["cluster"], module.params["apply_mode"]),
                  changing=[e["name"] for e in plans if e["changed"]])
    if module._diff:
        result["diff"] = planning.diffs(plans)
    return result
