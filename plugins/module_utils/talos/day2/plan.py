# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Day 2, the plan: what applying each node's rendered config to the node that runs would do.

Each node that is up gets its rendered config as an ApplyConfiguration dry run over mTLS (nothing
is stored); Talos answers with the mode it would use and its own diff of the active config against
the submitted one. Every secret is redacted from that diff before it leaves this module. Nodes that
do not answer or wait in maintenance mode are listed as such, never touched.

A plan entry: {name, role, ip, state, detail, action, changed, diff, reason}
  state  up / down / maintenance / error
  action none (nothing to change), no_reboot, reboot, staged, pending (this very config is staged
         and waits for a reboot), refused (Talos would need a reboot that talos_cluster_apply_mode
         no_reboot forbids, or rejects the config), skipped (not up)
"""

from __future__ import annotations

import asyncio
import hashlib
import re

from ansible_collections.netboot.talos.plugins.module_utils.talos import config as talos_config
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client

NO_CHANGES = "No changes."
DIFF_MARKER = "Config diff:\n\n"
IMMEDIATE_MARKER = "can't be applied in immediate mode"
REDACTED = "<redacted>"
# YAML keys whose values are secrets wherever they appear in a config (keys, certificates, tokens,
# ids, registry credentials), and base64 PEM ("-----" encodes as LS0tLS) anywhere.
SECRET_KEY = re.compile(r"^(?P<lead>[ +-]?\s*(?:-\s+)?)(?P<key>[A-Za-z0-9_]*(?:key|Key|crt|token|Token|secret|Secret|password|"
                        r"auth|identitytoken|identityToken)|id):[ \t]+(?P<value>\S.*)$")
PEM_BASE64 = re.compile(r"LS0tLS[A-Za-z0-9+/=]+")

ACTION_TEXT = {
    "none": "no change",
    "no_reboot": "apply without a reboot",
    "reboot": "apply with a reboot",
    "staged": "stage for the next reboot",
    "pending": "staged, waits for the next reboot",
    "refused": "refused",
    "skipped": "skipped",
}
CHANGING = ("no_reboot", "reboot", "staged")


def redact(text, bundle=None):
    """text with every secret replaced by <redacted>: the bundle's values, values of secret keys, PEM."""
    if bundle is not None:
        text = talos_config.redact(text, bundle)
    lines = []
    for line in text.split("\n"):
        match = SECRET_KEY.match(line)
        if match and match.group("value") not in ('""', "''", "[]", "{}", REDACTED):
            line = "%s%s: %s" % (match.group("lead"), match.group("key"), REDACTED)
        lines.append(PEM_BASE64.sub(REDACTED, line))
    return "\n".join(lines)


def config_digest(data):
    return hashlib.sha256(data).hexdigest()


def split_details(details):
    """(summary, diff) of a dry run's mode_details; diff is '' when Talos says No changes."""
    summary, _unused, diff = details.partition(DIFF_MARKER)
    diff = diff.strip("\n")
    return summary.strip(), "" if diff == NO_CHANGES else diff + "\n"


async def plan_node(connector, node, data, apply_mode, bundle=None, staged_digest=None, timeout=30.0):
    """The plan entry of one node (see the module docstring); never changes the node."""
    entry = dict(name=node["name"], role=node["role"], ip=node["ip"], state=None, detail="", action="skipped",
                 changed=False, diff="", reason="")
    try:
        stage, detail, _tag = await client.probe(connector, node["ip"])
    except client.TalosApiError as exc:
        return dict(entry, state="error", detail=redact(str(exc), bundle))
    entry.update(state=stage, detail=detail)
    if stage != client.UP:
        return entry
    target = connector.secure(node["ip"])
    try:
        reply = await client.apply_configuration(target, data, "auto" if apply_mode == "no_reboot" else apply_mode,
                                                 dry_run=True, timeout=timeout)
        summary, diff = split_details(reply["mode_details"])
        entry.update(diff=redact(diff, bundle), detail=summary)
        if not diff:
            return dict(entry, action="none")
        action = reply["mode"] if apply_mode == "auto" else apply_mode
        if apply_mode == "no_reboot" and reply["mode"] == "reboot":
            # Talos's own refusal lists just the changes that need the reboot.
            await client.apply_configuration(target, data, "no_reboot", dry_run=True, timeout=timeout)
            action = "no_reboot"
    except client.InvalidArgument as exc:
        reason = exc.detail
        if IMMEDIATE_MARKER in reason:
            reason = "needs a reboot, which apply mode no_reboot forbids; the changes that need it:\n" \
                     + reason.split("diff:\n", 1)[-1]
        else:
            reason = "Talos rejects the config: " + reason
        return dict(entry, action="refused", reason=redact(reason, bundle))
    except client.TalosApiError as exc:
        return dict(entry, state="error", detail=redact(str(exc), bundle))
    if action == "staged" and staged_digest == config_digest(data):
        return dict(entry, action="pending")
    return dict(entry, action=action, changed=True)


async def plan_nodes(connector, nodes, configs, apply_mode, bundle=None, staged=None):
    """Plan entries of every node, planned concurrently, in the order of nodes."""
    staged = staged or {}
    return await asyncio.gather(*(plan_node(connector, node, configs[node["name"]], apply_mode, bundle,
                                            staged.get(node["name"])) for node in nodes))


def problems(plans):
    """Lines naming each node the rollout must not start with: refused configs, errors."""
    lines = []
    for entry in plans:
        where = "%s (%s)" % (entry["name"], entry["ip"])
        if entry["action"] == "refused":
            lines.append("%s: %s" % (where, entry["reason"].rstrip("\n")))
        elif entry["state"] == "error":
            lines.append("%s: %s" % (where, entry["detail"]))
    return lines


def describe(entry):
    if entry["state"] != client.UP:
        return "%s: %s" % (ACTION_TEXT["skipped"], client.STAGE_TEXT.get(entry["state"], entry["detail"]))
    if entry["action"] == "refused":
        return "%s: %s" % (ACTION_TEXT["refused"], entry["reason"].split("\n", 1)[0].rstrip(":;"))
    return ACTION_TEXT[entry["action"]]


def text(plans, cluster, apply_mode):
    """The plan as a table for people."""
    changing = [e for e in plans if e["changed"]]
    rows = [("NODE", "ROLE", "ADDRESS", "STATE", "PLAN")]
    rows += [(e["name"], e["role"], e["ip"], e["state"], describe(e)) for e in plans]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["Plan for cluster %s (apply mode %s): %d of %d nodes change" % (cluster, apply_mode, len(changing), len(plans))]
    lines += ["   ".join([cell.ljust(width) for cell, width in zip(row[:4], widths)] + [row[4]]) for row in rows]
    return lines


def diffs(plans):
    """Ansible diff entries (prepared text) of every node that would change or is refused."""
    out = []
    for entry in plans:
        if entry["diff"] and entry["action"] != "none":
            header = "%s (%s): %s\n" % (entry["name"], entry["ip"], describe(entry))
            out.append({"prepared": header + entry["diff"]})
    return out
