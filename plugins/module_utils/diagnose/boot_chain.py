# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""The boot server's links of the chain, checked from the boot server: TFTP, matchbox, the Talos
kernel and initramfs, and each node's config URL.

Standard library only (plus the tftp-hpa client for TFTP): this runs inside the boot_chain_check
module. Each check asks what a machine would ask, the way it would ask it, and compares the
answer with what the inventory says it should be.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url

from ansible_collections.netboot.talos.plugins.module_utils import matchbox
from ansible_collections.netboot.talos.plugins.module_utils.diagnose import logs
from ansible_collections.netboot.talos.plugins.module_utils.diagnose import verdicts as v
from ansible_collections.netboot.talos.plugins.module_utils.talos import boot_assets

# iPXE's ${buildarch} for the firmware kinds of each node architecture.
IPXE_BUILDARCH = {"amd64": "x86_64", "arm64": "arm64"}
CHUNK = 1024 * 1024


class Answer:
    """One HTTP answer: status (None when nothing answered), the body's size and sha256, and its text
    when it is small."""

    def __init__(self, status, reason="", body=b"", size=0, sha256=""):
        self.status, self.reason, self.body, self.size, self.sha256 = status, reason, body, size, sha256

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def describe(self):
        return "no answer (%s)" % self.reason if self.status is None else "HTTP %d" % self.status


def fetch(url, timeout, keep_body=True):
    """GET url; the body is hashed as it streams and kept only when asked for."""
    try:
        with open_url(url, timeout=timeout) as response:
            return _read(response, response.status, keep_body)
    except urllib.error.HTTPError as err:
        return _read(err, err.code, True)
    except (urllib.error.URLError, OSError, UrlsConnectionError) as exc:
        return Answer(None, str(getattr(exc, "reason", None) or exc))


def _read(response, status, keep_body):
    digest, size, kept = hashlib.sha256(), 0, []
    for block in iter(lambda: response.read(CHUNK), b""):
        digest.update(block)
        size += len(block)
        if keep_body:
            kept.append(block)
    return Answer(status, body=b"".join(kept), size=size, sha256=digest.hexdigest())


class BootServer:
    """What the boot server serves, and the checks of every node against it."""

    def __init__(self, matchbox_url, data_dir, tftp=None, timeout=5.0):
        self.base = matchbox_url.rstrip("/")
        self.data_dir = data_dir
        self.tftp = tftp or {}
        self.timeout = timeout
        self._assets = {}

    # -- matchbox as a whole --------------------------------------------------------------------
    def matchbox_findings(self):
        """Whether matchbox answers at all, its /boot.ipxe, and every group and profile file that
        matchbox would skip."""
        home = fetch(self.base + "/", self.timeout)
        if home.status != 200 or home.text != "matchbox\n":
            return [v.broken("matchbox", "%s/ answers 'matchbox'" % self.base, "%s/: %s" % (self.base, home.describe()),
                             "start matchbox on the boot server (playbooks/boot_server.yml), and check that "
                             "talos_matchbox_url is the address machines reach it at")]
        findings = [self._boot_script()]
        findings += self._unloadable_files()
        return findings

    def _boot_script(self):
        answer = fetch(self.base + "/boot.ipxe", self.timeout)
        if answer.status == 200 and answer.text.startswith("#!ipxe") and "chain ipxe?" in answer.text:
            return v.ok("matchbox", "%s/boot.ipxe chains to /ipxe with the machine's MAC" % self.base)
        return v.broken("matchbox", "/boot.ipxe is an iPXE script chaining to ipxe?mac=...",
                        "/boot.ipxe: %s" % answer.describe(), "this is not matchbox, or not a version this collection knows")

    def _unloadable_files(self):
        findings = []
        for kind in ("group", "profile"):
            directory = os.path.join(self.data_dir, kind + "s")
            for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
                path = os.path.join(directory, name)
                if name.startswith(".") or not os.path.isfile(path):
                    continue
                if not name.endswith(".json"):
                    findings.append(v.warning("matchbox", "only *.json files", "%ss/%s: matchbox reads it as %s.json"
                                              % (kind, name, os.path.splitext(name)[0]), "remove it"))
                    continue
                with open(path, "rb") as handle:
                    problem = matchbox.load_problem(kind, handle.read())
                if problem:
                    findings.append(v.broken("matchbox", "every %s file loads" % kind,
                                             "%ss/%s does not load: %s; matchbox skips it without a word" % (kind, name, problem),
                                             "re-run playbooks/boot_server.yml, or fix or remove the file"))
        return findings

    # -- one node -------------------------------------------------------------------------------
    def node_verdicts(self, node, entries, config_sha256=None):
        """matchbox, kernel+initrd and config URL verdicts for one validated node."""
        profile = next(p for p in entries["profiles"] if p["id"] == self._group_of(node, entries)["profile"])
        matchbox_verdict, served_boot = self._ipxe(node, profile, entries)
        result = [matchbox_verdict]
        if served_boot is None:
            result.append(v.skipped("assets", "matchbox gives this machine no kernel"))
        else:
            result.append(self._asset_verdict(node, served_boot))
        result.append(self._config_verdict(node, entries, config_sha256))
        return result

    @staticmethod
    def _group_of(node, entries):
        return next(g for g in entries["groups"] if g["id"] == node["name"])

    def _ipxe(self, node, profile, entries):
        mac = matchbox.normalize_mac(node["mac"])
        query = "/ipxe?mac=%s&arch=%s" % (mac.replace(":", "-"), IPXE_BUILDARCH.get(node.get("arch"), node.get("arch")))
        answer = fetch(self.base + query + "&%s=%s" % logs.PROBE_QUERY, self.timeout)
        expected = "%s answers with profile %s (kernel %s)" % (query, profile["id"], profile["boot"]["kernel"])
        if answer.status == 404:
            others = {group["selector"]["mac"] for group in entries["groups"] if group["id"] != node["name"]}
            return v.broken("matchbox", expected, "%s -> 404: %s" % (query, self._why_no_match(node, mac, others)),
                            "check talos_mac of %s in its host_vars against the machine's real MAC; "
                            "re-run playbooks/boot_server.yml to write its group" % node["name"]), None
        if answer.status != 200:
            return v.broken("matchbox", expected, "%s -> %s" % (query, answer.describe()), "look at matchbox's log"), None
        served = parse_ipxe(answer.text)
        if served["kernel"] != profile["boot"]["kernel"] or served["initrd"] != profile["boot"]["initrd"]:
            return v.broken("matchbox", expected, "%s serves kernel %s, initrd %s" % (query, served["kernel"], ", ".join(served["initrd"])),
                            "another group wins for this MAC, or its profile is stale: re-run playbooks/boot_server.yml"), served
        return v.ok("matchbox", "%s -> profile %s" % (query, profile["id"])), served

    def _why_no_match(self, node, mac, others):
        """The groups that come closest to selecting this MAC: its own file, a MAC a digit or two
        off, a selector key in another case; not a group selecting another node's own MAC (others)."""
        own = os.path.join(self.data_dir, "groups", node["name"] + ".json")
        if not os.path.exists(own):
            reasons = ["its group file groups/%s.json is missing" % node["name"]]
        else:
            with open(own, "rb") as handle:
                problem = matchbox.load_problem("group", handle.read())
            reasons = ["groups/%s.json does not load (%s)" % (node["name"], problem)] if problem else []
        reasons += self._near_selectors(mac, others)
        return "; ".join(reasons) or "no group selects this MAC"

    def _near_selectors(self, mac, others):
        near = []
        directory = os.path.join(self.data_dir, "groups")
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            selector = _selector(os.path.join(directory, name))
            for key, value in selector.items():
                try:
                    other = matchbox.normalize_mac(value)
                except ValueError:
                    continue
                if other in others:
                    continue  # right for the node it belongs to
                distance = logs.mac_distance(other, mac)
                if key != "mac" and key.lower() == "mac" and distance == 0:
                    near.append("groups/%s selects it under the key %r: matchbox's keys are case-sensitive" % (name, key))
                elif 0 < distance <= 2:
                    near.append("closest group: groups/%s selects %s (%d hex digit%s off)" % (name, other, distance, "s" if distance > 1 else ""))
        return near

    def _asset_verdict(self, node, served):
        problems, seen = [], []
        for path in [served["kernel"]] + served["initrd"]:
            problem, description = self._asset(path)
            (problems if problem else seen).append(problem or description)
        if problems:
            return v.broken("assets", "the kernel and initrd matchbox names are whole Talos boot files",
                            "; ".join(problems), "re-run playbooks/boot_server.yml (talos_assets replaces a missing or truncated file)")
        return v.ok("assets", "; ".join(seen))

    def _asset(self, path):
        """(problem, description) of one boot file as served over HTTP and as on disk; once per path."""
        if path not in self._assets:
            self._assets[path] = self._check_asset(path)
        return self._assets[path]

    def _check_asset(self, path):
        name = os.path.basename(path)
        if not path.startswith("/assets/"):
            return "%s is not under matchbox's /assets/" % path, None
        on_disk = os.path.join(self.data_dir, "assets", path[len("/assets/"):])
        answer = fetch(self.base + path, self.timeout, keep_body=False)
        if answer.status != 200:
            return "%s: %s" % (path, answer.describe()), None
        magic = boot_assets.KERNEL_MAGIC["arm64" if name.endswith("arm64") else "amd64"] if name.startswith("kernel") else boot_assets.INITRAMFS_MAGIC
        problem = boot_assets.problem_with(on_disk, magic)
        if problem:
            return "%s (%d bytes served): %s" % (name, answer.size, problem), None
        if answer.size != os.path.getsize(on_disk) or answer.sha256 != boot_assets.file_sha256(on_disk):
            return "%s: what matchbox serves (%d bytes) differs from the file on disk" % (name, answer.size), None
        return None, "%s %s" % (name, _size(answer.size))

    def _config_verdict(self, node, entries, config_sha256):
        configs = {c["name"]: c for c in entries["configs"]}
        if node["name"] not in configs:
            return v.ok("config", "not served over HTTP (talos_config_delivery: api)")
        url = "%s%s/%s" % (self.base, matchbox.CONFIGS_PATH, configs[node["name"]]["file"])
        answer = fetch(url, self.timeout)
        if answer.status == 404:
            return v.verdict("config", v.WITHDRAWN, "%s serves the rendered config" % url, "%s -> 404" % url)
        if answer.status != 200:
            return v.broken("config", "%s serves the rendered config" % url, "%s -> %s" % (url, answer.describe()), "look at matchbox's log")
        if config_sha256 and answer.sha256 != config_sha256:
            return v.broken("config", "%s serves clusters/<cluster>/nodes/%s.yaml" % (url, node["name"]),
                            "%s serves %d bytes that differ from the rendered config" % (url, answer.size),
                            "re-run playbooks/boot_server.yml to publish the current config")
        return v.ok("config", "%s serves the rendered config (%s)" % (url, _size(answer.size)))

    # -- TFTP -----------------------------------------------------------------------------------
    def tftp_verdicts(self):
        """Fetch every boot file the chain needs over TFTP, as a machine would, and compare it with
        the file the boot server serves."""
        server, root = self.tftp.get("server"), self.tftp.get("root")
        if not server or not root:
            return [v.skipped("tftp", "no TFTP server or root given")]
        names = self.tftp.get("files") or sorted(
            name for name in os.listdir(root) if os.path.isfile(os.path.join(root, name))) if os.path.isdir(root) else []
        if not names:
            return [v.broken("tftp", "the iPXE binaries and the chain script in %s" % root, "%s holds no boot files" % root,
                             "run playbooks/boot_server.yml (role tftp)")]
        client = shutil.which("tftp")
        if client is None:
            return [v.skipped("tftp", "the tftp client (tftp-hpa) is not installed on the boot server")]
        found = []
        with tempfile.TemporaryDirectory() as work:
            for index, name in enumerate(names):
                entry, answered = self._tftp_file(client, server, root, name, work)
                found.append(entry)
                if not answered:
                    # A server that does not answer one file answers none: one timeout, not one per file.
                    if names[index + 1:]:
                        entry["seen"] += " (not tried after it: %s)" % ", ".join(names[index + 1:])
                    break
        if all(entry["status"] == v.OK for entry in found):
            return [v.ok("tftp", "%s over TFTP from %s: same as in %s" % (", ".join(names), server, root))]
        return [entry for entry in found if entry["status"] != v.OK]

    def _tftp_file(self, client, server, root, name, work):
        """(verdict, whether the server answered at all) for one file."""
        local = os.path.join(work, name.replace("/", "_"))
        expected = "tftp://%s/%s is the file in %s" % (server, name, root)
        command = [client, "-m", "binary", server, str(self.tftp.get("port", 69)), "-c", "get", name, local]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout + 5, check=False)
            said = (done.stdout + done.stderr).strip()
        except subprocess.TimeoutExpired:
            said = "timed out"
        reference = os.path.join(root, name)
        if not os.path.isfile(local) or os.path.getsize(local) == 0:
            return v.broken("tftp", expected, "tftp://%s/%s: %s" % (server, name, said or "nothing received"),
                            "start tftp-hpa on the boot server (playbooks/boot_server.yml, role tftp)"), "timed out" not in said.lower()
        if not os.path.isfile(reference):
            return v.warning("tftp", expected, "%s is served but not in %s" % (name, root), "check tftp_root"), True
        if boot_assets.file_sha256(local) != boot_assets.file_sha256(reference):
            return v.broken("tftp", expected, "%s over TFTP (%d bytes) differs from %s (%d bytes)"
                            % (name, os.path.getsize(local), reference, os.path.getsize(reference)),
                            "another TFTP server answers, or tftpd serves another root"), True
        return v.ok("tftp", name), True


def parse_ipxe(text):
    """kernel path and initrd paths of an iPXE script as matchbox writes it."""
    kernel, initrd = None, []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["kernel"] and len(words) > 1:
            kernel = words[1]
        elif words[:1] == ["initrd"] and len(words) > 1:
            initrd.append(words[1])
    return {"kernel": kernel, "initrd": initrd}


def _selector(path):
    try:
        with open(path, "rb") as handle:
            selector = (json.loads(handle.read().decode("utf-8")) or {}).get("selector") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return selector if isinstance(selector, dict) else {}


def _size(count):
    return "%d bytes" % count if count < 1024 else "%.1f KiB" % (count / 1024.0) if count < 1024 ** 2 else "%.1f MiB" % (count / 1024.0 ** 2)
