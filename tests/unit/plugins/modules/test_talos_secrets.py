"""talos_secrets through Ansible: created once 0600, never rewritten, talosctl bundles kept, corrupt ones refused
untouched, check mode writes nothing, nothing secret in output."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
import yaml
from cryptography import x509

from ansible_runner import local_play

from ansible_collections.netboot.talos.plugins.module_utils.talos import pki


def secrets_task(path, **options):
    return {"name": "secrets", "netboot.talos.talos_secrets": dict(path=str(path), **options)}


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def secret_strings(text):
    """Every secret value of a bundle and every base64 line of its private keys."""
    bundle = yaml.safe_load(text)
    values = [bundle["cluster"]["id"], bundle["cluster"]["secret"], bundle["trustdinfo"]["token"]]
    values += list(bundle["secrets"].values())
    for pair in bundle["certs"].values():
        values.append(pair["key"])
        values += [line for line in base64.b64decode(pair["key"]).decode().splitlines() if not line.startswith("-----")]
    return values


def assert_no_secrets(run, text):
    recorded = json.dumps(run.results)
    for value in secret_strings(text):
        assert value not in run.stdout and value not in run.stderr and value not in recorded


def test_creates_once_and_never_rewrites(run_playbook, tmp_path):
    path = tmp_path / "clusters" / "lab" / "secrets.yaml"
    run = run_playbook(local_play([secrets_task(path)]), diff=True)
    assert run.rc == 0, run.stdout + run.stderr
    result = run.task("secrets")["result"]
    assert result["changed"] and result["created"]
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    text = path.read_text()
    assert text.startswith("cluster:\n    id: ")
    certificate = x509.load_pem_x509_certificate(base64.b64decode(yaml.safe_load(text)["certs"]["os"]["crt"]))
    assert result["certificate_authorities"]["os"]["sha256"] == pki.fingerprint_sha256(certificate)
    assert result["certificate_authorities"]["os"]["subject"] == "O=talos"
    assert_no_secrets(run, text)
    assert "content hidden" in run.stdout

    again = run_playbook(local_play([secrets_task(path)]), diff=True)
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert again.task("secrets")["result"]["created"] is False
    assert path.read_text() == text
    assert sorted(os.listdir(path.parent)) == ["secrets.yaml"]


def test_talosctl_bundle_is_accepted_and_kept(run_playbook, tmp_path, shared_dir):
    golden = (shared_dir / "talos-golden" / "secrets.yaml").read_bytes()
    path = tmp_path / "secrets.yaml"
    path.write_bytes(golden)
    path.chmod(0o644)
    before = os.stat(path)
    run = run_playbook(local_play([secrets_task(path)]), diff=True)
    assert run.rc == 0, run.stdout + run.stderr
    result = run.task("secrets")["result"]
    assert result["changed"] and not result["created"]
    assert mode(path) == 0o600
    assert path.read_bytes() == golden and os.stat(path).st_ino == before.st_ino
    assert "-mode: 0644" in run.stdout and "+mode: 0600" in run.stdout
    assert result["certificate_authorities"]["etcd"]["not_after"].startswith("2033-10-09")
    assert_no_secrets(run, golden.decode())

    again = run_playbook(local_play([secrets_task(path)]))
    assert again.rc == 0 and again.changed == 0
    assert path.read_bytes() == golden


def edit(golden, change):
    bundle = yaml.safe_load(golden)
    change(bundle)
    return yaml.safe_dump(bundle, sort_keys=False)


def truncate_pem(value):
    text = base64.b64decode(value)
    return base64.b64encode(text[: len(text) // 2]).decode()


CORRUPT = {
    "truncated pem": (lambda b: b["certs"]["os"].update(key=truncate_pem(b["certs"]["os"]["key"])), "certs.os.key: not a PEM private key"),
    "missing key": (lambda b: b["certs"]["k8s"].pop("key"), "certs.k8s.key: is missing"),
    "wrong key for cert": (lambda b: b["certs"]["etcd"].update(key=b["certs"]["k8saggregator"]["key"]), "certs.etcd: key does not match certificate"),
    "missing token": (lambda b: b["secrets"].pop("bootstraptoken"), "secrets.bootstraptoken: is missing"),
    "both encryption secrets": (
        lambda b: b["secrets"].update(aescbcencryptionsecret=b["secrets"]["secretboxencryptionsecret"]),
        "secrets: needs exactly one of aescbcencryptionsecret and secretboxencryptionsecret",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT) + ["bad yaml"])
def test_corrupt_bundle_fails_naming_the_field_and_stays_untouched(run_playbook, tmp_path, shared_dir, case):
    golden = (shared_dir / "talos-golden" / "secrets.yaml").read_text()
    if case == "bad yaml":
        content, expected = golden.replace("trustdinfo:\n", "trustdinfo: [\n"), "secrets.yaml: is not valid YAML at line "
    else:
        change, expected = CORRUPT[case]
        content = edit(golden, change)
    path = tmp_path / "cluster" / "secrets.yaml"
    path.parent.mkdir()
    path.write_text(content)
    path.chmod(0o640)
    run = run_playbook(local_play([secrets_task(path)]))
    assert run.rc != 0
    assert run.task("secrets")["status"] == "failed"
    result = run.task("secrets")["result"]
    assert any(problem.startswith(expected) for problem in result["problems"]), result["problems"]
    assert expected in result["msg"]
    assert path.read_text() == content and mode(path) == 0o640
    assert os.listdir(path.parent) == ["secrets.yaml"]
    assert_no_secrets(run, golden)


def test_check_mode_writes_nothing(run_playbook, tmp_path):
    path = tmp_path / "clusters" / "lab" / "secrets.yaml"
    run = run_playbook(local_play([secrets_task(path)]), check=True, diff=True)
    assert run.rc == 0, run.stdout + run.stderr
    result = run.task("secrets")["result"]
    assert result["changed"] and result["created"]
    assert not (tmp_path / "clusters").exists()


def test_check_mode_on_a_wrong_mode_keeps_it(run_playbook, tmp_path, shared_dir):
    path = tmp_path / "secrets.yaml"
    path.write_bytes((shared_dir / "talos-golden" / "secrets.yaml").read_bytes())
    path.chmod(0o644)
    run = run_playbook(local_play([secrets_task(path)]), check=True)
    assert run.rc == 0 and run.task("secrets")["result"]["changed"]
    assert mode(path) == 0o644


@pytest.mark.parametrize("version", ["v1.8.3", "banana"])
def test_unsupported_talos_version_fails_before_writing(run_playbook, tmp_path, version):
    path = tmp_path / "c" / "secrets.yaml"
    run = run_playbook(local_play([secrets_task(path, talos_version=version)]))
    assert run.rc != 0
    assert run.task("secrets")["result"]["msg"].startswith("talos_version: ")
    assert not path.parent.exists()


def test_talos_version_114_writes_a_bundle_talosctl_114_would(run_playbook, tmp_path):
    path = tmp_path / "secrets.yaml"
    run = run_playbook(local_play([secrets_task(path, talos_version="v1.14.0")]))
    assert run.rc == 0, run.stdout + run.stderr
    bundle = yaml.safe_load(path.read_text())
    assert len(base64.b64decode(bundle["cluster"]["id"], validate=True)) == 32  # standard alphabet only
    assert list(bundle["secrets"]) == ["bootstraptoken", "secretboxencryptionsecret"]
    assert base64.b64decode(bundle["certs"]["k8sserviceaccount"]["key"]).startswith(b"-----BEGIN RSA PRIVATE KEY-----")
