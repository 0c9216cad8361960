# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""One verdict per node and link of the boot chain, and the text a person reads.

Standard library only: verdicts are made on the boot server (DHCP, TFTP, matchbox) and on the
controller (Talos API, Kubernetes), and travel between them as plain dicts.
"""

from __future__ import annotations

# The links in the order a machine walks them.
LINKS = ("dhcp", "tftp", "matchbox", "assets", "config", "talos_api", "kubernetes", "logs")
LINK_TITLES = {
    "dhcp": "DHCP",
    "tftp": "TFTP",
    "matchbox": "matchbox",
    "assets": "kernel+initrd",
    "config": "config URL",
    "talos_api": "Talos API",
    "kubernetes": "Kubernetes",
    "logs": "last seen",
}
OK, WARN, BROKEN, SKIPPED = "ok", "warning", "broken", "skipped"
# A config URL answering 404, until the controller knows whether that is on purpose (cluster.settle_config).
WITHDRAWN = "withdrawn"
STATUS_WORDS = {OK: "ok", WARN: "WARN", BROKEN: "BROKEN", SKIPPED: "-"}


def verdict(link, status, expected="", seen="", action=""):
    """What the link should do, what it did, and what to do about it."""
    return {"link": link, "status": status, "expected": expected, "seen": seen, "action": action}


def ok(link, seen, expected=""):
    return verdict(link, OK, expected, seen)


def broken(link, expected, seen, action):
    return verdict(link, BROKEN, expected, seen, action)


def warning(link, expected, seen, action):
    return verdict(link, WARN, expected, seen, action)


def skipped(link, why):
    return verdict(link, SKIPPED, seen=why)


def ordered(verdicts):
    """Verdicts in the order of the chain (several of one link keep their order)."""
    return sorted(verdicts, key=lambda entry: LINKS.index(entry["link"]) if entry["link"] in LINKS else len(LINKS))


def is_broken(verdicts):
    return any(entry["status"] == BROKEN for entry in verdicts)


def first_broken(verdicts):
    for entry in ordered(verdicts):
        if entry["status"] == BROKEN:
            return entry
    return None


def _lines(entry):
    """One line for a verdict; a broken or doubtful one adds what was expected and what to do."""
    title = LINK_TITLES.get(entry["link"], entry["link"])
    lines = ["  %-7s %-14s %s" % (STATUS_WORDS[entry["status"]], title, entry["seen"])]
    if entry["status"] in (BROKEN, WARN):
        lines += ["  %22s expected: %s" % ("", entry["expected"])] if entry["expected"] else []
        lines += ["  %22s do: %s" % ("", entry["action"])] if entry["action"] else []
    return lines


def node_text(node, verdicts):
    """The block printed for one node: a heading naming its first broken link, then its links."""
    broken_link = first_broken(verdicts)
    state = "first broken link: %s" % LINK_TITLES[broken_link["link"]] if broken_link else "every link ok"
    lines = ["%s (%s, %s): %s" % (node["name"], node.get("ip") or "no IP", node.get("mac") or "no MAC", state)]
    for entry in ordered(verdicts):
        lines += _lines(entry)
    return "\n".join(lines)


def _by_boot_server(findings):
    """[(boot server or None, its findings)] in first-seen order; None for untagged (one boot server)."""
    groups = {}
    for entry in findings:
        groups.setdefault(entry.get("boot_server"), []).append(entry)
    return list(groups.items())


def broken_servers_text(findings):
    """'the boot server', or the boot servers (by name) with a broken finding."""
    names = [server for server, entries in _by_boot_server(findings) if is_broken(entries)]
    return ", ".join("boot server %s" % name if name else "the boot server" for name in names)


def report_text(nodes, verdicts_by_node, findings):
    """Every node's block, then the findings of no single node (per boot server when they name one),
    then a one-line summary."""
    blocks = [node_text(node, verdicts_by_node.get(node["name"], [])) for node in nodes]
    for server, entries in _by_boot_server(findings):
        heading = "Boot server %s:" % server if server else "Boot server:"
        blocks.append("\n".join([heading] + [line for entry in entries for line in _lines(entry)]))
    bad = [node["name"] for node in nodes if is_broken(verdicts_by_node.get(node["name"], []))]
    if is_broken(findings):
        bad.append(broken_servers_text(findings))
    summary = "diagnose: %d node(s) checked, %s" % (len(nodes), "broken: " + ", ".join(bad) if bad else "every link ok")
    return "\n\n".join(blocks + [summary])
