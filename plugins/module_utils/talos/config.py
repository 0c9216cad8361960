# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Talos machine configs rendered natively, as `talosctl gen config` writes them for each version contract.

render(secrets_bundle, spec) returns the whole multi-document YAML text of one node. The node spec
is the contract in the project's node-spec document; validate_spec() lists every problem of a spec
as `nodes[<name>].<key>: ...`. Contracts: 1.9/1.10/1.11 render the same v1alpha1 document; 1.12
adds HostnameConfig and RegistryMirrorConfig documents and moves static networking to LinkConfig,
LinkAliasConfig, Layer2VIPConfig and ResolverConfig documents; 1.13 drops `machine.network: {}`;
1.14 moves almost everything into typed documents.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import os
import re
from urllib.parse import urlsplit

from ansible_collections.netboot.talos.plugins.module_utils import libraries

try:
    import yaml
except ImportError as exc:  # reported by the modules: see libraries.py
    libraries.missing(exc)

from ansible_collections.netboot.talos.plugins.module_utils import files
from ansible_collections.netboot.talos.plugins.module_utils.talos import patch as patching
from ansible_collections.netboot.talos.plugins.module_utils.talos import secrets, versions, yamlv3

V1 = "v1alpha1"
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
UPLINK_ALIAS = "uplink"
DISCOVERY_ENDPOINT = "https://discovery.talos.dev/"

SPEC_KEYS = {
    "name": str, "role": str, "talos_version": str, "cluster_name": str, "cluster_endpoint": str,
    "kubernetes_version": str, "hostname": str, "install_disk": str, "install_disk_selector": dict,
    "install_image": str, "install_extra_kernel_args": list, "network": dict, "cert_sans": list,
    "allow_scheduling_on_control_planes": bool, "dns_domain": str, "pod_subnets": list,
    "service_subnets": list, "local_api_server_port": int, "sysctls": dict, "cni": dict,
    "registry_mirrors": dict, "node_labels": dict, "patches": list,
    "config_contract": str, "kubernetes_components": dict,
    "extra_manifests": list, "inline_manifests": list,
}
REQUIRED_KEYS = ("name", "role", "talos_version", "cluster_name", "cluster_endpoint")
NETWORK_KEYS = ("interface", "device_selector", "addresses", "routes", "nameservers", "vip", "dhcp")
DISK_SELECTOR_KEYS = ("size", "name", "model", "serial", "modalias", "uuid", "wwid", "type", "busPath")
CNI_NAMES = ("flannel", "custom", "none")
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_KUBERNETES_VERSION = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?\Z")
_SIZE = re.compile(r"\s*(>=|<=|>|<|==)?\s*(\d+(?:\.\d+)?)\s*([KMGTP]i?B|B)?\s*\Z", re.I)


class SpecError(ValueError):
    """One or more problems in node specs; str() lists them one per line."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# ---------------------------------------------------------------------------------------------
# Validation of a node spec


def validate_spec(spec):
    """Every problem of one node spec, each as `nodes[<name>].<key>: <what is wrong>`."""
    name = spec.get("name") if isinstance(spec, dict) else None
    where = "nodes[%s]" % (name if isinstance(name, str) and name else "?")
    problems = []

    def bad(key, message):
        problems.append("%s.%s: %s" % (where, key, message))

    if not isinstance(spec, dict):
        return ["%s: a node spec must be a mapping" % where]
    for key in sorted(set(spec) - set(SPEC_KEYS)):
        bad(key, "unknown key (known: %s)" % ", ".join(SPEC_KEYS))
    for key in REQUIRED_KEYS:
        if spec.get(key) in (None, ""):
            bad(key, "is required")
    for key, kind in SPEC_KEYS.items():
        value = spec.get(key)
        if value is not None and not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            bad(key, "must be a %s, got %r" % ({str: "string", dict: "mapping", list: "list", bool: "boolean", int: "integer"}[kind], value))
    if problems:
        return problems

    if spec["role"] not in ("controlplane", "worker"):
        bad("role", "%r is not controlplane or worker" % spec["role"])
    try:
        versions.contract(spec["talos_version"])
    except versions.VersionError as exc:
        bad("talos_version", str(exc))
    if _endpoint_host(spec["cluster_endpoint"]) is None:
        bad("cluster_endpoint", "%r is not a URL like https://10.0.50.10:6443 (https, host and port)" % spec["cluster_endpoint"])
    kubernetes = spec.get("kubernetes_version")
    if kubernetes is not None and not _KUBERNETES_VERSION.match(kubernetes):
        bad("kubernetes_version", "%r is not a Kubernetes version like 1.32.4 (without a leading v)" % kubernetes)
    _validate_contract(spec, bad)
    if spec.get("install_disk") and spec.get("install_disk_selector"):
        bad("install_disk", "set install_disk or install_disk_selector, not both")
    if spec.get("install_disk") and not spec["install_disk"].startswith("/dev/"):
        bad("install_disk", "%r is not a device path like /dev/sda" % spec["install_disk"])
    selector = spec.get("install_disk_selector")
    if selector:
        unknown = sorted(set(selector) - set(DISK_SELECTOR_KEYS))
        if unknown:
            bad("install_disk_selector", "unknown keys %s (known: %s)" % (", ".join(unknown), ", ".join(DISK_SELECTOR_KEYS)))
    for key in ("install_extra_kernel_args", "cert_sans"):
        if any(not isinstance(item, str) or not item for item in spec.get(key) or []):
            bad(key, "must be a list of non-empty strings")
    domain = spec.get("dns_domain")
    if domain is not None and not all(_DNS_LABEL.match(label) for label in domain.split(".")):
        bad("dns_domain", "%r is not a valid DNS domain" % domain)
    for key in ("pod_subnets", "service_subnets"):
        for subnet in spec.get(key) or []:
            try:
                ipaddress.ip_network(subnet)
            except (TypeError, ValueError):
                bad(key, "%r is not a network in CIDR form" % (subnet,))
    port = spec.get("local_api_server_port")
    if port is not None and not 0 < port < 65536:
        bad("local_api_server_port", "%r is not a TCP port" % port)
    for key in ("sysctls", "node_labels"):
        for item, value in (spec.get(key) or {}).items():
            if not isinstance(item, str) or not isinstance(value, str):
                bad(key, "%r: keys and values must be strings" % (item,))
    cni = spec.get("cni")
    if cni is not None:
        if cni.get("name") not in CNI_NAMES:
            bad("cni.name", "%r is not one of %s" % (cni.get("name"), ", ".join(CNI_NAMES)))
        elif cni["name"] == "custom" and not cni.get("urls"):
            bad("cni.urls", "a custom CNI needs at least one manifest URL")
        for url in cni.get("urls") or []:
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
                bad("cni.urls", "%r is not an http(s) URL" % (url,))
    for registry, endpoints in (spec.get("registry_mirrors") or {}).items():
        if not isinstance(endpoints, list) or not endpoints or not all(isinstance(e, str) and e for e in endpoints):
            bad("registry_mirrors.%s" % registry, "must be a non-empty list of endpoint URLs")
    network = spec.get("network")
    if network is not None:
        _validate_network(network, spec["role"], bad)
    for index, item in enumerate(spec.get("patches") or []):
        if not isinstance(item, (str, dict, list)) or not item:
            bad("patches[%d]" % index, "a patch must be YAML text, a mapping or a list")
    for key, message in manifest_problems(spec.get("extra_manifests") or [], spec.get("inline_manifests") or []):
        bad(key, message)
    return problems


def _supported(version):
    try:
        return bool(versions.contract(version))
    except versions.VersionError:
        return False


def _validate_contract(spec, bad):
    """config_contract: not newer than the node's Talos; kubernetes_components: {component: version}."""
    wanted = spec.get("config_contract")
    if wanted is not None:
        try:
            key = versions.parse_contract(wanted)
            if _supported(spec["talos_version"]) and key > versions.contract(spec["talos_version"]):
                bad("config_contract", "%s is newer than talos_version %s" % (versions.contract_text(key), spec["talos_version"]))
        except versions.VersionError as exc:
            bad("config_contract", str(exc))
    for component, version in (spec.get("kubernetes_components") or {}).items():
        if component not in versions.KUBERNETES_IMAGES:
            bad("kubernetes_components", "%r is not one of %s" % (component, ", ".join(versions.KUBERNETES_IMAGES)))
        elif not isinstance(version, str) or not _KUBERNETES_VERSION.match(version):
            bad("kubernetes_components.%s" % component, "%r is not a Kubernetes version like 1.32.4" % (version,))


def _validate_network(network, role, bad):
    for key in sorted(set(network) - set(NETWORK_KEYS)):
        bad("network.%s" % key, "unknown key (known: %s)" % ", ".join(NETWORK_KEYS))
    if bool(network.get("interface")) == bool(network.get("device_selector")):
        bad("network", "set exactly one of interface and device_selector")
    if network.get("device_selector") is not None and not isinstance(network["device_selector"], dict):
        bad("network.device_selector", "must be a mapping such as {hardwareAddr: '18:03:73:2a:d8:a2'}")
    for address in network.get("addresses") or []:
        try:
            ipaddress.ip_interface(address)
            if "/" not in address:
                raise ValueError
        except (TypeError, ValueError):
            bad("network.addresses", "%r is not an address in CIDR form like 10.0.50.71/24" % (address,))
    for route in network.get("routes") or []:
        if not isinstance(route, dict) or not route.get("network") or set(route) - {"network", "gateway", "metric"}:
            bad("network.routes", "%r must be {network: CIDR, gateway: IP, metric: int (optional)}" % (route,))
            continue
        try:
            ipaddress.ip_network(route["network"])
            if route.get("gateway"):
                ipaddress.ip_address(route["gateway"])
        except ValueError as exc:
            bad("network.routes", str(exc))
    for key in ("nameservers",):
        for address in network.get(key) or []:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                bad("network.%s" % key, "%r is not an IP address" % (address,))
    if network.get("vip"):
        try:
            ipaddress.ip_address(network["vip"])
        except ValueError:
            bad("network.vip", "%r is not an IP address" % (network["vip"],))
        if role != "controlplane":
            bad("network.vip", "a shared VIP is only for control plane nodes")
    if network.get("dhcp") is not None and not isinstance(network["dhcp"], bool):
        bad("network.dhcp", "must be a boolean")


def _endpoint_host(endpoint):
    try:
        url = urlsplit(endpoint)
        port = url.port
    except ValueError:
        return None
    if url.scheme != "https" or not url.hostname or port is None or url.path not in ("", "/"):
        return None
    return url.hostname


# ---------------------------------------------------------------------------------------------
# Rendering


def _pem(value):
    return base64.b64decode(value).decode("ascii")


def default_subnets(cluster_endpoint):
    """talosctl's pod and service subnets for a cluster whose endpoint is IPv4 or IPv6."""
    if ":" in (_endpoint_host(cluster_endpoint) or ""):
        return {"pod_subnets": ["fc00:db8:10::/56"], "service_subnets": ["fc00:db8:20::/112"]}
    return {"pod_subnets": ["10.244.0.0/16"], "service_subnets": ["10.96.0.0/12"]}


def _settings(spec):
    """The spec with talosctl's defaults applied."""
    contract = versions.contract(spec["talos_version"])
    if spec.get("config_contract"):
        contract = versions.parse_contract(spec["config_contract"])
    kubernetes = spec.get("kubernetes_version") or versions.default_kubernetes_version(spec["talos_version"])
    components = spec.get("kubernetes_components") or {}
    host = _endpoint_host(spec["cluster_endpoint"])
    defaults = default_subnets(spec["cluster_endpoint"])
    disk = spec.get("install_disk")
    if disk is None and not spec.get("install_disk_selector"):
        disk = "/dev/sda"
    return {
        "contract": contract,
        "controlplane": spec["role"] == "controlplane",
        "host": host,
        "kubernetes": kubernetes,
        # Each component's image; upgrade-k8s moves them one at a time.
        "images": {name: versions.kubernetes_image(name, components.get(name) or kubernetes) for name in versions.KUBERNETES_IMAGES},
        "disk": disk or None,
        "dns_domain": spec.get("dns_domain") or "cluster.local",
        "pod_subnets": list(spec.get("pod_subnets") or defaults["pod_subnets"]),
        "service_subnets": list(spec.get("service_subnets") or defaults["service_subnets"]),
        "cert_sans": list(spec.get("cert_sans") or []),
        "cni": spec.get("cni") or {"name": "flannel"},
    }


def _admission_control():
    return {
        "name": "PodSecurity",
        "configuration": {
            "apiVersion": "pod-security.admission.config.k8s.io/v1alpha1",
            "defaults": {
                "audit": "restricted", "audit-version": "latest", "enforce": "baseline",
                "enforce-version": "latest", "warn": "restricted", "warn-version": "latest",
            },
            "exemptions": {"namespaces": ["kube-system"], "runtimeClasses": [], "usernames": []},
            "kind": "PodSecurityConfiguration",
        },
    }


def _audit_policy():
    return {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Metadata"}]}


def _node_labels(spec, settings, extra=None):
    labels = dict(extra or {})
    if settings["controlplane"]:
        labels[EXCLUDE_LB_LABEL] = ""
    labels.update(spec.get("node_labels") or {})
    return yamlv3.sort_keys(labels)


def _install(spec, settings):
    install = {}
    if settings["disk"]:
        install["disk"] = settings["disk"]
    if spec.get("install_disk_selector"):
        install["diskSelector"] = _ordered(spec["install_disk_selector"], DISK_SELECTOR_KEYS)
    if spec.get("install_extra_kernel_args"):
        install["extraKernelArgs"] = list(spec["install_extra_kernel_args"])
    if spec.get("install_image"):
        install["image"] = spec["install_image"]
    install["wipe"] = False
    if settings["contract"] >= (1, 12):
        install["grubUseUKICmdline"] = True
    return install


def _ordered(mapping, order):
    known = {key: mapping[key] for key in order if key in mapping}
    known.update((key, value) for key, value in mapping.items() if key not in known)
    return known


def _legacy_network(spec, settings):
    """machine.network for contracts before 1.12: hostname, the uplink interface, nameservers."""
    network = {}
    if spec.get("hostname"):
        network["hostname"] = spec["hostname"]
    uplink = spec.get("network")
    if uplink:
        device = {}
        if uplink.get("interface"):
            device["interface"] = uplink["interface"]
        else:
            device["deviceSelector"] = _ordered(uplink["device_selector"], ("busPath", "hardwareAddr", "permanentAddr", "pciID", "driver", "physical"))
        if uplink.get("addresses"):
            device["addresses"] = list(uplink["addresses"])
        if uplink.get("routes"):
            device["routes"] = [_ordered(route, ("network", "gateway", "metric")) for route in uplink["routes"]]
        if uplink.get("dhcp"):
            device["dhcp"] = True
        if uplink.get("vip"):
            device["vip"] = {"ip": uplink["vip"]}
        network["interfaces"] = [device]
        if uplink.get("nameservers"):
            network["nameservers"] = list(uplink["nameservers"])
    return network


def _document(kind, **fields):
    document = {"apiVersion": V1, "kind": kind}
    document.update((key, value) for key, value in fields.items() if value is not None)
    return document


def _link_selector(selector):
    """A LinkAliasConfig CEL expression for a v1alpha1-style deviceSelector."""
    clauses = []
    for key, value in selector.items():
        if key in ("hardwareAddr", "permanentAddr"):
            field = "mac(link.permanent_addr)" if key == "permanentAddr" else "mac(link.hardware_addr)"
            clauses.append('glob("%s", %s)' % (value, field) if "*" in str(value) else '%s == "%s"' % (field, value))
        elif key == "driver":
            clauses.append('link.driver == "%s"' % value)
        elif key == "busPath":
            clauses.append('glob("%s", link.bus_path)' % value if "*" in str(value) else 'link.bus_path == "%s"' % value)
        elif key == "pciID":
            clauses.append('link.pci_id == "%s"' % value)
        elif key == "physical":
            clauses.append("link.physical" if value else "!link.physical")
        else:
            raise SpecError(["network.device_selector: %r cannot be expressed as a link selector" % key])
    return " && ".join(clauses)


def _network_documents(spec):
    """Static networking of the uplink as typed documents (contract 1.12+)."""
    uplink = spec.get("network")
    if not uplink:
        return [], None
    documents = []
    link = uplink.get("interface")
    if not link:
        link = UPLINK_ALIAS
        documents.append(_document("LinkAliasConfig", name=link, selector={"match": _link_selector(uplink["device_selector"])}))
    routes = []
    for route in uplink.get("routes") or []:
        entry = {"destination": route["network"]}
        if route.get("gateway"):
            entry["gateway"] = route["gateway"]
        if route.get("metric"):
            entry["metric"] = route["metric"]
        routes.append(entry)
    documents.append(_document(
        "LinkConfig", name=link, up=True,
        addresses=[{"address": address} for address in uplink.get("addresses") or []] or None,
        routes=routes or None,
    ))
    if uplink.get("dhcp"):
        documents.append(_document("DHCPv4Config", name=link))
    if uplink.get("vip"):
        documents.append(_document("Layer2VIPConfig", name=uplink["vip"], link=link))
    nameservers = [{"address": address} for address in uplink.get("nameservers") or []] or None
    return documents, nameservers


def _disk_cel(spec, settings):
    if settings["disk"]:
        return 'disk.dev_path == "%s"' % settings["disk"]
    clauses = []
    for key, value in spec["install_disk_selector"].items():
        if key == "size":
            match = _SIZE.match(str(value))
            if not match:
                raise SpecError(["install_disk_selector.size: %r is not a size like '>= 100GB'" % (value,)])
            operator, number, unit = match.group(1) or "==", match.group(2), (match.group(3) or "B").upper()
            unit = {"B": ""}.get(unit, unit.replace("IB", "iB"))
            clauses.append("disk.size %s %su%s" % (operator, number, " * " + unit if unit else ""))
        elif key == "type":
            clauses.append({"ssd": "!disk.rotational", "hdd": "disk.rotational", "nvme": 'disk.transport == "nvme"',
                            "sd": 'disk.transport == "mmc"'}.get(str(value).lower()) or 'disk.transport == "%s"' % value)
        elif key in ("model", "serial", "wwid", "modalias", "uuid"):
            clauses.append('disk.%s == "%s"' % (key, value))
        elif key == "name":
            clauses.append('disk.dev_path == "%s"' % value)
        elif key == "busPath":
            clauses.append('disk.bus_path == "%s"' % value)
    return " && ".join(clauses)


def _pre14_documents(secrets, spec, settings):
    contract, controlplane = settings["contract"], settings["controlplane"]
    certs = secrets["certs"]
    machine = {
        "type": spec["role"],
        "token": secrets["trustdinfo"]["token"],
        "ca": {"crt": certs["os"]["crt"], "key": certs["os"]["key"] if controlplane else ""},
        "certSANs": list(settings["cert_sans"]),
        "kubelet": {
            "image": settings["images"]["kubelet"],
            "defaultRuntimeSeccompProfileEnabled": True,
            "disableManifestsDirectory": True,
        },
    }
    if contract < (1, 12):
        machine["network"] = _legacy_network(spec, settings)
    elif contract < (1, 13):
        machine["network"] = {}
    machine["install"] = _install(spec, settings)
    if spec.get("sysctls"):
        machine["sysctls"] = yamlv3.sort_keys(spec["sysctls"])
    mirrors = spec.get("registry_mirrors") or {}
    if mirrors and contract < (1, 12):
        machine["registries"] = {"mirrors": {host: {"endpoints": list(mirrors[host])} for host in sorted(mirrors)}}
    features = {}
    if contract < (1, 12):
        features.update(rbac=True, stableHostname=True, apidCheckExtKeyUsage=True)
    features["diskQuotaSupport"] = True
    features["kubePrism"] = {"enabled": True, "port": 7445}
    features["hostDNS"] = {"enabled": True, "forwardKubeDNSToHost": True}
    machine["features"] = features
    labels = _node_labels(spec, settings)
    if labels:
        machine["nodeLabels"] = labels

    control_plane = {"endpoint": spec["cluster_endpoint"]}
    if spec.get("local_api_server_port") and controlplane:
        control_plane["localAPIServerPort"] = spec["local_api_server_port"]
    network = {}
    cni = settings["cni"]
    if cni["name"] != "flannel":
        network["cni"] = {"name": cni["name"]}
        if cni.get("urls"):
            network["cni"]["urls"] = list(cni["urls"])
    network.update(dnsDomain=settings["dns_domain"], podSubnets=settings["pod_subnets"], serviceSubnets=settings["service_subnets"])
    cluster = {
        "id": secrets["cluster"]["id"],
        "secret": secrets["cluster"]["secret"],
        "controlPlane": control_plane,
        "clusterName": spec["cluster_name"],
        "network": network,
        "token": secrets["secrets"]["bootstraptoken"],
    }
    if controlplane:
        if secrets["secrets"].get("secretboxencryptionsecret"):
            cluster["secretboxEncryptionSecret"] = secrets["secrets"]["secretboxencryptionsecret"]
        else:
            cluster["aescbcEncryptionSecret"] = secrets["secrets"]["aescbcencryptionsecret"]
    cluster["ca"] = {"crt": certs["k8s"]["crt"], "key": certs["k8s"]["key"] if controlplane else ""}
    if controlplane:
        cluster["aggregatorCA"] = {"crt": certs["k8saggregator"]["crt"], "key": certs["k8saggregator"]["key"]}
        cluster["serviceAccount"] = {"key": certs["k8sserviceaccount"]["key"]}
        api_server = {"image": settings["images"]["apiserver"]}
        sans = settings["cert_sans"] if contract >= (1, 12) else [settings["host"]] + settings["cert_sans"]
        if sans:
            api_server["certSANs"] = sans
        if contract < (1, 12):
            api_server["disablePodSecurityPolicy"] = True
        api_server["admissionControl"] = [_admission_control()]
        api_server["auditPolicy"] = _audit_policy()
        cluster["apiServer"] = api_server
        cluster["controllerManager"] = {"image": settings["images"]["controller_manager"]}
        cluster["proxy"] = {"image": settings["images"]["proxy"]}
        cluster["scheduler"] = {"image": settings["images"]["scheduler"]}
    cluster["discovery"] = {"enabled": True, "registries": {"kubernetes": {"disabled": True}, "service": {}}}
    if controlplane:
        cluster["etcd"] = {"ca": {"crt": certs["etcd"]["crt"], "key": certs["etcd"]["key"]}}
        cluster.update(_v1alpha1_manifests(spec))
        if spec.get("allow_scheduling_on_control_planes"):
            cluster["allowSchedulingOnControlPlanes"] = True

    documents = [{"version": V1, "debug": False, "persist": True, "machine": machine, "cluster": cluster}]
    if contract >= (1, 12):
        documents += _registry_documents(mirrors)
        documents.append(_hostname_document(spec))
        network_documents, nameservers = _network_documents(spec)
        if nameservers:
            documents.append(_document("ResolverConfig", nameservers=nameservers))
        documents += network_documents
    return documents


def _registry_documents(mirrors):
    return [
        _document("RegistryMirrorConfig", name=host, endpoints=[{"url": url} for url in mirrors[host]])
        for host in sorted(mirrors)
    ]


def _hostname_document(spec):
    if spec.get("hostname"):
        return _document("HostnameConfig", hostname=spec["hostname"])
    return _document("HostnameConfig", auto="stable")


def _v114_documents(secrets, spec, settings):
    controlplane = settings["controlplane"]
    certs = secrets["certs"]
    cluster = {"token": secrets["secrets"]["bootstraptoken"]}
    if controlplane:
        cluster["etcd"] = {"ca": {"crt": certs["etcd"]["crt"], "key": certs["etcd"]["key"]}}
    documents = [{
        "version": V1, "debug": False, "persist": True,
        "machine": {
            "type": spec["role"],
            "token": secrets["trustdinfo"]["token"],
            "ca": {"crt": certs["os"]["crt"], "key": certs["os"]["key"] if controlplane else ""},
            "certSANs": list(settings["cert_sans"]),
            "features": {"diskQuotaSupport": True},
        },
        "cluster": cluster,
    }]
    documents.append(_document("DiscoveryServiceConfig", name="default", endpoint=DISCOVERY_ENDPOINT))
    documents.append(_document("DiscoveryIdentityConfig", clusterID=secrets["cluster"]["id"], clusterSecret=secrets["cluster"]["secret"]))
    if settings["disk"] or spec.get("install_disk_selector"):
        installer = {"image": spec["install_image"]} if spec.get("install_image") else {}
        documents.append(_document(
            "UnattendedInstallConfig", installer=installer,
            provisioning={"diskSelector": {"match": _disk_cel(spec, settings)}, "wipe": False},
        ))
    network_documents, nameservers = _network_documents(spec)
    documents.append(_document("ResolverConfig", nameservers=nameservers, hostDNS={"enabled": True, "forwardKubeDNSToHost": True}))
    if spec.get("sysctls"):
        documents.append(_document("SysctlConfig", params=yamlv3.sort_keys(spec["sysctls"])))
    documents.append(_document("VolumeConfig", name="EPHEMERAL", mount={"secure": True}))
    documents.append(_document("FilesystemTrimConfig", interval="168h0m0s"))
    documents.append(_document("SecurityProfileConfig", workloadIsolation=True))
    documents += _registry_documents(spec.get("registry_mirrors") or {})
    documents.append(_hostname_document(spec))
    documents += network_documents

    documents.append(_document("KubeClusterConfig", clusterName=spec["cluster_name"], endpoint=spec["cluster_endpoint"]))
    labels = _node_labels(spec, settings, {CONTROL_PLANE_LABEL: ""} if controlplane else None)
    taints = None
    if controlplane and not spec.get("allow_scheduling_on_control_planes"):
        taints = {CONTROL_PLANE_LABEL: "NoSchedule"}
    documents.append(_document("KubeNodeConfig", nodeIP={}, labels=labels or None, taints=taints))
    documents.append(_document("KubeletConfig", image=settings["images"]["kubelet"], config={}, defaultRuntimeSeccompProfileEnabled=True))
    documents.append(_document(
        "KubeNetworkConfig", dnsDomain=settings["dns_domain"], podSubnets=settings["pod_subnets"], serviceSubnets=settings["service_subnets"],
    ))
    if controlplane:
        documents.append(_document("KubeAPIServerCAConfig", issuingCA={"cert": _pem(certs["k8s"]["crt"]), "key": _pem(certs["k8s"]["key"])}))
    else:
        documents.append(_document("KubeAPIServerCAConfig", acceptedCAs=[_pem(certs["k8s"]["crt"])]))
    documents.append(_document("KubePrismConfig", port=7445))
    if not controlplane:
        return documents

    aggregator = certs["k8saggregator"]
    documents.append(_document("KubeAggregatorCAConfig", issuingCA={"cert": _pem(aggregator["crt"]), "key": _pem(aggregator["key"])}))
    documents.append(_document("KubeAdmissionControlConfig", **_admission_control()))
    documents.append(_document("KubeAuditPolicyConfig", configuration=_audit_policy()))
    documents.append(_document("KubeAuthenticationConfig", configuration={
        "anonymous": {"conditions": [{"path": "/livez"}, {"path": "/readyz"}, {"path": "/healthz"}], "enabled": True},
        "jwt": [],
    }))
    documents.append(_document("KubeAuthorizerConfig", name="node", type="Node"))
    documents.append(_document("KubeAuthorizerConfig", name="rbac", type="RBAC"))
    providers = []
    if secrets["secrets"].get("secretboxencryptionsecret"):
        providers.append({"secretbox": {"keys": [{"name": "key2", "secret": secrets["secrets"]["secretboxencryptionsecret"]}]}})
    if secrets["secrets"].get("aescbcencryptionsecret"):
        providers.append({"secretbox": {"keys": [{"name": "key1", "secret": secrets["secrets"]["aescbcencryptionsecret"]}]}})
    documents.append(_document("KubeEtcdEncryptionConfig", config={"resources": [{"providers": providers, "resources": ["secrets"]}]}))
    documents.append(_document("KubeServiceAccountConfig", issuer={
        "privateKey": _pem(certs["k8sserviceaccount"]["key"]), "issuerURL": spec["cluster_endpoint"],
    }))
    documents.append(_document(
        "KubeAPIServerConfig", image=settings["images"]["apiserver"],
        apiPort=spec.get("local_api_server_port") or None, certExtraSANs=settings["cert_sans"] or None,
    ))
    documents.append(_document("KubeControllerManagerConfig", image=settings["images"]["controller_manager"]))
    documents.append(_document("KubeSchedulerConfig", image=settings["images"]["scheduler"], config={}))
    documents.append(_document("KubeProxyConfig", image=settings["images"]["proxy"], config={}))
    cni = settings["cni"]
    if cni["name"] == "flannel":
        documents.append(_document("KubeFlannelCNIConfig", backendType="vxlan", backendPort=4789))
    documents.append(_document("KubeCoreDNSConfig", enabled=True))
    cni_names = []
    if cni["name"] == "custom":
        for index, url in enumerate(cni["urls"]):
            cni_names.append("custom-cni" if index == 0 else "custom-cni-%d" % index)
            documents.append(_document("KubeExternalManifestConfig", name=cni_names[-1], url=url))
    return documents + _manifest_documents(spec, cni_names)


# ---------------------------------------------------------------------------------------------
# First workloads: extra (URL) and inline manifests that Talos applies at bootstrap, control planes only.
# Before 1.14 they are cluster.extraManifests / cluster.inlineManifests of the v1alpha1 document; 1.14
# gives each one a document of its own (KubeExternalManifestConfig, KubeInlineManifestConfig), named.

_MANIFEST_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
INLINE_MANIFEST_KEYS = ("name", "contents")


def yaml_error(exc):
    """A PyYAML error as one line that says where: 'line 2, column 1: did not find ...'."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
    where = "line %d, column %d: " % (mark.line + 1, mark.column + 1) if mark is not None else ""
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        problem += " (%s at line %d, column %d)" % (context, context_mark.line + 1, context_mark.column + 1)
    return where + problem


def _manifest_documents_problem(contents):
    """Why contents is not a Kubernetes manifest (YAML documents, each with apiVersion and kind), or None."""
    try:
        documents = [document for document in yaml.safe_load_all(contents) if document is not None]
    except yaml.YAMLError as exc:
        return "not valid YAML: %s" % yaml_error(exc)
    if not documents:
        return "holds no YAML document"
    for index, document in enumerate(documents):
        if not isinstance(document, dict) or not document.get("apiVersion") or not document.get("kind"):
            return "document %d is not a Kubernetes object (a mapping with apiVersion and kind)" % (index + 1)
    return None


def manifest_problems(extra, inline):
    """(key, message) for every problem of extra manifest URLs and inline manifests ({name, contents})."""
    problems = []
    for index, url in enumerate(extra):
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            problems.append(("extra_manifests[%d]" % index, "%r is not an http(s) URL" % (url,)))
        elif url in extra[:index]:
            problems.append(("extra_manifests[%d]" % index, "%s is listed more than once" % url))
    names = []
    for index, manifest in enumerate(inline):
        key = "inline_manifests[%d]" % index
        if not isinstance(manifest, dict):
            problems.append((key, "must be a mapping with name and contents"))
            continue
        unknown = sorted(set(manifest) - set(INLINE_MANIFEST_KEYS))
        if unknown:
            problems.append((key, "unknown keys %s (known: %s)" % (", ".join(map(str, unknown)), ", ".join(INLINE_MANIFEST_KEYS))))
        name = manifest.get("name")
        if not isinstance(name, str) or len(name) > 253 or not _MANIFEST_NAME.match(name):
            problems.append((key + ".name", "%r is not a manifest name: lower-case letters, digits, '-' and '.' (a DNS subdomain)" % (name,)))
        elif name in names:
            problems.append((key + ".name", "%s is the name of another inline manifest: names must be unique" % name))
        names.append(name)
        contents = manifest.get("contents")
        problem = _manifest_documents_problem(contents) if isinstance(contents, str) else "must be a string (the manifest's YAML)"
        if problem:
            problems.append((key + ".contents", problem))
    return problems


def external_manifest_names(urls, taken=()):
    """A unique document name for each URL (1.14): its file name without .yaml, e.g. install for .../install.yaml."""
    names, used = [], set(taken)
    for url in urls:
        base = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1].lower()
        base = re.sub(r"\.(ya?ml|json)\Z", "", base)
        base = re.sub(r"[^a-z0-9.-]+", "-", base).strip("-.")[:60].strip("-.") or "manifest"
        name, number = base, 2
        while name in used:
            name, number = "%s-%d" % (base, number), number + 1
        used.add(name)
        names.append(name)
    return names


def _trimmed(contents):
    # Talos decodes inlineManifests contents with leading tabs and newlines trimmed: write them so.
    return contents.lstrip("\t\n\v\f\r")


def _v1alpha1_manifests(spec):
    fields = {}
    if spec.get("extra_manifests"):
        fields["extraManifests"] = list(spec["extra_manifests"])
    if spec.get("inline_manifests"):
        fields["inlineManifests"] = [{"name": m["name"], "contents": _trimmed(m["contents"])} for m in spec["inline_manifests"]]
    return fields


def _manifest_documents(spec, taken):
    urls = spec.get("extra_manifests") or []
    documents = [
        _document("KubeExternalManifestConfig", name=name, url=url)
        for name, url in zip(external_manifest_names(urls, taken), urls)
    ]
    documents += [
        _document("KubeInlineManifestConfig", name=m["name"], manifest=m["contents"]) for m in spec.get("inline_manifests") or []
    ]
    return documents


def _unpatched_documents(secrets, spec):
    """(documents before the node's patches, settings) of a validated spec; SpecError otherwise."""
    problems = validate_spec(spec)
    if problems:
        raise SpecError(problems)
    settings = _settings(spec)
    try:
        if settings["contract"] >= (1, 14):
            return _v114_documents(secrets, spec, settings), settings
        return _pre14_documents(secrets, spec, settings), settings
    except SpecError as exc:
        raise SpecError(["nodes[%s].%s" % (spec["name"], problem) for problem in exc.problems]) from None


def _patched_documents(documents, spec, settings, patches):
    """documents with patches applied (Talos's key order when there are any), validated."""
    install_required = bool(settings["disk"] or spec.get("install_disk_selector"))
    where = "nodes[%s]" % spec["name"]
    try:
        for index, item in enumerate(patches):
            try:
                documents = patching.apply(documents, item, settings["contract"])
            except patching.PatchError as exc:
                raise patching.PatchError("patches[%d]: %s" % (index, exc)) from None
        if patches:
            documents = [patching.reorder(document, settings["contract"]) for document in documents]
        patching.validate(documents, spec["role"], install_required=install_required, contract=settings["contract"])
    except patching.PatchError as exc:
        raise SpecError(["%s.%s" % (where, exc) if str(exc).startswith("patches[") else "%s.patches: %s" % (where, exc)]) from None
    return documents


def render_documents(secrets, spec):
    """The node's config as a list of documents (dicts in Talos's key order), patches applied."""
    documents, settings = _unpatched_documents(secrets, spec)
    return _patched_documents(documents, spec, settings, spec.get("patches") or [])


def render_documents_and_unpatched(secrets, spec):
    """(render_documents of spec, render_documents of spec without its patches), from one render of the node."""
    documents, settings = _unpatched_documents(secrets, spec)
    patched = _patched_documents(copy.deepcopy(documents), spec, settings, spec.get("patches") or [])
    return patched, _patched_documents(documents, spec, settings, [])


def render(secrets_bundle, spec):
    """The whole multi-document machine config of one node, as talosctl would write it."""
    return yamlv3.dump_all(render_documents(secrets_bundle, spec))


# ---------------------------------------------------------------------------------------------
# Redaction


def secret_values(secrets_bundle):
    """Every secret string in a bundle and in the configs rendered from it (keys, tokens, ids)."""
    values = {
        secrets_bundle["cluster"]["id"], secrets_bundle["cluster"]["secret"], secrets_bundle["trustdinfo"]["token"],
    }
    values.update(value for value in secrets_bundle["secrets"].values() if value)
    for pair in secrets_bundle["certs"].values():
        if pair.get("key"):
            values.add(pair["key"])
            values.update(line for line in _pem(pair["key"]).splitlines() if line and not line.startswith("-----"))
    return sorted(values, key=len, reverse=True)


def redact(text, secrets_bundle):
    """text with every secret of the bundle replaced by `<redacted>` (certificates stay)."""
    for value in secret_values(secrets_bundle):
        text = text.replace(value, "<redacted>")
    return text


# ---------------------------------------------------------------------------------------------
# Writing the configs of many nodes (the talos_machine_config module)


def load_secrets(path, check_mode=False):
    """The parsed secrets bundle at path; SpecError when it is missing or unusable.

    In check mode a bundle that does not exist yet (it would be created by this run) is stood in for
    by placeholder values, so that every node reports the change it would get.
    """
    try:
        bundle = secrets.load(path)
    except secrets.BundleError as exc:
        raise SpecError(["secrets: %s: %s" % (path, problem) for problem in exc.problems])
    if bundle is None:
        if check_mode:
            return secrets.placeholder_bundle()
        raise SpecError(["secrets: %s does not exist; create it with netboot.talos.talos_secrets" % path])
    return bundle


def ensure_configs(secrets_path, dest, nodes, check_mode=False, want_diff=False):
    """Render every node and write `<dest>/<name>.yaml` (0600) where it changed.

    Every spec is validated and rendered before anything is written; SpecError lists all problems.
    Returns {changed, rendered, changed_nodes, diff}; the diff is redacted, never config secrets.
    """
    bundle = load_secrets(secrets_path, check_mode)
    problems, rendered = [], []
    names = [node.get("name") if isinstance(node, dict) else None for node in nodes]
    for name in sorted({n for n in names if isinstance(n, str) and names.count(n) > 1}):
        problems.append("nodes[%s].name: appears more than once" % name)
    for node in nodes:
        try:
            rendered.append((node["name"], render(bundle, node).encode("utf-8")))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    changed = files.ensure_directory(dest, 0o700, check_mode)
    changed_nodes, diffs = [], []
    for name, content in rendered:
        path = os.path.join(dest, name + ".yaml")
        node_changed, previous = files.ensure_secret_file(path, content, 0o600, check_mode)
        if node_changed:
            changed_nodes.append(name)
            if want_diff:
                before = "" if previous is None else redact(previous.decode("utf-8", "replace"), bundle)
                diffs.append({"before_header": path, "after_header": path, "before": before, "after": redact(content.decode("utf-8"), bundle)})
    return {
        "changed": changed or bool(changed_nodes),
        "rendered": [name for name, _unused in rendered],
        "changed_nodes": changed_nodes,
        "diff": diffs,
    }
