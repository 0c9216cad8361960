"""talos_client_config through Ansible: the admin certificate chains to the OS CA, is kept across runs and
endpoint changes, is renewed near expiry or on other roles; bad options fail before writing."""

from __future__ import annotations

import base64
import datetime
import os
import stat

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_runner import local_play

from ansible_collections.netboot.talos.plugins.module_utils.talos import pki, secrets


@pytest.fixture
def bundle_path(tmp_path, shared_dir):
    path = tmp_path / "secrets.yaml"
    path.write_bytes((shared_dir / "talos-golden" / "secrets.yaml").read_bytes())
    path.chmod(0o600)
    return path


def task(bundle_path, path, **options):
    args = dict(path=str(path), secrets=str(bundle_path), context="lab", endpoints=["10.0.50.71", "10.0.50.72"])
    args.update(options)
    return {"name": "talosconfig", "netboot.talos.talos_client_config": args}


def context_of(path, name="lab"):
    document = yaml.safe_load(path.read_text())
    return document, document["contexts"][name]


def client_certificate(entry):
    return x509.load_pem_x509_certificate(base64.b64decode(entry["crt"]))


def test_writes_admin_certificate_signed_by_the_os_ca(run_playbook, tmp_path, bundle_path):
    path = tmp_path / "talosconfig"
    run = run_playbook(local_play([task(bundle_path, path, nodes=["10.0.50.71"])]), diff=True)
    assert run.rc == 0, run.stdout + run.stderr
    result = run.task("talosconfig")["result"]
    assert result["changed"] and result["renewed"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    document, entry = context_of(path)
    assert document["context"] == "lab" and list(entry) == ["endpoints", "nodes", "ca", "crt", "key"]
    assert entry["endpoints"] == ["10.0.50.71", "10.0.50.72"] and entry["nodes"] == ["10.0.50.71"]
    os_ca = yaml.safe_load(bundle_path.read_text())["certs"]["os"]["crt"]
    assert entry["ca"] == os_ca
    ca = x509.load_pem_x509_certificate(base64.b64decode(os_ca))
    certificate = client_certificate(entry)
    certificate.verify_directly_issued_by(ca)
    key = pki.load_key(base64.b64decode(entry["key"]))
    assert isinstance(key, ed25519.Ed25519PrivateKey) and pki.key_matches(certificate, key)
    assert base64.b64decode(entry["key"]).startswith(b"-----BEGIN ED25519 PRIVATE KEY-----\n")
    assert [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["os:admin"]
    assert len(certificate.subject) == 1
    assert list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == datetime.timedelta(days=365)
    assert result["expires"] == certificate.not_valid_after_utc.isoformat()
    assert entry["key"] not in run.stdout and base64.b64decode(entry["key"]).decode().splitlines()[1] not in run.stdout
    assert "content hidden" in run.stdout


def test_second_run_keeps_the_certificate_and_endpoint_change_too(run_playbook, tmp_path, bundle_path):
    path = tmp_path / "talosconfig"
    assert run_playbook(local_play([task(bundle_path, path)])).rc == 0
    first = path.read_bytes()
    again = run_playbook(local_play([task(bundle_path, path)]))
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert again.task("talosconfig")["result"]["renewed"] is False
    assert path.read_bytes() == first

    moved = run_playbook(local_play([task(bundle_path, path, endpoints=["10.0.60.1"], nodes=["10.0.60.2"])]))
    assert moved.rc == 0 and moved.changed == 1, moved.stdout
    assert moved.task("talosconfig")["result"]["renewed"] is False
    _unused, before = context_of_bytes(first)
    _unused, after = context_of(path)
    assert after["endpoints"] == ["10.0.60.1"] and after["nodes"] == ["10.0.60.2"]
    assert (after["crt"], after["key"]) == (before["crt"], before["key"])


def context_of_bytes(content):
    document = yaml.safe_load(content)
    return document, document["contexts"]["lab"]


def test_expiring_certificate_is_renewed(run_playbook, tmp_path, bundle_path):
    path = tmp_path / "talosconfig"
    run = run_playbook(local_play([task(bundle_path, path, validity_days=10, renew_days=5)]))
    assert run.rc == 0, run.stdout + run.stderr
    _unused, short = context_of(path)
    assert client_certificate(short).not_valid_after_utc - client_certificate(short).not_valid_before_utc == datetime.timedelta(days=10)
    kept = run_playbook(local_play([task(bundle_path, path, validity_days=10, renew_days=5)]))
    assert kept.changed == 0

    renewed = run_playbook(local_play([task(bundle_path, path)]))  # 10 days left < renew_days 30
    assert renewed.rc == 0 and renewed.task("talosconfig")["result"]["renewed"] is True
    _unused, fresh = context_of(path)
    assert fresh["crt"] != short["crt"] and fresh["key"] != short["key"]
    assert client_certificate(fresh).not_valid_after_utc - client_certificate(fresh).not_valid_before_utc == datetime.timedelta(days=365)


def test_other_roles_or_another_ca_get_a_new_certificate(run_playbook, tmp_path, bundle_path):
    path = tmp_path / "talosconfig"
    assert run_playbook(local_play([task(bundle_path, path)])).rc == 0
    roles = run_playbook(local_play([task(bundle_path, path, roles=["os:reader", "os:etcd:backup"])]))
    assert roles.rc == 0 and roles.task("talosconfig")["result"]["renewed"] is True
    _unused, entry = context_of(path)
    assert pki.organizations(client_certificate(entry)) == ["os:etcd:backup", "os:reader"]  # sorted, as Talos

    # a new bundle (new OS CA) at the same path: the old certificate no longer chains
    other = tmp_path / "other.yaml"
    assert run_playbook(local_play([{"netboot.talos.talos_secrets": {"path": str(other)}}])).rc == 0
    moved = run_playbook(local_play([task(other, path, roles=["os:reader", "os:etcd:backup"])]))
    assert moved.rc == 0 and moved.task("talosconfig")["result"]["renewed"] is True
    _unused, entry = context_of(path)
    ca, _unused = secrets.os_ca(secrets.load(str(other)))
    assert pki.signed_by(client_certificate(entry), ca)


def test_ecdsa_os_ca_gives_an_ecdsa_client_certificate(run_playbook, tmp_path, bundle_path):
    bundle = yaml.safe_load(bundle_path.read_text())
    key = pki.generate_key(pki.ECDSA)
    ca = pki.self_signed_ca("talos", key)
    bundle["certs"]["os"] = {"crt": base64.b64encode(pki.certificate_pem(ca)).decode(), "key": base64.b64encode(pki.key_pem(key)).decode()}
    bundle_path.write_text(secrets.dump(bundle))
    path = tmp_path / "talosconfig"
    run = run_playbook(local_play([task(bundle_path, path)]))
    assert run.rc == 0, run.stdout + run.stderr
    _unused, entry = context_of(path)
    assert isinstance(client_certificate(entry).public_key(), ec.EllipticCurvePublicKey)
    assert base64.b64decode(entry["key"]).startswith(b"-----BEGIN EC PRIVATE KEY-----")
    client_certificate(entry).verify_directly_issued_by(ca)


def test_other_contexts_are_kept(run_playbook, tmp_path, bundle_path):
    path = tmp_path / "talosconfig"
    path.write_text(
        "context: home\ncontexts:\n    home:\n        endpoints:\n            - 192.0.2.1\n        ca: Y2E=\n        crt: Y3J0\n        key: a2V5\n"
    )
    run = run_playbook(local_play([task(bundle_path, path)]))
    assert run.rc == 0, run.stdout + run.stderr
    document = yaml.safe_load(path.read_text())
    assert document["context"] == "lab" and list(document["contexts"]) == ["home", "lab"]
    assert document["contexts"]["home"] == {"endpoints": ["192.0.2.1"], "ca": "Y2E=", "crt": "Y3J0", "key": "a2V5"}


def test_check_mode_writes_nothing(run_playbook, tmp_path, bundle_path):
    path = tmp_path / "talosconfig"
    run = run_playbook(local_play([task(bundle_path, path)]), check=True, diff=True)
    assert run.rc == 0, run.stdout + run.stderr
    assert run.task("talosconfig")["result"]["changed"] and not path.exists()


@pytest.mark.parametrize(
    "options, field",
    [
        ({"renew_days": 400}, "renew_days: must be smaller than validity_days"),
        ({"roles": ["os:root"]}, "roles[0]: 'os:root' is not a Talos role"),
        ({"validity_days": 0, "renew_days": 0}, "validity_days: must be at least 1"),
        ({"endpoints": ["10.0.0.1", "bad host"]}, "endpoints[1]: 'bad host' is not a host or host:port"),
    ],
)
def test_bad_options_fail_before_writing(run_playbook, tmp_path, bundle_path, options, field):
    path = tmp_path / "talosconfig"
    run = run_playbook(local_play([task(bundle_path, path, **options)]))
    assert run.rc != 0
    assert field in run.task("talosconfig")["result"]["msg"]
    assert not path.exists()


def test_unreadable_talosconfig_or_missing_bundle_fail_untouched(run_playbook, tmp_path, bundle_path):
    path = tmp_path / "talosconfig"
    path.write_text("context: [broken\n")
    run = run_playbook(local_play([task(bundle_path, path)]))
    assert run.rc != 0 and "is not valid YAML" in run.task("talosconfig")["result"]["msg"]
    assert path.read_text() == "context: [broken\n"
    missing = run_playbook(local_play([task(tmp_path / "nope.yaml", tmp_path / "new")]))
    assert missing.rc != 0 and missing.task("talosconfig")["result"]["msg"].startswith("secrets: ")
    assert not (tmp_path / "new").exists()
