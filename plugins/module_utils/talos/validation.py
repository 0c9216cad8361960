# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Talos's validation of the non-v1alpha1 documents of a machine config, per kind and version contract.

Talos (container.Validate) refuses a document whose kind its version does not know, validates every
document (`Kind[/name]: message`) and cross-checks each against the v1alpha1 document (its first
conflict only). Messages are Talos's own words. Checks needing a Talos runtime (image tags, CEL
expressions, PEM parsing) are not made here.
"""

from __future__ import annotations

import ipaddress
import json
import re

_KINDS_19 = frozenset(
    "EventSinkConfig ExtensionServiceConfig KmsgLogConfig KubeSpanEndpointsConfig NetworkDefaultActionConfig "
    "NetworkRuleConfig SideroLinkConfig TrustedRootsConfig VolumeConfig WatchdogTimerConfig".split()
)
_KINDS_110 = _KINDS_19 | {"EthernetConfig", "PCIDriverRebindConfig", "UserVolumeConfig"}
_KINDS_111 = _KINDS_110 | {"ExistingVolumeConfig", "RawVolumeConfig", "SwapVolumeConfig", "ZswapConfig"}
_KINDS_112 = _KINDS_111 | frozenset(
    "BondConfig BridgeConfig DHCPv4Config DHCPv6Config DummyLinkConfig HCloudVIPConfig HostnameConfig Layer2VIPConfig "
    "LinkAliasConfig LinkConfig OOMConfig RegistryAuthConfig RegistryMirrorConfig RegistryTLSConfig ResolverConfig "
    "StaticHostConfig TimeSyncConfig VLANConfig WireguardConfig".split()
)
_KINDS_113 = _KINDS_112 | frozenset(
    "BlackholeRouteConfig EnvironmentConfig ExternalVolumeConfig ImageVerificationConfig KubeSpanConfig RoutingRuleConfig "
    "TCPProbeConfig VRFConfig".split()
)
_KINDS_114 = _KINDS_113 | frozenset(
    "BGPInstanceConfig CRIBaseRuntimeSpecConfig CRICustomizationConfig ContainerConfig DiscoveryIdentityConfig "
    "DiscoveryServiceConfig EtcFileConfig FilesystemScrubConfig FilesystemTrimConfig HTTPProbeConfig ImageCacheConfig "
    "KernelModuleConfig KubeAPIServerCAConfig KubeAPIServerConfig KubeAdmissionControlConfig KubeAggregatorCAConfig "
    "KubeAuditPolicyConfig KubeAuthenticationConfig KubeAuthorizerConfig KubeClusterConfig KubeControllerManagerConfig "
    "KubeCoreDNSConfig KubeCredentialProviderConfig KubeEtcdEncryptionConfig KubeExternalManifestConfig "
    "KubeFlannelCNIConfig KubeInlineManifestConfig KubeNetworkConfig KubeNodeConfig KubePrismConfig KubeProxyConfig "
    "KubeSchedulerConfig KubeServiceAccountConfig KubeStaticPodConfig KubeTalosAPIAccessConfig KubeletConfig "
    "LVMLogicalVolumeConfig LVMVolumeGroupConfig RAIDArrayConfig SecurityProfileConfig SysctlConfig SysfsConfig "
    "UdevRulesConfig UnattendedInstallConfig VethConfig".split()
)
# The document kinds each Talos version registers (all of apiVersion v1alpha1).
KINDS = {(1, 9): _KINDS_19, (1, 10): _KINDS_110, (1, 11): _KINDS_111, (1, 12): _KINDS_112, (1, 13): _KINDS_113, (1, 14): _KINDS_114}

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_ENV_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def _q(value):
    """Go's %q."""
    return json.dumps(str(value))


def _empty(value):
    return value in (None, "", [], {})


def _named(message):
    return lambda doc, _contract: [message] if _empty(doc.get("name")) else []


def _required(field, message):
    return lambda doc, _contract: [message] if _empty(_get(doc, field)) else []


def _get(doc, field):
    value = doc
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _first(*checks):
    """Talos returns on the first failing check of these kinds."""

    def check(doc, contract):
        for one in checks:
            problems = one(doc, contract)
            if problems:
                return problems[:1]
        return []

    return check


def _ip_name(message):
    def check(doc, _contract):
        name = doc.get("name")
        if _empty(name):
            return [message]
        try:
            ipaddress.ip_address(str(name))
        except ValueError:
            return [
                (
                    "name must be a valid IP address"
                    if message == "name is required"
                    else "name must be a valid IP address: ParseAddr(%s): unable to parse IP" % _q(name)
                )
            ]
        return []

    return check


def _image(component, disabled_field=None):
    """A Kubernetes component document: its image is required unless the component is disabled."""

    def check(doc, _contract):
        if disabled_field and doc.get(disabled_field) is False:
            return []
        return ["%s image cannot be empty" % component] if _empty(doc.get("image")) else []

    return check


def _proxy_mode(doc, _contract):
    if doc.get("enabled") is False or doc.get("mode") in (None, "", "nftables", "iptables", "ipvs"):
        return []
    return ["invalid proxy mode %s: supported modes are iptables, ipvs and nftables" % _q(doc.get("mode"))]


def _manifest_name(label):
    def check(doc, _contract):
        name = doc.get("name")
        if _empty(name):
            return ["%s name is required" % label]
        if len(str(name)) > 253:
            return ["%s name is invalid: domain name length exceeds limit of 253: %s" % (label, _q(name))]
        if not _DNS1123_SUBDOMAIN.match(str(name)):
            return ["%s name is invalid: domain doesn't match required format: %s" % (label, _q(name))]
        return []

    return check


def _external_manifest_url(doc, _contract):
    url = doc.get("url")
    if _empty(url):
        return ["manifest URL is required"]
    scheme = str(url).split("://", 1)[0] if "://" in str(url) else ""
    return [] if scheme in ("http", "https") else ["manifest URL scheme must be http or https: %s" % _q(scheme)]


def _port(doc, _contract):
    port = doc.get("port")
    port = port if isinstance(port, int) and not isinstance(port, bool) else 0
    return [] if 0 < port <= 65535 else ["invalid port %d: must be in range 1-65535" % port]


def _vlan(doc, _contract):
    problems = []
    vlan = doc.get("vlanID")
    if not isinstance(vlan, int) or isinstance(vlan, bool) or not 0 < vlan <= 4094:
        problems.append("vlanID must be specified and between 1 and 4094")
    if _empty(doc.get("parent")):
        problems.append("parent must be specified")
    if doc.get("vlanMode") not in (None, "802.1q", "802.1ad"):
        problems.append("vlanMode must be either '802.1q' or '802.1ad'")
    return problems


def _hostname(doc, _contract):
    auto, hostname = doc.get("auto"), doc.get("hostname")
    problems = []
    if auto is None and _empty(hostname):
        problems.append("either 'auto' or 'hostname' must be set")
    if auto not in (None, "off") and not _empty(hostname):
        problems.append("'auto' and 'hostname' cannot be set at the same time")
    if auto not in (None, "off", "stable"):
        problems.append("invalid value for 'auto': %s" % auto)
    return problems


def _authorizer(doc, _contract):
    problems = []
    kind = doc.get("type") or ""
    if _empty(doc.get("name")):
        problems.append("authorizer name is required")
    if not kind:
        problems.append("authorizer type is required")
    if kind not in ("Node", "RBAC", "Webhook"):
        problems.append("authorizer type %s is not allowed, allowed types are [Node RBAC Webhook]" % kind)
    if kind == "Webhook" and _empty(doc.get("webhook")):
        problems.append("authorizer webhook configuration is required for Webhook authorizer type")
    return problems


def _extension_service(doc, _contract):
    name = doc.get("name")
    if _empty(name):
        return ["name is required"]
    files, environment = doc.get("configFiles") or [], doc.get("environment") or []
    if not files and not environment:
        return ["no config files found for extension %s" % _q(name)]
    for item in files:
        item = item if isinstance(item, dict) else {}
        if _empty(item.get("content")):
            return ["extension content is required for extension %s" % _q(name)]
        if _empty(item.get("mountPath")):
            return ["extension mount path is required for extension %s" % _q(name)]
    return []


def _environment(doc, _contract):
    variables = doc.get("variables") or {}
    return ["invalid environment variable name: %s" % _q(key) for key in sorted(variables) if not _ENV_NAME.match(str(key))]


def _zswap(doc, _contract):
    percent = doc.get("maxPoolPercent")
    return ["maxPoolPercent must be between 0 and 100"] if isinstance(percent, int) and not 0 <= percent <= 100 else []


def _kubespan_mtu(doc, _contract):
    mtu = doc.get("mtu")
    return ["kubespan link MTU must be at least 1280"] if isinstance(mtu, int) and mtu < 1280 else []


def _registry_mirror(doc, _contract):
    problems = _named("name must be specified")(doc, _contract)
    for index, endpoint in enumerate(doc.get("endpoints") or []):
        url = endpoint.get("url") if isinstance(endpoint, dict) else None
        if _empty(url):
            problems.append("endpoints[%d].url must be specified" % index)
        elif str(url).split("://", 1)[0] not in ("http", "https") or "://" not in str(url):
            problems.append(
                "endpoints[%d].url has unsupported scheme: %s" % (index, _q(str(url).split("://", 1)[0] if "://" in str(url) else ""))
            )
    return problems


def _hostname_length(doc, _contract):
    hostname = doc.get("hostname")
    if _empty(hostname):
        return []
    problems = ["fqdn is too long: %d" % len(str(hostname))] if len(str(hostname)) > 253 else []
    short = str(hostname).split(".", 1)[0]
    return problems + (["invalid hostname %s" % _q(short)] if not 0 < len(short) <= 63 else [])


def _volume_name(max_length, underscore=False):
    """The name rules of user, raw, swap, external, RAID and LVM volumes (max_length None: no limit)."""
    allowed = re.compile(r"[A-Za-z0-9_-]*\Z" if underscore else r"[A-Za-z0-9-]*\Z")
    wording = (
        "name can only contain ASCII letters, digits, hyphens and underscores"
        if underscore
        else "name can only contain lowercase and uppercase ASCII letters, digits, and hyphens"
    )

    def check(doc, _contract):
        name = "" if doc.get("name") is None else str(doc.get("name"))
        problems = ["name is required"] if not name else []
        if max_length is not None and not 0 < len(name) <= max_length:
            problems.append("name must be between 1 and %d characters long" % max_length)
        if not allowed.match(name):
            problems.append(wording)
        return problems

    return check


# VolumeConfig names each version accepts, in Talos's order.
_SYSTEM_VOLUMES = {
    (1, 9): ["EPHEMERAL", "IMAGECACHE"],
    (1, 11): ["STATE", "EPHEMERAL", "IMAGECACHE"],
    (1, 14): ["STATE", "EPHEMERAL", "IMAGECACHE", "ETCD", "CRI", "KUBELET", "LOG"],
}


def _system_volume(doc, contract):
    allowed = _SYSTEM_VOLUMES[max(version for version in _SYSTEM_VOLUMES if version <= contract)]
    if doc.get("name") in allowed:
        return []
    return ["only [%s] volumes are supported" % " ".join(_q(name) for name in allowed)]


def _keys_not_empty(label):
    return lambda doc, _contract: ["%s key cannot be empty" % label] if "" in (doc.get("params") or {}) else []


def _wireguard(doc, _contract):
    problems = [] if not _empty(doc.get("privateKey")) else ["wireguard private key must be specified"]
    for index, peer in enumerate(doc.get("peers") or []):
        if _empty((peer or {}).get("publicKey") if isinstance(peer, dict) else None):
            problems.append("wireguard peer public key must be specified (peer index %d)" % index)
    return problems


def _url_scheme(field, required, schemes, wording):
    def check(doc, _contract):
        url = doc.get(field)
        if _empty(url):
            return [required]
        return [] if "://" in str(url) and str(url).split("://", 1)[0] in schemes else [wording]

    return check


def _vrf_table(doc, _contract):
    table = doc.get("table")
    if table in (None, "", 0, "unspec", "local", "main", "default"):
        return ["cannot create vrf with reserved table %s" % (table if table not in (None, "", 0) else "unspec")]
    return []


def _veth_peer(doc, _contract):
    name, peer = doc.get("name"), (doc.get("peer") or {}).get("name") if isinstance(doc.get("peer"), dict) else None
    return ["name and peer name must be different"] if not _empty(name) and name == peer else []


def _image_rules(doc, _contract):
    problems = []
    for index, rule in enumerate(doc.get("rules") or []):
        rule = rule if isinstance(rule, dict) else {}
        skip, deny = rule.get("skip") is True, rule.get("deny") is True
        verifiers = [name for name in ("keyless", "publicKey") if rule.get(name) is not None]
        if _empty(rule.get("image")):
            problems.append("rule %d: imagePattern must be specified" % index)
        if skip and deny:
            problems.append("rule %d: skip and deny cannot both be true" % index)
        if (skip or deny) and verifiers:
            problems.append("rule %d: verifiers cannot be configured if skip or deny is true" % index)
        if not (skip or deny or verifiers):
            problems.append("rule %d: at least one verifier must be configured" % index)
        if len(verifiers) == 2:
            problems.append("rule %d: only one of keyless or publicKey verifier can be configured" % index)
    return problems


_ROLES = ("os:admin", "os:operator", "os:reader", "os:etcd:backup", "os:image:verifier", "os:meta:writer", "os:impersonator")


def _allowed_roles(doc, _contract):
    return ["invalid role %s in .allowedRoles" % _q(role) for role in doc.get("allowedRoles") or [] if role not in _ROLES]


def _subnet_counts(doc, _contract):
    if len(doc.get("podSubnets") or []) == len(doc.get("serviceSubnets") or []):
        return []
    return ["the number of pod subnets must match the number of service subnets"]


def _host_port(doc, _contract):
    endpoint = "" if doc.get("endpoint") is None else str(doc.get("endpoint"))
    if ":" not in endpoint:
        return ["event sink endpoint: address %s: missing port in address" % endpoint]
    return []


def _one_time_source(doc, _contract):
    return ["only one of ntp or ptp configuration can be specified"] if doc.get("ntp") is not None and doc.get("ptp") is not None else []


def _all(*checks):
    return lambda doc, contract: [problem for check in checks for problem in check(doc, contract)]


_NAME = _named("name must be specified")
_NAME_IS_REQUIRED = _named("name is required")

# kind -> (first contract, check); one check per kind, from Talos's Validate of that document.
VALIDATORS = {
    "ExtensionServiceConfig": ((1, 9), _extension_service),
    "KmsgLogConfig": ((1, 9), _first(_NAME_IS_REQUIRED, _required("url", "url is required"))),
    "WatchdogTimerConfig": ((1, 9), _required("device", "watchdog device: empty value")),
    "EthernetConfig": ((1, 10), _NAME_IS_REQUIRED),
    "ZswapConfig": ((1, 11), _zswap),
    "BondConfig": (
        (1, 12),
        _all(_NAME, _required("links", "at least one link must be specified"), _required("bondMode", "bond mode must be specified")),
    ),
    "BridgeConfig": ((1, 12), _NAME),
    "DummyLinkConfig": ((1, 12), _NAME),
    "LinkConfig": ((1, 12), _NAME),
    "VLANConfig": ((1, 12), _all(_NAME, _vlan)),
    "DHCPv4Config": ((1, 12), _NAME),
    "DHCPv6Config": ((1, 12), _NAME),
    "Layer2VIPConfig": ((1, 12), _all(_ip_name("name must be specified"), _required("link", "link must be specified"))),
    "HCloudVIPConfig": (
        (1, 12),
        _all(
            _ip_name("name must be specified"),
            _required("link", "link must be specified"),
            _required("apiToken", "apiToken must be specified"),
        ),
    ),
    "HostnameConfig": ((1, 12), _all(_hostname, _hostname_length)),
    "StaticHostConfig": ((1, 12), _all(_ip_name("name is required"), _required("hostnames", "at least one hostname is required"))),
    "LinkAliasConfig": ((1, 12), _NAME),
    "RegistryMirrorConfig": ((1, 12), _registry_mirror),
    "RegistryAuthConfig": ((1, 12), _NAME),
    "RegistryTLSConfig": ((1, 12), _NAME),
    "EnvironmentConfig": ((1, 13), _environment),
    "VolumeConfig": ((1, 9), _system_volume),
    "UserVolumeConfig": ((1, 10), _volume_name(34)),
    "RawVolumeConfig": ((1, 11), _volume_name(34)),
    "SwapVolumeConfig": ((1, 11), _volume_name(34)),
    "ExistingVolumeConfig": ((1, 11), _volume_name(None)),
    "ExternalVolumeConfig": ((1, 13), _volume_name(34)),
    "RAIDArrayConfig": ((1, 14), _volume_name(32, underscore=True)),
    "LVMVolumeGroupConfig": ((1, 14), _volume_name(63, underscore=True)),
    "LVMLogicalVolumeConfig": ((1, 14), _volume_name(63, underscore=True)),
    "NetworkRuleConfig": ((1, 9), _first(_NAME_IS_REQUIRED, _required("portSelector.ports", "portSelector.ports is required"))),
    "SideroLinkConfig": (
        (1, 9),
        _url_scheme("apiUrl", "apiUrl is required", ("https", "grpc"), "apiUrl scheme must be https:// or grpc://"),
    ),
    "WireguardConfig": ((1, 12), _all(_NAME, _wireguard)),
    "RoutingRuleConfig": ((1, 13), _NAME),
    "BlackholeRouteConfig": ((1, 13), _NAME),
    "VRFConfig": ((1, 13), _all(_NAME, _vrf_table)),
    "TCPProbeConfig": ((1, 13), _all(_named("probe name is required"), _required("endpoint", "TCP probe endpoint is required"))),
    "HTTPProbeConfig": (
        (1, 14),
        _all(
            _named("probe name is required"),
            _url_scheme(
                "url",
                "HTTP probe URL is required",
                ("http", "https"),
                "HTTP probe URL must be an absolute http or https URL with a non-empty host",
            ),
        ),
    ),
    "VethConfig": ((1, 14), _veth_peer),
    "KernelModuleConfig": ((1, 14), _NAME_IS_REQUIRED),
    "SysctlConfig": ((1, 14), _keys_not_empty("sysctl")),
    "SysfsConfig": ((1, 14), _keys_not_empty("sysfs")),
    "EtcFileConfig": ((1, 14), _named("user etc file name cannot be empty")),
    "ImageVerificationConfig": ((1, 13), _image_rules),
    "UnattendedInstallConfig": ((1, 14), _required("provisioning.diskSelector.match", "provisioning.volumeSelector.match is required")),
    "DiscoveryServiceConfig": ((1, 14), _first(_NAME_IS_REQUIRED, _required("endpoint", "endpoint is required"))),
    "DiscoveryIdentityConfig": (
        (1, 14),
        _first(_required("clusterID", "clusterID is required"), _required("clusterSecret", "clusterSecret is required")),
    ),
    "KubeNetworkConfig": ((1, 14), _subnet_counts),
    "EventSinkConfig": ((1, 9), _host_port),
    "TimeSyncConfig": ((1, 12), _one_time_source),
    "KubeTalosAPIAccessConfig": ((1, 14), _allowed_roles),
    "KubeSpanConfig": ((1, 13), _kubespan_mtu),
    "KubeAPIServerConfig": ((1, 14), _image("kube-apiserver")),
    "KubeControllerManagerConfig": ((1, 14), _image("kube-controller-manager", "enabled")),
    "KubeSchedulerConfig": ((1, 14), _image("scheduler", "enabled")),
    "KubeProxyConfig": ((1, 14), _all(_image("proxy", "enabled"), _proxy_mode)),
    "KubeletConfig": ((1, 14), _image("kubelet")),
    "KubeClusterConfig": (
        (1, 14),
        _all(_required("clusterName", "clusterName must be specified"), _required("endpoint", "endpoint must be specified")),
    ),
    "KubeServiceAccountConfig": (
        (1, 14),
        _all(
            _required("issuer.privateKey", "service issuer private key is required"),
            _required("issuer.issuerURL", "service issuer URL is required"),
        ),
    ),
    "KubeAggregatorCAConfig": ((1, 14), _required("issuingCA", "issuing CA is not set")),
    "KubeExternalManifestConfig": ((1, 14), _all(_manifest_name("manifest"), _external_manifest_url)),
    "KubeInlineManifestConfig": ((1, 14), _manifest_name("manifest")),
    "KubeFlannelCNIConfig": ((1, 14), _required("backendType", "flannel backend type must be specified")),
    "KubePrismConfig": ((1, 14), _port),
    "KubeAdmissionControlConfig": ((1, 14), _named("admission control plugin name is required")),
    "KubeEtcdEncryptionConfig": ((1, 14), _required("config", "etcd encryption config is required")),
    "KubeStaticPodConfig": ((1, 14), _all(_manifest_name("static pod"), _required("pod", "static pod spec is required"))),
    "KubeAuthorizerConfig": ((1, 14), _authorizer),
}


def _cannot_use(what, path, kind):
    return "%s in v1alpha1 config (%s) can't be used with %s document, please remove it to avoid conflicts" % (what, path, kind)


def _use_only(what, path, kind):
    return "%s is already set in the v1alpha1 config (%s). Please remove it and use only the new %s document to avoid conflicts" % (
        what,
        path,
        kind,
    )


# kind -> (first contract, [(v1alpha1 path that must be unset, message)]): Talos reports the first conflict.
CONFLICTS = {
    "HostnameConfig": (
        (1, 12),
        [
            ("machine.network.hostname", "static hostname is already set in v1alpha1 config"),
            ("machine.features.stableHostname", "stable hostname is already set in v1alpha1 config"),
        ],
    ),
    "ResolverConfig": (
        (1, 12),
        [
            ("machine.network.searchDomains", ".machine.network.searchDomains is already set in v1alpha1 config"),
            ("machine.network.nameservers", ".machine.network.nameservers is already set in v1alpha1 config"),
            ("machine.network.disableSearchDomain", ".machine.network.disableSearchDomain is already set in v1alpha1 config"),
        ],
    ),
    "TimeSyncConfig": (
        (1, 12),
        [
            ("machine.time.disabled", "time sync cannot be disabled in both v1alpha1 and new-style configuration"),
            ("machine.time.servers", "time servers cannot be specified in both v1alpha1 and new-style configuration"),
            ("machine.time.bootTimeout", "boot timeout cannot be specified in both v1alpha1 and new-style configuration"),
        ],
    ),
    "UnattendedInstallConfig": (
        (1, 14),
        [("machine.install", "UnattendedInstallConfig config is incompatible with v1alpha1 config (.machine.install)")],
    ),
    "KubeProxyConfig": (
        (1, 14),
        [
            (
                "cluster.proxy",
                _cannot_use("cluster proxy config", ".machine.cluster.proxy", "KubeProxyConfig"),
            )
        ],
    ),
    "KubeAPIServerConfig": (
        (1, 14),
        [
            ("cluster.apiServer", "kube-apiserver config is already set in v1alpha1 config (.cluster.apiServer)"),
            (
                "cluster.controlPlane.localAPIServerPort",
                "kube-apiserver API port is already set in v1alpha1 config (.cluster.controlPlane.localAPIServerPort)",
            ),
        ],
    ),
    "KubeControllerManagerConfig": (
        (1, 14),
        [("cluster.controllerManager", "kube-controller-manager config is already set in v1alpha1 config (.cluster.controllerManager)")],
    ),
    "KubeSchedulerConfig": (
        (1, 14),
        [("cluster.scheduler", "kube-scheduler config is already set in v1alpha1 config (.cluster.scheduler)")],
    ),
    "KubeletConfig": ((1, 14), [("machine.kubelet", "kubelet config is already set in v1alpha1 config (.machine.kubelet)")]),
    "KubeClusterConfig": (
        (1, 14),
        [
            (
                "cluster.clusterName",
                _use_only("cluster name", ".cluster.clusterName", "KubeClusterConfig"),
            )
        ],
    ),
    "KubeNetworkConfig": (
        (1, 14),
        [
            (
                "cluster.network",
                _use_only("cluster network config", ".machine.cluster.network", "KubeNetworkConfig"),
            )
        ],
    ),
    "KubeCoreDNSConfig": ((1, 14), [("cluster.coreDNS", "CoreDNS config is already set in v1alpha1 config (.cluster.coreDNS)")]),
    "KubeServiceAccountConfig": (
        (1, 14),
        [("cluster.serviceAccount", "service account is already set in v1alpha1 config (.cluster.serviceAccount)")],
    ),
    "KubeAPIServerCAConfig": ((1, 14), [("cluster.ca", "kube-apiserver CA is already set in v1alpha1 config (.cluster.ca)")]),
    "KubeAggregatorCAConfig": (
        (1, 14),
        [
            (
                "cluster.aggregatorCA",
                "kube-apiserver aggregator CA is already set in v1alpha1 config (.cluster.aggregatorCA), "
                "please remove it and use the new KubeAggregatorCAConfig document instead",
            )
        ],
    ),
    "KubePrismConfig": (
        (1, 14),
        [
            (
                "machine.features.kubePrism",
                _cannot_use("KubePrism config", ".machine.features.kubePrism", "KubePrismConfig"),
            )
        ],
    ),
    "KubeTalosAPIAccessConfig": (
        (1, 14),
        [("machine.features.kubernetesTalosAPIAccess", ".machine.features.kubernetesTalosAPIAccess is already set in v1alpha1 config")],
    ),
    "KubeFlannelCNIConfig": (
        (1, 14),
        [
            (
                "cluster.network",
                _cannot_use("cluster network config", ".machine.cluster.network", "KubeFlannelCNIConfig"),
            )
        ],
    ),
    "DiscoveryIdentityConfig": (
        (1, 14),
        [("cluster.id", "cluster identity is already configured in .cluster.id/.cluster.secret of the v1alpha1 config")],
    ),
    "DiscoveryServiceConfig": (
        (1, 14),
        [("cluster.discovery", "discovery service is already configured in .cluster.discovery of the v1alpha1 config")],
    ),
}


_LINK_KINDS = {
    (1, 12): ("BondConfig", "BridgeConfig", "DummyLinkConfig", "LinkConfig", "VLANConfig", "WireguardConfig"),
    (1, 14): ("BondConfig", "BridgeConfig", "DummyLinkConfig", "LinkConfig", "VethConfig", "VLANConfig", "VRFConfig", "WireguardConfig"),
}


def _conflicting_kinds(contract):
    """kind -> the kinds that may not share its name (Talos's ConflictsWithKinds)."""
    conflicts = (
        {"ExistingVolumeConfig": ("UserVolumeConfig",), "UserVolumeConfig": ("ExistingVolumeConfig",)} if contract >= (1, 11) else {}
    )
    if contract >= (1, 12):
        links = _LINK_KINDS[(1, 14) if contract >= (1, 14) else (1, 12)]
        conflicts.update({kind: tuple(other for other in links if other != kind) for kind in links})
        conflicts.update({"HCloudVIPConfig": ("Layer2VIPConfig",), "Layer2VIPConfig": ("HCloudVIPConfig",)})
    return conflicts


def _container_problems(documents, contract):
    """What Talos's config container refuses: the same name under conflicting kinds, a link configured twice."""
    conflicts = _conflicting_kinds(contract)
    seen, claimed, links = set(), {}, _LINK_KINDS[(1, 14)] if contract >= (1, 14) else ()
    for doc in documents:
        if not doc.get("kind") or "version" in doc:
            continue
        doc_id = "%s/%s" % (doc["kind"], "" if doc.get("name") is None else doc["name"])
        clash = next((other for other in conflicts.get(doc["kind"], ()) if "%s/%s" % (other, doc_id.split("/", 1)[1]) in seen), None)
        if clash:
            return ["conflicting documents: %s/%s and %s" % (clash, doc_id.split("/", 1)[1], doc_id)]
        seen.add(doc_id)
        names = [doc.get("name")] + (
            [(doc.get("peer") or {}).get("name")] if doc["kind"] == "VethConfig" and isinstance(doc.get("peer"), dict) else []
        )
        for name in names if doc["kind"] in links else []:
            if name in claimed:
                return ["conflicting link configurations: %s and %s both configure %s" % (claimed[name], doc_id, _q(name))]
            claimed[name] = doc_id
    return []


def _present(v1, path):
    value = _get(v1, path)
    return value not in (None, "", False)


def _doc_id(doc):
    return "%s/%s" % (doc.get("kind"), doc["name"]) if doc.get("name") not in (None, "") else str(doc.get("kind"))


def validate(documents, contract, v1=None):
    """Talos's problems with the non-v1alpha1 documents of one config (empty when it would accept them)."""
    problems = _container_problems(documents, contract)
    known = KINDS.get(contract, KINDS[max(KINDS)])
    for doc in documents:
        if doc is v1:
            continue
        kind, api_version = doc.get("kind"), doc.get("apiVersion")
        if not kind or not api_version:
            continue  # patch.validate reports documents without apiVersion and kind
        if kind not in known or api_version != "v1alpha1":
            problems.append(
                "error decoding document %s/%s/%s: %s %s: not registered"
                % (api_version, kind, doc.get("name") or "", _q(kind), _q(api_version))
            )
            continue
        first, check = VALIDATORS.get(kind, ((1, 9), None))
        if check and contract >= first:
            problems.extend("%s: %s" % (_doc_id(doc), problem) for problem in check(doc, contract))
    for doc in documents:
        first, conflicts = CONFLICTS.get(doc.get("kind"), ((1, 99), []))
        if v1 is None or doc is v1 or contract < first:
            continue
        problems.extend([message for path, message in conflicts if _present(v1, path)][:1])
    return problems
