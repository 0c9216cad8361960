"""Configs rendered for a realistic node validate against Talos's published JSON schema of each version."""

from __future__ import annotations

import json

import jsonschema
import pytest
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
        "patches": [
            "apiVersion: v1alpha1\nkind: KubeletConfig\nextraArgs:\n  max-pods: '250'\n" if version.startswith("v1.14")
            else "machine:\n  kubelet:\n    extraArgs:\n      max-pods: '250'\n"
        ],
    }


def known_gap(version, error):
    """README's known gaps only: `persist`, 1.12/1.13 machine.install.extraKernelArgs."""
    if error.validator != "additionalProperties":
        return False
    extra = set(error.instance) - set(error.schema.get("properties", {}))
    path = list(error.absolute_path)
    if path == [] and extra == {"persist"}:
        return True
    return version[:5] in ("v1.12", "v1.13") and path == ["machine", "install"] and extra == {"extraKernelArgs"}


def definition(schema, document):
    """The schema definition of one document kind (None for the 1.14 UnattendedInstallConfig gap)."""
    if "version" in document:
        return "v1alpha1.Config"
    for name, entry in schema["$defs"].items():
        if entry.get("properties", {}).get("kind", {}).get("enum") == [document["kind"]]:
            return name
    return None


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("role", ["controlplane", "worker"])
@pytest.mark.parametrize("selector", [False, True])
def test_rendered_configs_validate(shared_dir, version, role, selector):
    bundle = yaml.safe_load((shared_dir / "talos-golden" / "secrets.yaml").read_text())
    minor = ".".join(version.lstrip("v").split(".")[:2])
    schema = json.loads((shared_dir / "talos-schema" / ("v%s.schema.json" % minor)).read_text())
    documents = list(yaml.safe_load_all(config.render(bundle, realistic(version, role, selector))))
    assert len(documents) > 1 or minor in ("1.9", "1.10", "1.11")
    for document in documents:
        name = definition(schema, document)
        if name is None:
            assert version.startswith("v1.14") and document["kind"] == "UnattendedInstallConfig", document["kind"]
            continue
        validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/" + name, "$defs": schema["$defs"]})
        errors = [e for e in validator.iter_errors(document) if not known_gap(version, e)]
        assert not errors, "%s: %s" % (name, [(list(e.absolute_path), e.message[:200]) for e in errors])
