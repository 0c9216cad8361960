"""First workloads: talos_extra_manifests and talos_inline_manifests through the configs play on a fresh inventory."""

from __future__ import annotations

import pytest
import talos_schema
import yaml

from ansible_runner import REPO

FLUX = "https://github.com/fluxcd/flux2/releases/download/v2.4.0/install.yaml"
SYNC = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 1m
  url: https://github.com/example/homelab
  ref:
    branch: main
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: apps
"""
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n"
HOSTS = {"cp1": ("controlplane", "52:54:00:15:00:11", "10.15.0.11"), "cp2": ("controlplane", "52:54:00:15:00:12", "10.15.0.12"),
         "w1": ("workers", "52:54:00:15:00:21", "10.15.0.21")}


def write_inventory(tmp_path, version, manifests, host_vars=None):
    """A fresh inventory: two control planes and a worker; manifests (and any other variables) for all."""
    hosts = {group: {"hosts": {}} for group in ("controlplane", "workers")}
    for host, (group, mac, ip) in HOSTS.items():
        hosts[group]["hosts"][host] = dict({"talos_mac": mac, "talos_ip": ip}, **(host_vars or {}).get(host, {}))
    variables = dict(talos_cluster_name="firstloads", talos_cluster_endpoint="https://10.15.0.10:6443", talos_version=version,
                     talos_network="10.15.0.0/24", talos_install_disk="/dev/sda", talos_clusters_dir=str(tmp_path / "clusters"),
                     **manifests)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": variables, "children": {"talos": {"children": hosts}}}}))
    return inventory


def configs(run_playbook, inventory, **kwargs):
    return run_playbook(str(REPO / "playbooks" / "configs.yml"), inventory=inventory, **kwargs)


def node_documents(tmp_path, host):
    return list(yaml.safe_load_all((tmp_path / "clusters" / "firstloads" / "nodes" / ("%s.yaml" % host)).read_text()))


def manifests_of(documents):
    """(extra manifests, inline manifests) of a rendered config, as (name or None, url) and (name, contents)."""
    cluster = documents[0].get("cluster", {})
    extra = [(None, url) for url in cluster.get("extraManifests", [])]
    extra += [(d["name"], d["url"]) for d in documents[1:] if d["kind"] == "KubeExternalManifestConfig"]
    inline = [(m["name"], m["contents"]) for m in cluster.get("inlineManifests", [])]
    inline += [(d["name"], d["manifest"]) for d in documents[1:] if d["kind"] == "KubeInlineManifestConfig"]
    return extra, inline


@pytest.mark.parametrize("version", ["v1.11.5", "v1.14.0"])
def test_control_planes_carry_the_manifests_schema_valid_and_rerun_unchanged(run_playbook, tmp_path, shared_dir, version):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "apps-namespace.yaml").write_text(NAMESPACE)
    inventory = write_inventory(tmp_path, version, {
        "talos_extra_manifests": [FLUX],
        # a file path relative to the directory ansible-playbook runs in
        "talos_inline_manifests": [{"name": "flux-sync", "contents": SYNC}, {"name": "apps-namespace", "file": "manifests/apps-namespace.yaml"}],
    })
    first = configs(run_playbook, inventory)
    assert first.rc == 0, first.stdout + first.stderr

    schema = talos_schema.load(shared_dir, version)
    for host in ("cp1", "cp2"):
        documents = node_documents(tmp_path, host)
        extra, inline = manifests_of(documents)
        assert extra == [("install" if version == "v1.14.0" else None, FLUX)]
        assert inline == [("flux-sync", SYNC), ("apps-namespace", NAMESPACE)]
        if version == "v1.14.0":
            assert "extraManifests" not in documents[0]["cluster"] and "inlineManifests" not in documents[0]["cluster"]
        for document in documents:
            name, errors = talos_schema.errors(schema, version, document)
            assert name is not None or document["kind"] == "UnattendedInstallConfig"
            assert not errors, "%s: %s" % (name, errors)
    assert manifests_of(node_documents(tmp_path, "w1")) == ([], [])

    nodes = tmp_path / "clusters" / "firstloads" / "nodes"
    before = {path.name: path.read_bytes() for path in nodes.iterdir()}
    second = configs(run_playbook, inventory)
    assert second.rc == 0, second.stdout
    assert second.changed == 0, second.stdout
    assert {path.name: path.read_bytes() for path in nodes.iterdir()} == before


BAD = {
    "extra manifest not http(s)": (
        {"talos_extra_manifests": ["ftp://example.com/x.yaml"]}, None,
        "talos_extra_manifests[0]: 'ftp://example.com/x.yaml' is not an http(s) URL"),
    "extra manifest twice": (
        {"talos_extra_manifests": [FLUX, FLUX]}, None, "talos_extra_manifests[1]: %s is listed more than once" % FLUX),
    "inline manifest not YAML": (
        {"talos_inline_manifests": [{"name": "broken", "contents": "kind: [Namespace\n"}]}, None,
        "talos_inline_manifests[0].contents: not valid YAML: "),
    "inline manifest not an object": (
        {"talos_inline_manifests": [{"name": "plain", "contents": NAMESPACE + "---\n- a list\n"}]}, None,
        "talos_inline_manifests[0].contents: document 2 is not a Kubernetes object (a mapping with apiVersion and kind)"),
    "inline names twice": (
        {"talos_inline_manifests": [{"name": "apps", "contents": NAMESPACE}, {"name": "apps", "contents": SYNC}]}, None,
        "talos_inline_manifests[1].name: apps is the name of another inline manifest: names must be unique"),
    "inline name not a DNS name": (
        {"talos_inline_manifests": [{"name": "Flux Sync", "contents": SYNC}]}, None,
        "talos_inline_manifests[0].name: 'Flux Sync' is not a manifest name"),
    "inline file missing": (
        {"talos_inline_manifests": [{"name": "apps", "file": "/nonexistent/apps.yaml"}]}, None,
        "talos_inline_manifests[0].file: /nonexistent/apps.yaml does not exist on the controller"),
    "inline contents and file": (
        {"talos_inline_manifests": [{"name": "apps", "contents": NAMESPACE, "file": "apps.yaml"}]}, None,
        "talos_inline_manifests[0]: set contents (the manifest's YAML) or file (a path on the controller), one of them"),
    "inline unknown key": (
        {"talos_inline_manifests": [{"name": "apps", "contents": NAMESPACE, "namespace": "x"}]}, None,
        "talos_inline_manifests[0]: unknown keys namespace (known: name, contents)"),
    "control planes differ": (
        {}, {"cp2": {"talos_extra_manifests": [FLUX]}},
        "cp2: talos_extra_manifests: differs from cp1's: every control plane must carry the same manifests"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_manifests_are_refused_naming_host_and_variable_before_anything_is_written(run_playbook, tmp_path, case):
    manifests, host_vars, message = BAD[case]
    run = configs(run_playbook, write_inventory(tmp_path, "v1.11.5", manifests, host_vars))
    assert run.rc != 0
    assert message in run.stdout, run.stdout
    if host_vars is None:
        assert "cp1, cp2, w1: " + message.split(":")[0] in run.stdout, run.stdout
    assert not (tmp_path / "clusters").exists()


def test_every_problem_is_told_at_once(run_playbook, tmp_path):
    run = configs(run_playbook, write_inventory(tmp_path, "v1.14.0", {
        "talos_extra_manifests": ["not a url"],
        "talos_inline_manifests": [{"name": "apps", "file": str(tmp_path / "missing.yaml")}, {"name": "x", "contents": "a: ["}],
    }))
    assert run.rc != 0
    for field in ("talos_extra_manifests[0]", "talos_inline_manifests[0].file", "talos_inline_manifests[1].contents"):
        assert "cp1, cp2, w1: %s: " % field in run.stdout, run.stdout
    assert not (tmp_path / "clusters").exists()
