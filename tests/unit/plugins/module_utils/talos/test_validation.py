"""Talos's validation of every document kind, per version contract, with Talos's wording."""

from __future__ import annotations

import pytest

from ansible_collections.netboot.talos.plugins.module_utils.talos import validation


def doc(kind, **fields):
    return dict({"apiVersion": "v1alpha1", "kind": kind}, **fields)


V1 = {"version": "v1alpha1", "machine": {"type": "worker", "network": {"hostname": "n1"}},
      "cluster": {"clusterName": "c", "proxy": {"disabled": False}, "id": "x"}}

# (contract, document, the message Talos gives)
REFUSED = {
    "kind unknown to the version": ((1, 11), doc("HostnameConfig", auto="stable"),
                                    'error decoding document v1alpha1/HostnameConfig/: "HostnameConfig" "v1alpha1": not registered'),
    "wrong apiVersion": ((1, 14), dict(doc("HostnameConfig", auto="stable"), apiVersion="v1alpha2"), '"HostnameConfig" "v1alpha2": not registered'),
    "KubeProxyConfig without image": ((1, 14), doc("KubeProxyConfig"), "KubeProxyConfig: proxy image cannot be empty"),
    "KubeProxyConfig with a bad mode": ((1, 14), doc("KubeProxyConfig", image="i", mode="bpf"),
                                        'KubeProxyConfig: invalid proxy mode "bpf": supported modes are iptables, ipvs and nftables'),
    "KubeAPIServerConfig without image": ((1, 14), doc("KubeAPIServerConfig"), "KubeAPIServerConfig: kube-apiserver image cannot be empty"),
    "KubeControllerManagerConfig without image": ((1, 14), doc("KubeControllerManagerConfig"),
                                                  "KubeControllerManagerConfig: kube-controller-manager image cannot be empty"),
    "KubeSchedulerConfig without image": ((1, 14), doc("KubeSchedulerConfig"), "KubeSchedulerConfig: scheduler image cannot be empty"),
    "KubeletConfig without image": ((1, 14), doc("KubeletConfig"), "KubeletConfig: kubelet image cannot be empty"),
    "KubeClusterConfig without name": ((1, 14), doc("KubeClusterConfig", endpoint="https://a:6443"), "KubeClusterConfig: clusterName must be specified"),
    "KubeServiceAccountConfig without key": ((1, 14), doc("KubeServiceAccountConfig", issuer={"issuerURL": "https://a"}),
                                             "KubeServiceAccountConfig: service issuer private key is required"),
    "KubeAggregatorCAConfig without CA": ((1, 14), doc("KubeAggregatorCAConfig"), "KubeAggregatorCAConfig: issuing CA is not set"),
    "KubeExternalManifestConfig with ftp": ((1, 14), doc("KubeExternalManifestConfig", name="cni", url="ftp://x/y"),
                                            'KubeExternalManifestConfig/cni: manifest URL scheme must be http or https: "ftp"'),
    "KubeInlineManifestConfig with a bad name": ((1, 14), doc("KubeInlineManifestConfig", name="Bad_Name"),
                                                 "KubeInlineManifestConfig/Bad_Name: manifest name is invalid: domain doesn't match required format"),
    "KubePrismConfig with port 0": ((1, 14), doc("KubePrismConfig"), "KubePrismConfig: invalid port 0: must be in range 1-65535"),
    "KubeAuthorizerConfig of an unknown type": ((1, 14), doc("KubeAuthorizerConfig", name="a", type="ABAC"),
                                                "KubeAuthorizerConfig/a: authorizer type ABAC is not allowed, allowed types are [Node RBAC Webhook]"),
    "KubeStaticPodConfig without pod": ((1, 14), doc("KubeStaticPodConfig", name="p"), "KubeStaticPodConfig/p: static pod spec is required"),
    "KubeFlannelCNIConfig without backend": ((1, 14), doc("KubeFlannelCNIConfig"), "KubeFlannelCNIConfig: flannel backend type must be specified"),
    "LinkConfig without name": ((1, 12), doc("LinkConfig", mtu=9000), "LinkConfig: name must be specified"),
    "VLANConfig without id and parent": ((1, 12), doc("VLANConfig", name="v"), "VLANConfig/v: vlanID must be specified and between 1 and 4094"),
    "BondConfig without links": ((1, 12), doc("BondConfig", name="b", bondMode="802.3ad"), "BondConfig/b: at least one link must be specified"),
    "Layer2VIPConfig with a name that is no IP": ((1, 12), doc("Layer2VIPConfig", name="vip", link="eth0"),
                                                  'Layer2VIPConfig/vip: name must be a valid IP address: ParseAddr("vip"): unable to parse IP'),
    "HostnameConfig with neither": ((1, 12), doc("HostnameConfig"), "HostnameConfig: either 'auto' or 'hostname' must be set"),
    "HostnameConfig with both": ((1, 12), doc("HostnameConfig", auto="stable", hostname="h"), "'auto' and 'hostname' cannot be set at the same time"),
    "StaticHostConfig without hostnames": ((1, 12), doc("StaticHostConfig", name="10.0.0.1"), "StaticHostConfig/10.0.0.1: at least one hostname is required"),
    "RegistryMirrorConfig with a bad endpoint": ((1, 12), doc("RegistryMirrorConfig", name="docker.io", endpoints=[{"url": "ftp://m"}]),
                                                 'RegistryMirrorConfig/docker.io: endpoints[0].url has unsupported scheme: "ftp"'),
    "ExtensionServiceConfig without files": ((1, 9), doc("ExtensionServiceConfig", name="x"),
                                             'ExtensionServiceConfig/x: no config files found for extension "x"'),
    "KmsgLogConfig without url": ((1, 9), doc("KmsgLogConfig", name="k"), "KmsgLogConfig/k: url is required"),
    "WatchdogTimerConfig without device": ((1, 9), doc("WatchdogTimerConfig"), "WatchdogTimerConfig: watchdog device: empty value"),
    "EthernetConfig without name": ((1, 10), doc("EthernetConfig"), "EthernetConfig: name is required"),
    "ZswapConfig over 100 percent": ((1, 11), doc("ZswapConfig", maxPoolPercent=120), "ZswapConfig: maxPoolPercent must be between 0 and 100"),
    "KubeSpanConfig with a small MTU": ((1, 13), doc("KubeSpanConfig", mtu=1000), "KubeSpanConfig: kubespan link MTU must be at least 1280"),
    "EnvironmentConfig with a bad name": ((1, 13), doc("EnvironmentConfig", variables={"1X": "y"}),
                                          'EnvironmentConfig: invalid environment variable name: "1X"'),
    "HostnameConfig with a long label": ((1, 12), doc("HostnameConfig", auto="off", hostname="a" * 64 + ".lan"),
                                         'HostnameConfig: invalid hostname "' + "a" * 64),
    "VolumeConfig of an unknown volume (1.9)": ((1, 9), doc("VolumeConfig", name="STATE"),
                                                'VolumeConfig/STATE: only ["EPHEMERAL" "IMAGECACHE"] volumes are supported'),
    "VolumeConfig of an unknown volume (1.14)": ((1, 14), doc("VolumeConfig", name="DATA"),
                                                 'only ["STATE" "EPHEMERAL" "IMAGECACHE" "ETCD" "CRI" "KUBELET" "LOG"] volumes are supported'),
    "UserVolumeConfig with a bad name": ((1, 10), doc("UserVolumeConfig", name="data_1"),
                                         "UserVolumeConfig/data_1: name can only contain lowercase and uppercase ASCII letters, digits, and hyphens"),
    "RawVolumeConfig with a long name": ((1, 11), doc("RawVolumeConfig", name="r" * 35), "name must be between 1 and 34 characters long"),
    "RAIDArrayConfig with a bad name": ((1, 14), doc("RAIDArrayConfig", name="md 0"), "name can only contain ASCII letters, digits, hyphens and underscores"),
    "NetworkRuleConfig without ports": ((1, 9), doc("NetworkRuleConfig", name="r"), "NetworkRuleConfig/r: portSelector.ports is required"),
    "SideroLinkConfig over http": ((1, 9), doc("SideroLinkConfig", apiUrl="http://omni"), "SideroLinkConfig: apiUrl scheme must be https:// or grpc://"),
    "WireguardConfig without key": ((1, 12), doc("WireguardConfig", name="wg0", peers=[{}]), "WireguardConfig/wg0: wireguard private key must be specified"),
    "WireguardConfig peer without key": ((1, 12), doc("WireguardConfig", name="wg0", privateKey="k", peers=[{}]),
                                         "wireguard peer public key must be specified (peer index 0)"),
    "TCPProbeConfig without endpoint": ((1, 13), doc("TCPProbeConfig", name="p"), "TCPProbeConfig/p: TCP probe endpoint is required"),
    "VethConfig with its own name as peer": ((1, 14), doc("VethConfig", name="v0", peer={"name": "v0"}), "VethConfig/v0: name and peer name must be different"),
    "SysctlConfig with an empty key": ((1, 14), doc("SysctlConfig", params={"": "1"}), "SysctlConfig: sysctl key cannot be empty"),
    "EtcFileConfig without name": ((1, 14), doc("EtcFileConfig"), "EtcFileConfig: user etc file name cannot be empty"),
    "ImageVerificationConfig rule without verifier": ((1, 13), doc("ImageVerificationConfig", rules=[{"image": "ghcr.io/*"}]),
                                                      "ImageVerificationConfig: rule 0: at least one verifier must be configured"),
    "ImageVerificationConfig rule to skip and deny": ((1, 13), doc("ImageVerificationConfig", rules=[{"image": "*", "skip": True, "deny": True}]),
                                                      "rule 0: skip and deny cannot both be true"),
    "UnattendedInstallConfig without a disk": ((1, 14), doc("UnattendedInstallConfig", installer={"image": "i"}),
                                               "UnattendedInstallConfig: provisioning.volumeSelector.match is required"),
    "DiscoveryServiceConfig without endpoint": ((1, 14), doc("DiscoveryServiceConfig", name="d"), "DiscoveryServiceConfig/d: endpoint is required"),
    "KubeNetworkConfig with unpaired subnets": ((1, 14), doc("KubeNetworkConfig", podSubnets=["10.244.0.0/16", "fd00::/56"],
                                                             serviceSubnets=["10.96.0.0/12"]),
                                                "KubeNetworkConfig: the number of pod subnets must match the number of service subnets"),
    "KubeTalosAPIAccessConfig with an unknown role": ((1, 14), doc("KubeTalosAPIAccessConfig", allowedRoles=["os:root"]),
                                                      'KubeTalosAPIAccessConfig: invalid role "os:root" in .allowedRoles'),
    "EventSinkConfig without a port": ((1, 9), doc("EventSinkConfig", endpoint="10.0.0.1"),
                                       "EventSinkConfig: event sink endpoint: address 10.0.0.1: missing port in address"),
    "TimeSyncConfig with NTP and PTP": ((1, 12), doc("TimeSyncConfig", ntp={"servers": ["pool.ntp.org"]}, ptp={"devices": ["/dev/ptp0"]}),
                                        "TimeSyncConfig: only one of ntp or ptp configuration can be specified"),
    "TimeSyncConfig beside machine.time.servers": ((1, 12), dict(doc("TimeSyncConfig"), v1={"machine": {"time": {"servers": ["a"]}}}),
                                                   "time servers cannot be specified in both v1alpha1 and new-style configuration"),
    "HostnameConfig beside a v1alpha1 hostname": ((1, 12), doc("HostnameConfig", auto="stable"), "static hostname is already set in v1alpha1 config"),
    "KubeProxyConfig beside cluster.proxy": ((1, 14), doc("KubeProxyConfig", image="i"),
                                             "cluster proxy config in v1alpha1 config (.machine.cluster.proxy) can't be used with KubeProxyConfig document"),
    "KubeClusterConfig beside cluster.clusterName": ((1, 14), doc("KubeClusterConfig", clusterName="c", endpoint="https://a:6443"),
                                                     "cluster name is already set in the v1alpha1 config (.cluster.clusterName)"),
    "DiscoveryIdentityConfig beside cluster.id": ((1, 14), doc("DiscoveryIdentityConfig"),
                                                  "cluster identity is already configured in .cluster.id/.cluster.secret"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_talos_refuses(case):
    contract, document, message = REFUSED[case]
    document = dict(document)
    v1 = document.pop("v1", V1)
    problems = validation.validate([v1, document], contract, v1)
    assert any(message in problem for problem in problems), problems


ACCEPTED = {
    "KubeProxyConfig disabled needs no image": ((1, 14), doc("KubeProxyConfig", enabled=False)),
    "KubeProxyConfig with image": ((1, 14), doc("KubeProxyConfig", image="registry.k8s.io/kube-proxy:v1.37.0")),
    "VLANConfig complete": ((1, 12), doc("VLANConfig", name="v", vlanID=5, parent="eth0", vlanMode="802.1q")),
    "HostnameConfig off with a hostname": ((1, 13), doc("HostnameConfig", auto="off", hostname="h")),
    "a kind known to the version": ((1, 9), doc("WatchdogTimerConfig", device="/dev/watchdog0")),
    "KubeletConfig with image": ((1, 14), doc("KubeletConfig", image="ghcr.io/siderolabs/kubelet:v1.37.0")),
    "VolumeConfig of STATE from 1.11": ((1, 11), doc("VolumeConfig", name="STATE")),
    "UserVolumeConfig with a good name": ((1, 10), doc("UserVolumeConfig", name="data-1")),
    "VRFConfig with its own table": ((1, 13), doc("VRFConfig", name="vrf-blue", table=10)),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_talos_accepts(case):
    contract, document = ACCEPTED[case]
    v1 = {"version": "v1alpha1", "machine": {"type": "worker"}, "cluster": {}}
    assert validation.validate([v1, document], contract, v1) == []


def test_only_the_first_conflict_of_a_document_is_reported_and_every_document_is_checked():
    v1 = {"version": "v1alpha1", "machine": {"network": {"searchDomains": ["a"], "nameservers": ["1.1.1.1"]}}}
    problems = validation.validate([v1, doc("ResolverConfig"), doc("KubeletConfig"), doc("KubeProxyConfig")], (1, 14), v1)
    assert problems == ["KubeletConfig: kubelet image cannot be empty", "KubeProxyConfig: proxy image cannot be empty",
                        ".machine.network.searchDomains is already set in v1alpha1 config"]


def test_every_supported_contract_has_its_kinds():
    assert sorted(validation.KINDS) == [(1, 9), (1, 10), (1, 11), (1, 12), (1, 13), (1, 14)]
    for older, newer in zip(sorted(validation.KINDS), sorted(validation.KINDS)[1:]):
        assert validation.KINDS[older] <= validation.KINDS[newer]
    assert len(validation.KINDS[(1, 14)]) == 89  # every kind Talos 1.14 registers besides v1alpha1


CONTAINER = {
    "a link and a bond of one name": ((1, 12), [doc("LinkConfig", name="eth0"), doc("BondConfig", name="eth0", links=["a"], bondMode="active-backup")],
                                      "conflicting documents: LinkConfig/eth0 and BondConfig/eth0"),
    "a user volume and an existing volume of one name": ((1, 11), [doc("ExistingVolumeConfig", name="d"), doc("UserVolumeConfig", name="d")],
                                                         "conflicting documents: ExistingVolumeConfig/d and UserVolumeConfig/d"),
    "two VIP kinds for one address": ((1, 12), [doc("Layer2VIPConfig", name="10.0.0.9", link="eth0"),
                                                doc("HCloudVIPConfig", name="10.0.0.9", link="eth0", apiToken="t")],
                                      "conflicting documents: Layer2VIPConfig/10.0.0.9 and HCloudVIPConfig/10.0.0.9"),
    "a veth peer named like a link": ((1, 14), [doc("LinkConfig", name="veth1"), doc("VethConfig", name="veth0", peer={"name": "veth1"})],
                                      'conflicting link configurations: LinkConfig/veth1 and VethConfig/veth0 both configure "veth1"'),
}


@pytest.mark.parametrize("case", sorted(CONTAINER))
def test_talos_container_refuses(case):
    contract, documents, message = CONTAINER[case]
    assert message in validation.validate([V1] + documents, contract, V1)


def test_link_kinds_of_different_names_do_not_conflict():
    docs = [doc("LinkConfig", name="eth0"), doc("VLANConfig", name="eth0.5", vlanID=5, parent="eth0")]
    assert validation.validate([docs[0], docs[1]], (1, 12)) == []
