# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""From inventory variables to validated node specs.

Every Talos node is an inventory host in group ``talos`` and in exactly one of the role groups
``controlplane`` and ``workers``. Its ``talos_*`` variables (host_vars over group_vars) are read
here, checked all at once and turned into one normalised entry per node:

    {name, role, mac, ip, arch, talos_version, schematic, pxe_kernel_args, config}

where ``config`` is the node spec that ``talos_machine_config`` renders. Every problem names the
host and the variable (the same mistake on many hosts is said once), and nothing is written by
anyone before this has passed. A ``talos_*`` variable that neither a node, a role (its
argument_specs) nor a playbook reads is refused as a likely typo.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from ansible_collections.netboot.talos.plugins.module_utils import libraries

try:
    import netaddr
    import yaml
except ImportError as exc:  # reported by the modules: see libraries.py
    libraries.missing(exc)

from ansible_collections.netboot.talos.plugins.module_utils.talos import config, extensions, factory, versions

ROLE_GROUPS = {"controlplane": "controlplane", "workers": "worker"}
ARCHES = ("amd64", "arm64")
CNI_NAMES = ("flannel", "custom", "none")
DISK_SELECTOR_KEYS = ("size", "name", "model", "serial", "modalias", "uuid", "wwid", "type", "busPath")
HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAC_DIGITS = re.compile(r"^[0-9a-f]{12}$")
# Kubernetes's label rules (apimachinery validation.IsQualifiedName and IsValidLabelValue).
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DELIVERY_MODES = ("http", "api")

# Settings that describe the cluster, not the node: every node must agree on them.
CLUSTER_WIDE = (
    "talos_cluster_name",
    "talos_cluster_endpoint",
    "talos_network",
    "talos_vip",
    "talos_dns_domain",
    "talos_pod_subnets",
    "talos_service_subnets",
    "talos_cni",
    "talos_kubernetes_version",
    "talos_config_delivery",
    "talos_config_withdraw",
    "talos_config_contract",
)

# Every variable a node may carry, with its type. Any other talos_* variable must be a role's
# (from its argument_specs) or one of PLAYBOOK_VARIABLES; anything else is refused as a likely typo.
NODE_VARIABLES = {
    "talos_cluster_name": str,
    "talos_cluster_endpoint": str,
    "talos_version": str,
    "talos_kubernetes_version": str,
    "talos_mac": str,
    "talos_ip": str,
    "talos_network": str,
    "talos_gateway": str,
    "talos_nameservers": list,
    "talos_vip": str,
    "talos_hostname": str,
    "talos_interface": str,
    "talos_device_selector": dict,
    "talos_arch": str,
    "talos_install_disk": str,
    "talos_install_disk_selector": dict,
    "talos_install_image": str,
    "talos_install_extra_kernel_args": list,
    "talos_extensions": list,
    "talos_extensions_allow_unknown": bool,
    "talos_kernel_args": list,
    "talos_cert_sans": list,
    "talos_allow_scheduling_on_control_planes": bool,
    "talos_dns_domain": str,
    "talos_pod_subnets": list,
    "talos_service_subnets": list,
    "talos_sysctls": dict,
    "talos_cni": dict,
    "talos_registry_mirrors": dict,
    "talos_node_labels": dict,
    "talos_cluster_patches": list,
    "talos_controlplane_patches": list,
    "talos_worker_patches": list,
    "talos_patches": list,
    "talos_config_delivery": str,
    "talos_config_withdraw": bool,
    "talos_config_contract": str,
    "talos_extra_manifests": list,
    "talos_inline_manifests": list,
    "talos_boot_server": str,
}
REQUIRED = ("talos_cluster_name", "talos_cluster_endpoint", "talos_version", "talos_mac", "talos_ip")
# Read from the inventory by the playbooks and by the talos_inventory action itself.
PLAYBOOK_VARIABLES = ("talos_clusters_dir", "talos_matchbox_url", "talos_cluster_apply_mode", "talos_cluster_rolling_batch")
# backup: playbooks/backup.yml and converge.yml (a snapshot before a control plane changes).
PLAYBOOK_VARIABLES += ("talos_cluster_backup_keep", "talos_cluster_backup_before_changes")
# node removal (playbooks/remove.yml, converge's absent members)
PLAYBOOK_VARIABLES += ("talos_cluster_remove_absent", "talos_cluster_remove_reboot", "talos_cluster_drain_timeout")
# the Talos upgrade (roles/talos_rollout/tasks/upgrade.yml)
PLAYBOOK_VARIABLES += ("talos_cluster_upgrade_drain", "talos_cluster_upgrade_timeout")
# which loaded vault id encrypts clusters/<name>/ (plugins/plugin_utils/vault.py)
PLAYBOOK_VARIABLES += ("talos_vault_id",)
PATCH_VARIABLES = {
    "controlplane": ("talos_cluster_patches", "talos_controlplane_patches", "talos_patches"),
    "worker": ("talos_cluster_patches", "talos_worker_patches", "talos_patches"),
}
TYPE_NAMES = {str: "a string", list: "a list", dict: "a mapping", bool: "true or false"}


class InventoryError(Exception):
    """The inventory has problems; ``problems`` lists them, one line each."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__(
            "The inventory has %d problem%s; nothing was changed:\n%s"
            % (len(problems), "" if len(problems) == 1 else "s", "\n".join("- " + p for p in problems))
        )


class _Problems:
    """Problems as (host, field, message); the same mistake on many hosts is said once."""

    def __init__(self):
        self.entries = []

    def add(self, host, field, message):
        self.entries.append((host, field, message))

    def __len__(self):
        return len(self.entries)

    def lines(self):
        hosts_of = {}
        for host, field, message in self.entries:
            hosts = hosts_of.setdefault((field, message), [])
            if host not in hosts:
                hosts.append(host)
        return ["%s: %s: %s" % (_hosts(hosts), field, message) for (field, message), hosts in hosts_of.items()]


def _hosts(hosts, shown=5):
    """Up to ``shown`` host names in full, then how many more."""
    if len(hosts) <= shown + 1:
        return ", ".join(hosts)
    return "%s and %d more" % (", ".join(hosts[:shown]), len(hosts) - shown)


def normalise_mac(value):
    """Lower-case colon form of a MAC in any usual notation, or ValueError."""
    if not isinstance(value, str) or not MAC_DIGITS.match(re.sub(r"[:.\-]", "", value.strip().lower())):
        raise ValueError("%r is not a MAC address (expected e.g. 18:03:73:2a:d8:a2)" % (value,))
    mac = netaddr.EUI(value.strip(), dialect=netaddr.mac_unix_expanded)
    if not int(mac):
        raise ValueError("%s is the all-zero address, not a network card's MAC" % mac)
    if mac.words[0] & 1:
        raise ValueError("%s is a multicast address, not a network card's MAC" % mac)
    return str(mac)


def parse_ip(value):
    if not isinstance(value, str):
        raise ValueError("%r is not an IP address" % (value,))
    try:
        return netaddr.IPAddress(value.strip())
    except (netaddr.AddrFormatError, ValueError):
        raise ValueError("%r is not an IP address" % (value,))


def parse_network(value):
    if not isinstance(value, str) or "/" not in value:
        raise ValueError("%r is not a network in CIDR form (e.g. 10.0.50.0/24)" % (value,))
    try:
        network = netaddr.IPNetwork(value.strip())
    except (netaddr.AddrFormatError, ValueError):
        raise ValueError("%r is not a network in CIDR form (e.g. 10.0.50.0/24)" % (value,))
    if network.ip != network.network:
        raise ValueError("%r has host bits set; did you mean %s?" % (value, network.cidr))
    return network


def parse_endpoint(value):
    """An https URL with an explicit port, as talosctl requires."""
    hint = "expected an https URL with a port, e.g. https://10.0.50.69:6443"
    if not isinstance(value, str):
        raise ValueError("%r: %s" % (value, hint))
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        raise ValueError("%r: %s" % (value, hint))
    if url.scheme != "https" or not url.hostname or port is None or url.path not in ("", "/"):
        raise ValueError("%r: %s" % (value, hint))
    return url.hostname


_yaml_error = config.yaml_error


def _patches(host, variable, value, problems):
    """A patch list: each item a YAML string, a mapping, or a list (JSON patch or documents)."""
    patches = []
    for index, patch in enumerate(value):
        field = "%s[%d]" % (variable, index)
        if isinstance(patch, str):
            try:
                documents = [d for d in yaml.safe_load_all(patch) if d is not None]
            except yaml.YAMLError as exc:
                problems.add(host, field, "not valid YAML: %s" % _yaml_error(exc))
                continue
            if not documents or not all(isinstance(d, (dict, list)) for d in documents):
                problems.add(host, field, "a patch must be a mapping, a list of JSON patch operations, or YAML documents")
                continue
        elif not isinstance(patch, (dict, list)) or not patch:
            problems.add(host, field, "a patch must be a mapping, a list of JSON patch operations, or YAML text")
            continue
        patches.append((field, patch))
    return patches


def _string_list(host, variable, value, problems, parse=None):
    result = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            problems.add(host, "%s[%d]" % (variable, index), "%r is not a non-empty string" % (item,))
            continue
        if parse:
            try:
                parse(item)
            except ValueError as exc:
                problems.add(host, "%s[%d]" % (variable, index), str(exc))
                continue
        result.append(item.strip())
    return result


@functools.lru_cache(maxsize=None)
def role_variables():
    """The talos_* variables of every role of the collection, from the roles' argument_specs."""
    names = set()
    for path in sorted((Path(__file__).resolve().parents[2] / "roles").glob("*/meta/argument_specs.yml")):
        for spec in ((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("argument_specs") or {}).values():
            names.update(name for name in (spec.get("options") or {}) if name.startswith("talos_"))
    return frozenset(names)


def known_variables():
    """Every talos_* variable an inventory may set."""
    return frozenset(NODE_VARIABLES).union(PLAYBOOK_VARIABLES, role_variables())


def label_problems(key, value):
    """What Kubernetes would refuse in one node label (key and value), as messages."""
    problems = []
    parts = key.split("/")
    prefix, name = parts if len(parts) == 2 else ("", parts[0])
    if len(parts) > 2 or "" in parts:
        problems.append("%r is not a label key: one optional DNS-subdomain prefix and '/', then a name" % key)
    else:
        if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
            problems.append(
                "label key prefix %r must be a DNS subdomain: at most 253 lower-case letters, digits, '-' and '.'" % prefix
            )
        if len(name) > 63 or not LABEL_NAME.match(name):
            problems.append(
                "label name %r must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit" % name
            )
    if value and (len(value) > 63 or not LABEL_NAME.match(value)):
        problems.append(
            "label value %r must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
            % value
        )
    return problems


def _unquoted_mac(number):
    """The hint for a MAC that YAML 1.1 read as a base-60 number (52:54:00:50:00:11 unquoted)."""
    groups, rest = [], number
    for _unused in range(5):
        rest, group = divmod(rest, 60)
        groups.insert(0, group)
    if 0 < rest < 100:
        mac = ":".join("%02d" % group for group in [rest] + groups)
        return 'YAML read the unquoted MAC %s as the number %d; quote it: talos_mac: "%s"' % (mac, number, mac)
    return 'YAML read the MAC as the number %d; quote it, e.g. talos_mac: "52:54:00:50:00:11"' % number


def _talos_version(value):
    versions.contract(value)
    return value


def _networks(values):
    """(index, network) of every item of a subnet list that is a network."""
    for index, value in enumerate(values):
        try:
            yield index, parse_network(value)
        except ValueError:
            continue


class _NodeCheck:
    """One host's variables, checked piece by piece; ``entry()`` builds its node entry (None if it cannot)."""

    def __init__(self, host, role, variables, problems):
        self.host, self.role, self.problems = host, role, problems
        self.var = variables.get
        self.variables = variables
        self.unknown = {}

    def bad(self, field, message):
        self.problems.add(self.host, field, message)

    def parsed(self, name, parse):
        """parse(value) of a variable that is set; None (after saying why) when it does not parse."""
        if not self.var(name):
            return None
        try:
            return parse(self.var(name))
        except ValueError as exc:
            self.bad(name, str(exc))
            return None

    def missing(self, name, message="is required", also=()):
        """Say that ``name`` is missing, naming a misspelling of it (or of ``also``) that is set instead."""
        found = [unknown for unknown, guess in self.unknown.items() if guess in (name,) + tuple(also)]
        for unknown in found:
            del self.unknown[unknown]
        if found:
            message += "; %s %s set instead (misspelt?)" % (" and ".join(found), "is" if len(found) == 1 else "are")
        self.bad(name, message)

    def find_unknown(self):
        known = known_variables()
        # Compared without the common talos_ prefix, which would make every name look alike.
        bare = sorted(name[len("talos_"):] for name in known)
        for name in sorted(self.variables):
            if name.startswith("talos_") and name not in known:
                guess = difflib.get_close_matches(name[len("talos_"):], bare, n=1)
                self.unknown[name] = "talos_" + guess[0] if guess else None

    def report_unknown(self):
        for name, guess in self.unknown.items():
            self.bad(name, "is not a netboot.talos variable" + ("; did you mean %s?" % guess if guess else ""))

    def types(self):
        """True when every known variable has its type."""
        start = len(self.problems)
        for name, value in self.variables.items():
            expected = NODE_VARIABLES.get(name)
            if expected is None or value is None or isinstance(value, expected):
                continue
            if name == "talos_mac" and isinstance(value, int) and not isinstance(value, bool):
                self.bad(name, _unquoted_mac(value))
            else:
                self.bad(name, "must be %s, got %r" % (TYPE_NAMES[expected], value))
        return len(self.problems) == start

    def entry(self):
        self.find_unknown()
        if not self.types():
            return None
        start = len(self.problems)
        for name in REQUIRED:
            if self.var(name) in (None, ""):
                self.missing(name)
        self.cluster()
        self.addresses()
        self.subnets()
        self.install()
        self.settings()
        self.manifests = _manifests(self)
        if len(self.problems) > start:
            return None
        return self.build()

    def cluster(self):
        self.version = self.parsed("talos_version", _talos_version)
        kubernetes = self.var("talos_kubernetes_version")
        self.kubernetes_version = None
        if kubernetes:
            try:
                if self.version:
                    versions.check_kubernetes(self.version, kubernetes)
                else:
                    versions.kubernetes_core(kubernetes)
                self.kubernetes_version = kubernetes.lstrip("v")
            except ValueError as exc:
                self.bad("talos_kubernetes_version", str(exc))
        self.cluster_name = self.var("talos_cluster_name")
        if self.cluster_name and not HOSTNAME_LABEL.match(self.cluster_name):
            self.bad("talos_cluster_name", "%r must be lower-case letters, digits and '-'" % self.cluster_name)
        self.endpoint_host = self.parsed("talos_cluster_endpoint", parse_endpoint)

    def addresses(self):
        self.mac = self.parsed("talos_mac", normalise_mac)
        network = self.network = self.parsed("talos_network", parse_network)
        ip = self.ip = self.parsed("talos_ip", parse_ip)
        if ip is not None and not self.var("talos_network"):
            self.missing("talos_network", "is required to place talos_ip (e.g. 10.0.50.0/24)")
        if ip is not None and network is not None:
            if ip not in network:
                self.bad("talos_ip", "%s is outside the node network %s" % (ip, network))
            elif network.size > 2 and ip in (network.network, network.broadcast):
                self.bad("talos_ip", "%s is the network or broadcast address of %s" % (ip, network))
        gateway = self.gateway = self.parsed("talos_gateway", parse_ip)
        if gateway is not None and network is not None and gateway not in network:
            self.bad("talos_gateway", "%s is outside the node network %s" % (gateway, network))
        if gateway is not None and gateway == ip:
            self.bad("talos_gateway", "%s is the node's own address" % gateway)
        self.nameservers = _string_list(self.host, "talos_nameservers", self.var("talos_nameservers") or [], self.problems, parse_ip)
        vip = self.vip = self.parsed("talos_vip", parse_ip)
        if vip is not None and network is not None and vip not in network:
            self.bad("talos_vip", "%s is outside the node network %s" % (vip, network))

    def subnets(self):
        """Pod and service subnets: each a network, none overlapping another or the node network.
        Talos's defaults stand in for an unset list: they must not collide either."""
        self.subnet_lists = {}
        named = [("talos_network", self.network, "")] if self.network is not None else []
        defaults = config.default_subnets(self.var("talos_cluster_endpoint"))
        for variable in ("talos_pod_subnets", "talos_service_subnets"):
            values = self.var(variable) or []
            self.subnet_lists[variable] = _string_list(self.host, variable, values, self.problems, parse_network) or None
            if values:
                named += [("%s[%d]" % (variable, index), network, "") for index, network in _networks(values)]
            else:
                note = " (Talos's default while %s is unset: set it to a range of its own)" % variable
                named += [(variable, network, note) for _unused, network in _networks(defaults[variable[len("talos_"):]])]
        for position, (field, network, note) in enumerate(named):
            for other_field, other, _unused in named[:position]:
                if network.version == other.version and network.first <= other.last and other.first <= network.last:
                    described = "the node network" if other_field == "talos_network" else other_field
                    self.bad(field, "%s%s overlaps %s %s" % (network, note, described, other))

    def install(self):
        self.hostname = self.var("talos_hostname") or self.host
        if len(self.hostname) > 253 or not all(HOSTNAME_LABEL.match(label) for label in self.hostname.split(".")):
            self.bad("talos_hostname", "%r is not a valid hostname (lower-case letters, digits, '-', '.')" % self.hostname)
        self.arch = self.var("talos_arch") or "amd64"
        if self.arch not in ARCHES:
            self.bad("talos_arch", "%r is not one of %s" % (self.arch, ", ".join(ARCHES)))
        if self.var("talos_interface") and self.var("talos_device_selector"):
            self.bad("talos_interface", "set talos_interface or talos_device_selector, not both")
        self.install_disk()
        self.extension_names = _string_list(self.host, "talos_extensions", self.var("talos_extensions") or [], self.problems)
        if self.version and not self.var("talos_extensions_allow_unknown"):
            for index, name in enumerate(self.var("talos_extensions") or []):
                problem = extensions.problem(name.strip(), self.version) if isinstance(name, str) and name else None
                if problem:
                    self.bad("talos_extensions[%d]" % index, problem)
        self.install_extra_kernel_args = _string_list(
            self.host, "talos_install_extra_kernel_args", self.var("talos_install_extra_kernel_args") or [], self.problems
        )
        self.pxe_kernel_args = _string_list(self.host, "talos_kernel_args", self.var("talos_kernel_args") or [], self.problems)
        self.cert_sans = _string_list(self.host, "talos_cert_sans", self.var("talos_cert_sans") or [], self.problems)

    def install_disk(self):
        disk, selector = self.disk, self.selector = self.var("talos_install_disk"), self.var("talos_install_disk_selector")
        if disk and selector:
            self.bad("talos_install_disk", "set talos_install_disk or talos_install_disk_selector, not both")
        elif not disk and not selector:
            self.missing("talos_install_disk", "is required (or talos_install_disk_selector)", also=("talos_install_disk_selector",))
        elif disk and not re.match(r"^/dev/\S+$", disk):
            self.bad("talos_install_disk", "%r is not a device path like /dev/sda" % disk)
        elif selector:
            unknown = sorted(set(selector) - set(DISK_SELECTOR_KEYS))
            if unknown:
                self.bad("talos_install_disk_selector", "unknown keys %s (known: %s)" % (", ".join(unknown), ", ".join(DISK_SELECTOR_KEYS)))

    def settings(self):
        cni = self.cni = self.var("talos_cni")
        if cni is not None:
            if cni.get("name") not in CNI_NAMES:
                self.bad("talos_cni.name", "%r is not one of %s" % (cni.get("name"), ", ".join(CNI_NAMES)))
            elif cni.get("name") == "custom" and not cni.get("urls"):
                self.bad("talos_cni.urls", "a custom CNI needs at least one manifest URL")
        self.delivery = self.var("talos_config_delivery") or "http"
        if self.delivery not in DELIVERY_MODES:
            self.bad("talos_config_delivery", "%r is not one of %s" % (self.delivery, ", ".join(DELIVERY_MODES)))
        for variable in ("talos_sysctls", "talos_node_labels"):
            for key, value in (self.var(variable) or {}).items():
                if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
                    self.bad("%s.%s" % (variable, key), "must map a name to a plain value")
                elif variable == "talos_node_labels":
                    for problem in label_problems(key, str(value)):
                        self.bad("%s.%s" % (variable, key), problem)
        self.mirrors = {}
        for registry, endpoints in (self.var("talos_registry_mirrors") or {}).items():
            field = "talos_registry_mirrors.%s" % registry
            if not isinstance(endpoints, list) or not endpoints:
                self.bad(field, "must be a list of endpoint URLs")
                continue
            self.mirrors[registry] = _string_list(self.host, field, endpoints, self.problems, _parse_url)
        self.patches = []
        for variable in PATCH_VARIABLES[self.role]:
            self.patches += _patches(self.host, variable, self.var(variable) or [], self.problems)

    def install_image(self, schematic):
        if self.var("talos_install_image"):
            return self.var("talos_install_image")
        if self.extension_names:
            return factory.installer_image(self.version, schematic)
        return versions.default_installer_image(self.version)

    def node_network(self):
        ip, gateway, vip = self.ip, self.gateway, self.vip
        network = {
            "addresses": ["%s/%d" % (ip, self.network.prefixlen)],
            "routes": [{"network": "0.0.0.0/0" if ip.version == 4 else "::/0", "gateway": str(gateway)}] if gateway else [],
            "nameservers": self.nameservers,
            "vip": str(vip) if vip is not None and self.role == "controlplane" else None,
        }
        if self.var("talos_interface"):
            network["interface"] = self.var("talos_interface")
        else:
            network["device_selector"] = self.var("talos_device_selector") or {"hardwareAddr": self.mac}
        return network

    def build(self):
        var = self.var
        schematic = factory.schematic_id(factory.customization(self.extension_names))
        config = {
            "name": self.host,
            "role": self.role,
            "talos_version": self.version,
            "cluster_name": self.cluster_name,
            "cluster_endpoint": var("talos_cluster_endpoint"),
            "kubernetes_version": self.kubernetes_version,
            "hostname": self.hostname,
            "install_disk": self.disk,
            "install_disk_selector": self.selector,
            "install_image": self.install_image(schematic),
            "install_extra_kernel_args": self.install_extra_kernel_args,
            "network": self.node_network(),
            "cert_sans": self.cert_sans,
            "allow_scheduling_on_control_planes": bool(var("talos_allow_scheduling_on_control_planes")),
            "dns_domain": var("talos_dns_domain"),
            "pod_subnets": self.subnet_lists["talos_pod_subnets"],
            "service_subnets": self.subnet_lists["talos_service_subnets"],
            "sysctls": {k: str(v) for k, v in (var("talos_sysctls") or {}).items()},
            "cni": self.cni,
            "registry_mirrors": self.mirrors,
            "node_labels": {k: str(v) for k, v in (var("talos_node_labels") or {}).items()},
            "patches": [patch for _unused, patch in self.patches],
            "extra_manifests": self.manifests[0],
            "inline_manifests": self.manifests[1],
        }
        return {
            "name": self.host,
            "role": self.role,
            "mac": self.mac,
            "ip": str(self.ip),
            "arch": self.arch,
            "talos_version": self.version,
            "schematic": schematic,
            # talos_install_image as given (the upgrade then uses it instead of Image Factory's installer)
            "install_image": var("talos_install_image") or None,
            "pxe_kernel_args": self.pxe_kernel_args,
            "endpoint_host": self.endpoint_host,
            "delivery": self.delivery,
            "withdraw_configs": bool(var("talos_config_withdraw")) and self.delivery == "http",
            "patch_fields": [field for field, _unused in self.patches],
            "config": config,
        }


# ---------------------------------------------------------------------------------------------
# First workloads: talos_extra_manifests (URLs) and talos_inline_manifests ({name, contents} or
# {name, file} with a file on the controller), which config.py renders into control-plane configs.


def _inline_manifest(check, index, manifest):
    """(manifest as {name, contents}, the file it came from or None); None when it cannot be read."""
    field = "talos_inline_manifests[%d]" % index
    if not isinstance(manifest, dict):
        return manifest, None
    if ("contents" in manifest) == ("file" in manifest):
        check.bad(field, "set contents (the manifest's YAML) or file (a path on the controller), one of them")
        return None
    if "contents" in manifest:
        return manifest, None
    path = manifest["file"]
    if not isinstance(path, str) or not path:
        check.bad(field + ".file", "%r is not a path" % (path,))
        return None
    path = os.path.abspath(os.path.expanduser(path))
    try:
        with open(path, encoding="utf-8") as handle:
            contents = handle.read()
    except FileNotFoundError:
        check.bad(field + ".file", "%s does not exist on the controller" % path)
        return None
    except (OSError, UnicodeDecodeError) as exc:
        check.bad(field + ".file", "%s cannot be read: %s" % (path, exc))
        return None
    return dict((key, value) for key, value in manifest.items() if key != "file") | {"contents": contents}, path


def _manifests(check):
    """The node's (extra manifest URLs, inline manifests as {name, contents}), every problem said."""
    extra = [url.strip() if isinstance(url, str) else url for url in check.var("talos_extra_manifests") or []]
    inline, origins = [], []
    for index, manifest in enumerate(check.var("talos_inline_manifests") or []):
        read = _inline_manifest(check, index, manifest)
        if read is not None:
            inline.append(read[0])
            origins.append((index, read[1]))
    for key, message in config.manifest_problems(extra, inline):
        found = re.match(r"inline_manifests\[(\d+)\](.*)", key)
        if not found:
            check.bad("talos_" + key, message)
            continue
        index, path = origins[int(found.group(1))]
        if path and found.group(2) == ".contents":
            check.bad("talos_inline_manifests[%d].file" % index, "%s: %s" % (path, message))
        else:
            check.bad("talos_inline_manifests[%d]%s" % (index, found.group(2)), message)
    return extra, inline


def _manifests_across(entries, problems):
    """Control planes apply the manifests at bootstrap: each must carry the same ones."""
    controlplanes = [entry for entry in entries if entry["role"] == "controlplane"]
    for entry in controlplanes[1:]:
        for variable in ("extra_manifests", "inline_manifests"):
            if entry["config"][variable] != controlplanes[0]["config"][variable]:
                problems.add(
                    entry["name"], "talos_" + variable,
                    "differs from %s's: every control plane must carry the same manifests" % controlplanes[0]["name"],
                )


def _node(host, role, variables, problems):
    """Check one host's variables; return its node entry (None if it cannot be built)."""
    check = _NodeCheck(host, role, variables, problems)
    entry = check.entry()
    check.report_unknown()
    return entry


def _parse_url(value):
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError("%r is not an http(s) URL" % value)


def _unique(entries, key, variable, problems, describe=str):
    seen = {}
    for entry in entries:
        value = entry[key]
        if value in seen:
            problems.add(entry["name"], variable, "%s is also used by %s" % (describe(value), seen[value]))
        else:
            seen[value] = entry["name"]


def _trial_render(entries, problems, render):
    """Render each node with a stand-in bundle so that a patch Talos would reject fails now."""
    for entry in entries:
        try:
            render(entry["config"])
        except ValueError as exc:
            for line in getattr(exc, "problems", None) or [str(exc)]:
                where, _unused, message = line.partition(": ")
                problems.add(entry["name"], _blame(entry, where, render), message or line)


def _blame(entry, where, render):
    """The inventory variable behind a render problem at ``where`` (e.g. ``nodes[x].patches[2]``)."""
    fields = entry["patch_fields"]
    indexed = re.search(r"\.patches\[(\d+)\]", where)
    if indexed and int(indexed.group(1)) < len(fields):
        return fields[int(indexed.group(1))]
    if where.endswith(".patches") and fields:
        # Talos validates the patched whole; blame the first patch after which it no longer validates.
        patches = entry["config"]["patches"]
        for count in range(1, len(patches) + 1):
            try:
                render(dict(entry["config"], patches=patches[:count]))
            except ValueError:
                return fields[count - 1]
        return fields[-1]
    return where.split("]", 1)[-1].lstrip(".") or "config"


def _across_nodes(hosts, entries, problems):
    """What only shows across nodes: cluster-wide settings that differ, values two nodes share."""
    first = sorted(hosts)[0]
    for variable in CLUSTER_WIDE:
        values = {host: hosts[host].get(variable) for host in hosts}
        if len({repr(v) for v in values.values()}) > 1:
            odd = [h for h in sorted(values) if values[h] != values[first]]
            problems.add(odd[0], variable, "%r differs from %s's %r: it must be the same on every node" % (values[odd[0]], first, values[first]))

    _unique(entries, "mac", "talos_mac", problems)
    _unique(entries, "ip", "talos_ip", problems)
    _unique([dict(e, hostname=e["config"]["hostname"]) for e in entries], "hostname", "talos_hostname", problems)
    for entry in entries:
        vip = entry["config"]["network"]["vip"]
        if vip and vip in {e["ip"] for e in entries}:
            problems.add(entry["name"], "talos_vip", "%s is also a node's talos_ip" % vip)
    if entries and not any(e["role"] == "controlplane" for e in entries) and not problems:
        problems.add(first, "role", "the cluster needs at least one host in group controlplane")


def build_nodes(hosts, memberships, clusters_dir, render=None):
    """Validate every node; return (cluster, nodes) or raise InventoryError with every problem.

    hosts: {inventory hostname: {talos_* variable: value}} for every host of group talos.
    memberships: {inventory hostname: set of its groups}.
    render: callable(config spec) -> text, used for a trial render of every node; raises ValueError.
    """
    problems = _Problems()
    if not hosts:
        raise InventoryError(["talos: the inventory has no hosts in group 'talos'"])
    entries = []
    for host in sorted(hosts):
        roles = [role for group, role in ROLE_GROUPS.items() if group in memberships.get(host, ())]
        if len(roles) != 1:
            problems.add(
                host,
                "role",
                "must be in exactly one of the groups %s (it is in %s)"
                % (" and ".join(ROLE_GROUPS), ", ".join(sorted(memberships.get(host, ()))) or "none"),
            )
            continue
        entry = _node(host, roles[0], hosts[host], problems)
        if entry is not None:
            entries.append(entry)

    _across_nodes(hosts, entries, problems)
    contract = None
    if entries:
        contract = _contract(hosts, entries, clusters_dir, problems)
    _manifests_across(entries, problems)
    if render is not None and not problems:
        _trial_render(entries, problems, render)
    if problems:
        raise InventoryError(problems.lines())

    controlplanes = [e for e in entries if e["role"] == "controlplane"]
    cluster = {
        "name": entries[0]["config"]["cluster_name"],
        "endpoint": entries[0]["config"]["cluster_endpoint"],
        "dir": "%s/%s" % (clusters_dir.rstrip("/"), entries[0]["config"]["cluster_name"]),
        "delivery": entries[0]["delivery"],
        "withdraw_configs": entries[0]["withdraw_configs"],
        "controlplane_ips": [e["ip"] for e in controlplanes],
        "talos_versions": sorted({e["talos_version"] for e in entries}),
        "contract": contract,
    }
    for entry in entries:
        del entry["patch_fields"], entry["endpoint_host"], entry["delivery"], entry["withdraw_configs"]
    return cluster, entries


# ---- The cluster's config contract and Kubernetes default, recorded at creation (issue 10) ------

CONTRACT_RECORD = "contract.json"


def read_contract_record(cluster_dir):
    """The recorded {config_contract, kubernetes_version} of a cluster; {} before it was created."""
    path = os.path.join(cluster_dir, CONTRACT_RECORD)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        try:
            record = json.load(handle)
        except ValueError as exc:
            raise InventoryError(["%s: not JSON (%s); restore it or remove it to record the contract anew" % (path, exc)])
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("config_contract", "kubernetes_version")):
        raise InventoryError(["%s: needs config_contract and kubernetes_version strings" % path])
    try:
        versions.parse_contract(record["config_contract"])
        versions.kubernetes_core(record["kubernetes_version"])
    except versions.VersionError as exc:
        raise InventoryError(["%s: %s" % (path, exc)])
    return record


def _talos_key(entry):
    return versions.parse(entry["talos_version"])[:3]


def _contract(hosts, entries, clusters_dir, problems):
    """Decide the contract and Kubernetes default every config renders with; put both into the specs.

    The contract is talos_config_contract, else the recorded one, else (a new cluster) that of the
    lowest talos_version; the Kubernetes version is talos_kubernetes_version, else the recorded one,
    else the default of the lowest talos_version. A talos_version bump moves neither.
    """
    cluster_dir = "%s/%s" % (clusters_dir.rstrip("/"), entries[0]["config"]["cluster_name"])
    first = sorted(hosts)[0]
    try:
        record = read_contract_record(cluster_dir)
    except InventoryError as exc:
        problems.add(first, CONTRACT_RECORD, exc.problems[0])
        return None
    lowest = min(entries, key=_talos_key)["talos_version"]
    wanted = hosts[first].get("talos_config_contract")
    recorded = record.get("config_contract")
    contract = recorded or versions.contract_text(versions.contract(lowest))
    if wanted:
        try:
            key = versions.parse_contract(wanted)
        except versions.VersionError as exc:
            problems.add(first, "talos_config_contract", str(exc))
            return None
        if recorded and key < versions.parse_contract(recorded):
            problems.add(first, "talos_config_contract", "%s is older than the cluster's recorded contract %s (%s): "
                         "a contract only moves forward" % (versions.contract_text(key), recorded, CONTRACT_RECORD))
        contract = versions.contract_text(key)
    kubernetes = entries[0]["config"]["kubernetes_version"] or record.get("kubernetes_version") \
        or versions.default_kubernetes_version(lowest)
    for entry in entries:
        if versions.parse_contract(contract) > versions.contract(entry["talos_version"]):
            problems.add(entry["name"], "talos_config_contract" if wanted else "talos_version",
                         "contract %s is newer than this node's talos_version %s" % (contract, entry["talos_version"]))
        if not entry["config"]["kubernetes_version"]:
            try:
                versions.check_kubernetes(entry["talos_version"], kubernetes)
            except versions.VersionError as exc:
                problems.add(entry["name"], "talos_kubernetes_version", "the cluster's recorded Kubernetes %s: %s; set "
                             "talos_kubernetes_version to move it" % (kubernetes, exc))
        entry["config"].update(config_contract=contract, kubernetes_version=kubernetes)
    return {"config_contract": contract, "kubernetes_version": kubernetes, "recorded": record or None,
            "record_path": "%s/%s" % (cluster_dir, CONTRACT_RECORD),
            "moves": bool(recorded) and contract != recorded,
            "record": {"config_contract": contract, "kubernetes_version": kubernetes}}


# ---------------------------------------------------------------------------------------------
# Boot servers: which host of group boot_server serves each node (many boot servers, one per segment)

BOOT_SERVER_VARIABLE = "talos_boot_server"
# On a boot server: the node networks it serves (relayed segments included); without it, its DHCP
# segment (dhcp_network/dhcp_netmask).
BOOT_SERVER_NETWORKS = "matchbox_node_networks"


def boot_server_networks(host, variables, problems):
    """The node networks of one boot server from its variables; [] when none is described."""
    values = variables.get(BOOT_SERVER_NETWORKS) or []
    where = BOOT_SERVER_NETWORKS
    if not values and variables.get("dhcp_network"):
        values = ["%s/%s" % (variables["dhcp_network"], variables.get("dhcp_netmask") or "255.255.255.0")]
        where = "dhcp_network"
    if not isinstance(values, list):
        problems.add(host, where, "must be a list of networks like 10.0.50.0/24, got %r" % (values,))
        return []
    networks = []
    for value in values:
        try:
            networks.append(netaddr.IPNetwork(str(value)).cidr)
        except (netaddr.AddrFormatError, ValueError, TypeError):
            problems.add(host, where, "%r is not a network like 10.0.50.0/24" % (value,))
    return networks


def assign_boot_servers(nodes, boot_servers):
    """{node: boot server} for every node, or InventoryError with every node that has none or several.

    nodes: {host: (talos_ip, talos_boot_server or None)}; boot_servers: {host: its variables}.
    A node's talos_boot_server names its boot server; otherwise the only boot server, or the one
    whose node network contains its talos_ip. Nodes whose talos_ip does not parse are left out
    (the node checks say why).
    """
    problems = _Problems()
    networks = {host: boot_server_networks(host, variables, problems) for host, variables in sorted(boot_servers.items())}
    described = ", ".join("%s (%s)" % (host, ", ".join(map(str, nets)) or "no network described") for host, nets in networks.items())
    assignment = {}
    for host, (ip, chosen) in sorted(nodes.items()):
        if chosen is not None:
            if chosen in networks:
                assignment[host] = chosen
            else:
                problems.add(host, BOOT_SERVER_VARIABLE, "%r is not a host of group boot_server (%s)" % (chosen, ", ".join(networks) or "none"))
            continue
        if len(networks) == 1:
            assignment[host] = next(iter(networks))
            continue
        try:
            address = parse_ip(ip)
        except (ValueError, TypeError):
            continue
        matches = [server for server, nets in networks.items() if any(address in net for net in nets)]
        if len(matches) == 1:
            assignment[host] = matches[0]
        elif matches:
            problems.add(host, BOOT_SERVER_VARIABLE, "its talos_ip is in the node networks of %s: set talos_boot_server to the one that "
                         "serves it" % " and ".join(matches))
        elif networks:
            problems.add(host, BOOT_SERVER_VARIABLE, "its talos_ip is in no boot server's node network (%s; set %s or dhcp_network on "
                         "the boot server), so no boot server serves it: set talos_boot_server" % (described, BOOT_SERVER_NETWORKS))
    if problems:
        raise InventoryError(problems.lines())
    return assignment
