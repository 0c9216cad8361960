"""Configs rendered for a realistic node validate against Talos's published JSON schema of each version."""

from __future__ import annotations

import pytest
import talos_schema
import yaml

from ansible_collections.netboot.talos.plugins.module_utils.talos import config

VERSIONS = ("v1.9.6", "v1.10.9", "v1.11.5", "v1.12.11", "v1.13.9", "v1.14.0")


def realistic(version, role, selector=False):
    network = {"addresses": ["10.0.50.71/24"], "routes": [{"network": "0.0.0.0/0", "gateway": "10.0.50.1"}],
               "nameservers": ["10.0.50.1"], "vip": "10.0.50.70" if role == "controlplane" else None}
    network.update({"device_selector": {"hardwareAddr": "18:03:73:2a:d8:a2"}} if selector else {"interface": "eth0"})
    return {
        "name": "kube01", "role": role, "talos_version": version, "cluster_name": "lab",
        "cluster_endpoint": "https://10.0.50.70:6443", "hostname": "kube01", "install_disk": "/dev/nvme0n1",
        "install_image": "ghcr.io/siderolabs/installer:%s" % version, "network": network,
        "registry_mirrors": {"docker.io": ["https://mirror.example.com"]}, "node_labels": {"zone": "a"},
        "sysctls": {"vm.max_map_count": "262144"},
        "extra_manifests": ["https://example.com/flux/install.yaml"],
        "inline_manifests": [{"name": "apps", "contents": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n"}],
        "patches": [
            "apiVersion: v1alpha1\nkind: KubeletConfig\nextraArgs:\n  max-pods: '250'\n" if version.startswith("v1.14")
            else "machine:\n  kubelet:\n    extraArgs:\n      max-pods: '250'\n"
        ],
    }


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("role", ["controlplane", "worker"])
@pytest.mark.parametrize("selector", [False, True])
def test_rendered_configs_validate(shared_dir, version, role, selector):
    bundle = yaml.safe_load((shared_dir / "talos-golden" / "secrets.yaml").read_text())
    minor = ".".join(version.lstrip("v").split(".")[:2])
    schema = talos_schema.load(shared_dir, version)
    documents = list(yaml.safe_load_all(config.render(bundle, realistic(version, role, selector))))
    assert len(documents) > 1 or minor in ("1.9", "1.10", "1.11")
    for document in documents:
        name, errors = talos_schema.errors(schema, version, document)
        if name is None:
            assert version.startswith("v1.14") and document["kind"] == "UnattendedInstallConfig", document["kind"]
            continue
        assert not errors, "%s: %s" % (name, errors)
