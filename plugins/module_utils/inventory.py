# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""From inventory variables to validated node specs.

Every Talos node is an inventory host in group ``talos`` and in exactly one of the role groups
``controlplane`` and ``workers``. Its ``talos_*`` variables (host_vars over group_vars) are read
here, checked all at once and turned into one normalised entry per node:

    {name, role, mac, ip, arch, talos_version, schematic, pxe_kernel_args, config}

where ``config`` is the node spec that ``talos_machine_config`` renders. Every problem names the
host and the variable, and nothing is written by anyone before this has passed.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import netaddr
import yaml

from ansible_collections.netboot.talos.plugins.module_utils.talos import factory, versions

ROLE_GROUPS = {"controlplane": "controlplane", "workers": "worker"}
ARCHES = ("amd64", "arm64")
CNI_NAMES = ("flannel", "custom", "none")
DISK_SELECTOR_KEYS = ("size", "name", "model", "serial", "modalias", "uuid", "wwid", "type", "busPath")
HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
KUBERNETES_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")
MAC_DIGITS = re.compile(r"^[0-9a-f]{12}$")
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
)

# Every variable a node may carry, with its type; anything else starting with talos_ is refused
# as a likely typo only when it is in KNOWN_TYPOS (other talos_* variables belong to roles).
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
}
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
    def __init__(self):
        self.lines = []

    def add(self, host, field, message):
        self.lines.append("%s: %s: %s" % (host, field, message))


def normalise_mac(value):
    """Lower-case colon form of a MAC in any usual notation, or ValueError."""
    if not isinstance(value, str) or not MAC_DIGITS.match(re.sub(r"[:.\-]", "", value.strip().lower())):
        raise ValueError("%r is not a MAC address (expected e.g. 18:03:73:2a:d8:a2)" % (value,))
    mac = netaddr.EUI(value.strip(), dialect=netaddr.mac_unix_expanded)
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


def _patches(host, variable, value, problems):
    """A patch list: each item a YAML string, a mapping, or a list (JSON patch or documents)."""
    patches = []
    for index, patch in enumerate(value):
        field = "%s[%d]" % (variable, index)
        if isinstance(patch, str):
            try:
                documents = [d for d in yaml.safe_load_all(patch) if d is not None]
            except yaml.YAMLError as exc:
                problems.add(host, field, "not valid YAML: %s" % str(exc).replace("\n", " "))
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


def _node(host, role, variables, problems):
    """Check one host's variables; return its node entry (None if it cannot be built)."""
    start = len(problems.lines)
    for name, value in variables.items():
        expected = NODE_VARIABLES.get(name)
        if expected is not None and value is not None and not isinstance(value, expected):
            problems.add(host, name, "must be %s, got %r" % (TYPE_NAMES[expected], value))
    if len(problems.lines) > start:
        return None
    var = variables.get

    for required in ("talos_cluster_name", "talos_cluster_endpoint", "talos_version", "talos_mac", "talos_ip"):
        if var(required) in (None, ""):
            problems.add(host, required, "is required")

    version = var("talos_version")
    if version:
        try:
            versions.contract(version)
        except ValueError as exc:
            problems.add(host, "talos_version", str(exc))
            version = None

    kubernetes_version = var("talos_kubernetes_version")
    if kubernetes_version and not KUBERNETES_VERSION.match(kubernetes_version):
        problems.add(host, "talos_kubernetes_version", "%r is not a version like 1.32.4" % kubernetes_version)

    cluster_name = var("talos_cluster_name")
    if cluster_name and not HOSTNAME_LABEL.match(cluster_name):
        problems.add(host, "talos_cluster_name", "%r must be lower-case letters, digits and '-'" % cluster_name)

    endpoint_host = None
    if var("talos_cluster_endpoint"):
        try:
            endpoint_host = parse_endpoint(var("talos_cluster_endpoint"))
        except ValueError as exc:
            problems.add(host, "talos_cluster_endpoint", str(exc))

    mac = None
    if var("talos_mac"):
        try:
            mac = normalise_mac(var("talos_mac"))
        except ValueError as exc:
            problems.add(host, "talos_mac", str(exc))

    network = None
    if var("talos_network"):
        try:
            network = parse_network(var("talos_network"))
        except ValueError as exc:
            problems.add(host, "talos_network", str(exc))

    ip = None
    if var("talos_ip"):
        try:
            ip = parse_ip(var("talos_ip"))
        except ValueError as exc:
            problems.add(host, "talos_ip", str(exc))
    if ip is not None and network is None and not var("talos_network"):
        problems.add(host, "talos_network", "is required to place talos_ip (e.g. 10.0.50.0/24)")
    if ip is not None and network is not None:
        if ip not in network:
            problems.add(host, "talos_ip", "%s is outside the node network %s" % (ip, network))
        elif network.size > 2 and ip in (network.network, network.broadcast):
            problems.add(host, "talos_ip", "%s is the network or broadcast address of %s" % (ip, network))

    gateway = None
    if var("talos_gateway"):
        try:
            gateway = parse_ip(var("talos_gateway"))
            if network is not None and gateway not in network:
                problems.add(host, "talos_gateway", "%s is outside the node network %s" % (gateway, network))
            if ip is not None and gateway == ip:
                problems.add(host, "talos_gateway", "%s is the node's own address" % gateway)
        except ValueError as exc:
            problems.add(host, "talos_gateway", str(exc))

    nameservers = _string_list(host, "talos_nameservers", var("talos_nameservers") or [], problems, parse_ip)

    vip = None
    if var("talos_vip"):
        try:
            vip = parse_ip(var("talos_vip"))
            if network is not None and vip not in network:
                problems.add(host, "talos_vip", "%s is outside the node network %s" % (vip, network))
        except ValueError as exc:
            problems.add(host, "talos_vip", str(exc))

    hostname = var("talos_hostname") or host
    if len(hostname) > 253 or not all(HOSTNAME_LABEL.match(label) for label in hostname.split(".")):
        problems.add(host, "talos_hostname", "%r is not a valid hostname (lower-case letters, digits, '-', '.')" % hostname)

    arch = var("talos_arch") or "amd64"
    if arch not in ARCHES:
        problems.add(host, "talos_arch", "%r is not one of %s" % (arch, ", ".join(ARCHES)))

    if var("talos_interface") and var("talos_device_selector"):
        problems.add(host, "talos_interface", "set talos_interface or talos_device_selector, not both")

    disk, selector = var("talos_install_disk"), var("talos_install_disk_selector")
    if disk and selector:
        problems.add(host, "talos_install_disk", "set talos_install_disk or talos_install_disk_selector, not both")
    elif not disk and not selector:
        problems.add(host, "talos_install_disk", "is required (or talos_install_disk_selector)")
    elif disk and not re.match(r"^/dev/\S+$", disk):
        problems.add(host, "talos_install_disk", "%r is not a device path like /dev/sda" % disk)
    elif selector:
        unknown = sorted(set(selector) - set(DISK_SELECTOR_KEYS))
        if unknown:
            problems.add(
                host, "talos_install_disk_selector", "unknown keys %s (known: %s)" % (", ".join(unknown), ", ".join(DISK_SELECTOR_KEYS))
            )

    cni = var("talos_cni")
    if cni is not None:
        if cni.get("name") not in CNI_NAMES:
            problems.add(host, "talos_cni.name", "%r is not one of %s" % (cni.get("name"), ", ".join(CNI_NAMES)))
        elif cni.get("name") == "custom" and not cni.get("urls"):
            problems.add(host, "talos_cni.urls", "a custom CNI needs at least one manifest URL")

    subnets = {}
    for variable in ("talos_pod_subnets", "talos_service_subnets"):
        subnets[variable] = _string_list(host, variable, var(variable) or [], problems, parse_network) or None

    delivery = var("talos_config_delivery") or "http"
    if delivery not in DELIVERY_MODES:
        problems.add(host, "talos_config_delivery", "%r is not one of %s" % (delivery, ", ".join(DELIVERY_MODES)))

    for variable in ("talos_sysctls", "talos_node_labels"):
        for key, value in (var(variable) or {}).items():
            if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
                problems.add(host, "%s.%s" % (variable, key), "must map a name to a plain value")
    mirrors = {}
    for registry, endpoints in (var("talos_registry_mirrors") or {}).items():
        if not isinstance(endpoints, list) or not endpoints:
            problems.add(host, "talos_registry_mirrors.%s" % registry, "must be a list of endpoint URLs")
            continue
        mirrors[registry] = _string_list(host, "talos_registry_mirrors.%s" % registry, endpoints, problems, _parse_url)

    extensions = _string_list(host, "talos_extensions", var("talos_extensions") or [], problems)
    install_extra_kernel_args = _string_list(
        host, "talos_install_extra_kernel_args", var("talos_install_extra_kernel_args") or [], problems
    )
    pxe_kernel_args = _string_list(host, "talos_kernel_args", var("talos_kernel_args") or [], problems)
    cert_sans = _string_list(host, "talos_cert_sans", var("talos_cert_sans") or [], problems)
    patches = []
    for variable in PATCH_VARIABLES[role]:
        patches += _patches(host, variable, var(variable) or [], problems)

    if len(problems.lines) > start:
        return None

    schematic = factory.schematic_id(factory.customization(extensions))
    if var("talos_install_image"):
        install_image = var("talos_install_image")
    elif extensions:
        install_image = factory.installer_image(version, schematic)
    else:
        install_image = versions.default_installer_image(version)
    node_network = {
        "addresses": ["%s/%d" % (ip, network.prefixlen)],
        "routes": [{"network": "0.0.0.0/0" if ip.version == 4 else "::/0", "gateway": str(gateway)}] if gateway else [],
        "nameservers": nameservers,
        "vip": str(vip) if vip is not None and role == "controlplane" else None,
    }
    if var("talos_interface"):
        node_network["interface"] = var("talos_interface")
    else:
        node_network["device_selector"] = var("talos_device_selector") or {"hardwareAddr": mac}

    config = {
        "name": host,
        "role": role,
        "talos_version": version,
        "cluster_name": cluster_name,
        "cluster_endpoint": var("talos_cluster_endpoint"),
        "kubernetes_version": kubernetes_version.lstrip("v") if kubernetes_version else None,
        "hostname": hostname,
        "install_disk": disk,
        "install_disk_selector": selector,
        "install_image": install_image,
        "install_extra_kernel_args": install_extra_kernel_args,
        "network": node_network,
        "cert_sans": cert_sans,
        "allow_scheduling_on_control_planes": bool(var("talos_allow_scheduling_on_control_planes")),
        "dns_domain": var("talos_dns_domain"),
        "pod_subnets": subnets["talos_pod_subnets"],
        "service_subnets": subnets["talos_service_subnets"],
        "sysctls": {k: str(v) for k, v in (var("talos_sysctls") or {}).items()},
        "cni": cni,
        "registry_mirrors": mirrors,
        "node_labels": {k: str(v) for k, v in (var("talos_node_labels") or {}).items()},
        "patches": [patch for _, patch in patches],
    }
    return {
        "name": host,
        "role": role,
        "mac": mac,
        "ip": str(ip),
        "arch": arch,
        "talos_version": version,
        "schematic": schematic,
        "pxe_kernel_args": pxe_kernel_args,
        "endpoint_host": endpoint_host,
        "delivery": delivery,
        "withdraw_configs": bool(var("talos_config_withdraw")) and delivery == "http",
        "patch_fields": [field for field, _ in patches],
        "config": config,
    }


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
                where, _, message = line.partition(": ")
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
    if entries and not any(e["role"] == "controlplane" for e in entries) and not problems.lines:
        problems.add(first, "role", "the cluster needs at least one host in group controlplane")

    if render is not None and not problems.lines:
        _trial_render(entries, problems, render)
    if problems.lines:
        raise InventoryError(problems.lines)

    controlplanes = [e for e in entries if e["role"] == "controlplane"]
    cluster = {
        "name": entries[0]["config"]["cluster_name"],
        "endpoint": entries[0]["config"]["cluster_endpoint"],
        "dir": "%s/%s" % (clusters_dir.rstrip("/"), entries[0]["config"]["cluster_name"]),
        "delivery": entries[0]["delivery"],
        "withdraw_configs": entries[0]["withdraw_configs"],
        "controlplane_ips": [e["ip"] for e in controlplanes],
        "talos_versions": sorted({e["talos_version"] for e in entries}),
    }
    for entry in entries:
        del entry["patch_fields"], entry["endpoint_host"], entry["delivery"], entry["withdraw_configs"]
    return cluster, entries
