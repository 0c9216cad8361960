"""secrets: a generated bundle has every property of `talosctl gen secrets` (talos.md §1); talosctl's bundles
load, validate and serialize back byte for byte; bad bundles are reported field by field."""

from __future__ import annotations

import base64
import copy
import datetime
import re

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from ansible_collections.netboot.talos.plugins.module_utils.talos import pki, secrets

CAS = {
    # name: (subject, key class, signature algorithm, PEM label of the key)
    "etcd": ("O=etcd", ec.EllipticCurvePrivateKey, SignatureAlgorithmOID.ECDSA_WITH_SHA256, "EC PRIVATE KEY"),
    "k8s": ("O=kubernetes", ec.EllipticCurvePrivateKey, SignatureAlgorithmOID.ECDSA_WITH_SHA256, "EC PRIVATE KEY"),
    "k8saggregator": ("", ec.EllipticCurvePrivateKey, SignatureAlgorithmOID.ECDSA_WITH_SHA256, "EC PRIVATE KEY"),
    "os": ("O=talos", ed25519.Ed25519PrivateKey, SignatureAlgorithmOID.ED25519, "ED25519 PRIVATE KEY"),
}
TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")


@pytest.fixture(scope="module")
def bundle():
    return secrets.generate()


@pytest.fixture(scope="module")
def golden_text(shared_dir):
    return (shared_dir / "talos-golden" / "secrets.yaml").read_text()


def pem(value):
    return base64.b64decode(value)


def label(value):
    return pem(value).decode().splitlines()[0]


@pytest.mark.parametrize("name", sorted(CAS))
def test_generated_ca_has_every_talos_property(bundle, name):
    subject, key_class, algorithm, key_label = CAS[name]
    certificate = x509.load_pem_x509_certificate(pem(bundle["certs"][name]["crt"]))
    key = pki.load_key(pem(bundle["certs"][name]["key"]))
    assert isinstance(key, key_class) and pki.key_matches(certificate, key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert isinstance(key.curve, ec.SECP256R1)
    assert label(bundle["certs"][name]["key"]) == "-----BEGIN %s-----" % key_label
    assert label(bundle["certs"][name]["crt"]) == "-----BEGIN CERTIFICATE-----"
    assert certificate.signature_algorithm_oid == algorithm
    assert certificate.subject.rfc4514_string() == subject and certificate.issuer == certificate.subject
    assert certificate.version == x509.Version.v3
    assert 0 < certificate.serial_number < 1 << 128
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == datetime.timedelta(hours=87600)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs(certificate.not_valid_before_utc - now) < datetime.timedelta(hours=1)
    certificate.verify_directly_issued_by(certificate)
    ext = certificate.extensions
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
    assert {k for k in flags if getattr(usage.value, k)} == {"digital_signature", "key_cert_sign"}
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    constraints = ext.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is True and constraints.value.path_length is None
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert not ski.critical and len(ski.value.digest) == 20
    assert ski.value.digest != x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest  # random, not SHA-1
    with pytest.raises(x509.ExtensionNotFound):
        ext.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert len(ext) == 4


def test_generated_ca_extensions_are_in_talosctls_order(bundle, golden_text):
    golden = yaml.safe_load(golden_text)
    for name in CAS:
        ours = x509.load_pem_x509_certificate(pem(bundle["certs"][name]["crt"]))
        theirs = x509.load_pem_x509_certificate(pem(golden["certs"][name]["crt"]))
        assert [(e.oid, e.critical) for e in ours.extensions] == [(e.oid, e.critical) for e in theirs.extensions], name


def test_generated_service_account_key_is_rsa_4096_pkcs1(bundle):
    value = bundle["certs"]["k8sserviceaccount"]
    assert list(value) == ["key"]
    assert label(value["key"]) == "-----BEGIN RSA PRIVATE KEY-----"
    key = pki.load_key(pem(value["key"]))
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 4096


def test_generated_tokens_ids_and_secrets(bundle):
    assert TOKEN.match(bundle["secrets"]["bootstraptoken"])
    assert TOKEN.match(bundle["trustdinfo"]["token"])
    assert bundle["secrets"]["bootstraptoken"] != bundle["trustdinfo"]["token"]
    cluster_id = bundle["cluster"]["id"]
    assert len(cluster_id) == 44 and cluster_id.endswith("=") and re.fullmatch(r"[A-Za-z0-9_-]{43}=", cluster_id)
    assert len(base64.urlsafe_b64decode(cluster_id)) == 32
    for value in (bundle["cluster"]["secret"], bundle["secrets"]["secretboxencryptionsecret"]):
        assert len(value) == 44 and len(base64.b64decode(value, validate=True)) == 32
    assert "aescbcencryptionsecret" not in bundle["secrets"]
    assert list(bundle) == ["cluster", "secrets", "trustdinfo", "certs"]
    assert list(bundle["certs"]) == ["etcd", "k8s", "k8saggregator", "k8sserviceaccount", "os"]


def test_token_rejects_bytes_from_252(monkeypatch):
    # 252..255 would map to 0..3 a fifth time; they must be skipped, 251 is the last usable byte (z).
    stream = iter([bytes([252, 253, 254, 255, 0, 251, 36, 35, 72, 1, 2, 3]), bytes(range(4, 20))])
    monkeypatch.setattr(secrets.os, "urandom", lambda size: next(stream))
    assert secrets._token_part(6) == "0z0z01"
    stream = iter([bytes([255] * 6), bytes([10] * 6)])
    assert secrets._token_part(3) == "aaa"


def test_cluster_id_encoding_follows_the_contract(monkeypatch):
    real = pki.generate_key
    monkeypatch.setattr(secrets.pki, "generate_key", lambda kind: real(pki.ECDSA if kind == pki.RSA else kind))
    random = secrets.os.urandom
    # 32-byte draws (ids, secrets) become all ones; tokens and key ids stay random.
    monkeypatch.setattr(secrets.os, "urandom", lambda size: b"\xff" * size if size == 32 else random(size))
    assert secrets.generate()["cluster"]["id"].startswith("____")  # URL-safe, talosctl 1.9-1.13
    assert secrets.generate((1, 13))["cluster"]["id"].startswith("____")
    assert secrets.generate((1, 14))["cluster"]["id"].startswith("////")  # StdEncoding from 1.14
    assert secrets.generate((1, 14))["cluster"]["secret"].startswith("////")


def test_older_contracts_get_aescbc_and_ecdsa_service_account(monkeypatch):
    kinds = []
    real = pki.generate_key
    monkeypatch.setattr(secrets.pki, "generate_key", lambda kind: kinds.append(kind) or real(pki.ECDSA if kind == pki.RSA else kind))
    old = secrets.generate((1, 2))
    assert list(old["secrets"]) == ["bootstraptoken", "aescbcencryptionsecret"] and kinds[-1] == pki.ECDSA
    mid = secrets.generate((1, 6))
    assert list(mid["secrets"]) == ["bootstraptoken", "secretboxencryptionsecret"] and kinds[-1] == pki.ECDSA
    secrets.generate((1, 7))
    assert kinds[-1] == pki.RSA
    for generated in (old, mid):
        assert secrets.validate(generated) == []


def test_generated_bundle_validates_and_round_trips(bundle):
    assert secrets.validate(bundle) == []
    text = secrets.dump(bundle)
    assert text.startswith("cluster:\n    id: ")
    assert "\n    etcd:\n        crt: " in text and "\n    k8sserviceaccount:\n        key: " in text
    parsed, problems = secrets.parse(text)
    assert problems == [] and parsed == bundle


def test_golden_bundle_validates(golden_text):
    bundle, problems = secrets.parse(golden_text)
    assert problems == []
    facts = secrets.describe(bundle)
    assert facts["os"]["subject"] == "O=talos" and facts["k8saggregator"]["subject"] == ""
    assert facts["etcd"]["not_after"].startswith("2033-10-09T10:46:09")


def test_golden_bundle_serializes_byte_for_byte(golden_text):
    # The golden file starts with a comment Talos's test adds; talosctl itself writes only the YAML.
    body = "".join(line for line in golden_text.splitlines(keepends=True) if not line.startswith("#"))
    bundle = yaml.safe_load(golden_text)
    assert secrets.dump(bundle) == body
    shuffled = {key: dict(reversed(list(bundle[key].items()))) for key in reversed(list(bundle))}
    assert secrets.dump(shuffled) == body  # struct order, not the order the dict happens to have


def corrupt(bundle, change):
    broken = copy.deepcopy(bundle)
    change(broken)
    return broken


def truncated(value):
    text = pem(value)
    return base64.b64encode(text[: len(text) // 2]).decode()


CORRUPTIONS = {
    "truncated os key": (lambda b: b["certs"]["os"].update(key=truncated(b["certs"]["os"]["key"])), "certs.os.key: not a PEM private key"),
    "truncated etcd crt": (lambda b: b["certs"]["etcd"].update(crt=truncated(b["certs"]["etcd"]["crt"])), "certs.etcd.crt: not a PEM certificate"),
    "missing k8s key": (lambda b: b["certs"]["k8s"].pop("key"), "certs.k8s.key: is missing"),
    "missing aggregator": (lambda b: b["certs"].pop("k8saggregator"), "certs.k8saggregator: is missing"),
    "wrong key for cert": (lambda b: b["certs"]["etcd"].update(key=b["certs"]["k8s"]["key"]), "certs.etcd: key does not match certificate"),
    "missing trustd token": (lambda b: b["trustdinfo"].pop("token"), "trustdinfo.token: is missing"),
    "bad bootstrap token": (lambda b: b["secrets"].update(bootstraptoken="NOT-A-TOKEN"), "secrets.bootstraptoken: is not a token"),
    "both encryption secrets": (
        lambda b: b["secrets"].update(aescbcencryptionsecret=b["secrets"]["secretboxencryptionsecret"]),
        "secrets: needs exactly one of aescbcencryptionsecret and secretboxencryptionsecret (found aescbcencryptionsecret and secretboxencryptionsecret)",
    ),
    "no encryption secret": (lambda b: b["secrets"].pop("secretboxencryptionsecret"), "(found neither)"),
    "short secretbox": (lambda b: b["secrets"].update(secretboxencryptionsecret="AAAA"), "secrets.secretboxencryptionsecret: must encode 32 bytes, not 3"),
    "cluster secret not base64": (lambda b: b["cluster"].update(secret="!!!"), "cluster.secret: is not base64"),
    "missing cluster id": (lambda b: b["cluster"].pop("id"), "cluster.id: is missing"),
    "redacted key": (lambda b: b["certs"]["os"].update(key="******"), "certs.os.key: is redacted"),
    "service account not a key": (
        lambda b: b["certs"]["k8sserviceaccount"].update(key=b["certs"]["os"]["crt"]), "certs.k8sserviceaccount.key: not a PEM private key",
    ),
    "missing section": (lambda b: b.pop("trustdinfo"), "trustdinfo: is missing"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_bundle_names_the_field(golden_text, case):
    change, expected = CORRUPTIONS[case]
    problems = secrets.validate(corrupt(yaml.safe_load(golden_text), change))
    assert any(expected in problem for problem in problems), problems


def test_every_problem_is_reported_at_once(golden_text):
    def change(b):
        b["certs"]["os"]["key"] = truncated(b["certs"]["os"]["key"])
        b["certs"]["etcd"]["key"] = b["certs"]["k8s"]["key"]
        b["trustdinfo"].pop("token")
        b["cluster"]["secret"] = "!!!"

    problems = secrets.validate(corrupt(yaml.safe_load(golden_text), change))
    assert [p.split(":", maxsplit=1)[0] for p in problems] == ["cluster.secret", "trustdinfo.token", "certs.etcd", "certs.os.key"], problems


def test_leaf_certificate_in_place_of_a_ca_is_rejected(golden_text):
    bundle = yaml.safe_load(golden_text)
    ca, ca_key = secrets.os_ca(bundle)
    leaf, key = pki.issue_client_certificate(ca, ca_key, ["os:admin"], datetime.timedelta(days=1))
    bundle["certs"]["os"] = {"crt": base64.b64encode(pki.certificate_pem(leaf)).decode(), "key": base64.b64encode(pki.key_pem(key)).decode()}
    assert secrets.validate(bundle) == ["certs.os.crt: is not a CA certificate"]


def test_bad_yaml_is_reported_without_its_content(golden_text):
    token = yaml.safe_load(golden_text)["trustdinfo"]["token"]
    text = golden_text.replace("    token: " + token, "    token: [" + token)
    bundle, problems = secrets.parse(text)
    assert bundle is None and len(problems) == 1
    assert problems[0].startswith("secrets.yaml: is not valid YAML at line ")
    assert token not in problems[0]
    assert secrets.parse("just text")[1] == ["secrets.yaml: is not a mapping of cluster, secrets, trustdinfo and certs"]


def test_placeholder_bundle_has_the_real_shape_and_needs_no_crypto(monkeypatch, bundle):
    def no_crypto(*args):
        raise AssertionError("placeholder_bundle must not make keys")

    monkeypatch.setattr(secrets.pki, "generate_key", no_crypto)
    monkeypatch.setattr(secrets.pki, "self_signed_ca", no_crypto)
    placeholder = secrets.placeholder_bundle()

    def shape(value):
        return {k: shape(v) for k, v in value.items()} if isinstance(value, dict) else type(value)

    assert shape(placeholder) == shape(bundle)
    for pair in placeholder["certs"].values():
        for value in pair.values():
            assert base64.b64decode(value, validate=True).startswith(b"-----BEGIN ")
    assert TOKEN.match(placeholder["secrets"]["bootstraptoken"]) and TOKEN.match(placeholder["trustdinfo"]["token"])


def swapped(bundle, one, other):
    broken = copy.deepcopy(bundle)
    broken["certs"][one], broken["certs"][other] = broken["certs"][other], broken["certs"][one]
    return broken


@pytest.mark.parametrize("one, other", [(a, b) for a in sorted(CAS) for b in sorted(CAS) if a < b])
def test_ca_pairs_swapped_between_roles_are_refused_naming_both_fields(golden_text, one, other):
    golden = yaml.safe_load(golden_text)
    broken = swapped(golden, one, other)
    assert all(pki.key_matches(*secrets_pair(broken, name)) for name in (one, other)), "each pair must stay consistent"
    problems = secrets.validate(broken)
    for name, owner in ((one, other), (other, one)):
        expected = "certs.%s.crt: is the " % name
        line = next((p for p in problems if p.startswith(expected)), None)
        assert line is not None, problems
        assert "it belongs in certs.%s" % owner in line
        assert (CAS[owner][0] or "empty subject") in line
    assert len(problems) == 2, problems


def secrets_pair(bundle, name):
    pair = bundle["certs"][name]
    return x509.load_pem_x509_certificate(pem(pair["crt"])), pki.load_key(pem(pair["key"]))


def ca_with_subject(name, subject):
    """A CA pair for role name with a given subject: organisation O=... or common name CN=..."""
    kind = pki.ED25519 if name == "os" else pki.ECDSA
    key = pki.generate_key(kind)
    attribute, _unused, value = subject.partition("=")
    oid = {"O": NameOID.ORGANIZATION_NAME, "CN": NameOID.COMMON_NAME}[attribute]
    subject_name = x509.Name([x509.NameAttribute(oid, value)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(subject_name).issuer_name(subject_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, None if kind == pki.ED25519 else hashes.SHA256())
    )
    return {"crt": base64.b64encode(pki.certificate_pem(certificate)).decode(), "key": base64.b64encode(pki.key_pem(key)).decode()}


SUBJECTS = {
    # (role, subject): the problem, or None when the bundle is usable
    ("k8s", "CN=kubernetes"): None,  # kubeadm's CAs, as talosctl gen secrets --from-kubernetes-pki imports them
    ("etcd", "CN=etcd-ca"): None,
    ("k8saggregator", "CN=front-proxy-ca"): None,
    ("k8saggregator", "CN=front-proxy"): (
        "certs.k8saggregator.crt: has the subject CN=front-proxy; "
        "talosctl gives the aggregator (front-proxy) CA the empty subject or subject CN=front-proxy-ca"
    ),
    ("os", "O=kubernetes"): "certs.os.crt: is the Kubernetes CA (subject O=kubernetes), not the Talos API CA (subject O=talos); it belongs in certs.k8s",
    ("etcd", "O=acme"): "certs.etcd.crt: has the subject O=acme; talosctl gives the etcd CA the subject O=etcd or subject CN=etcd-ca",
}


@pytest.mark.parametrize("name, subject", sorted(SUBJECTS))
def test_each_ca_needs_the_subject_of_its_role(golden_text, name, subject):
    bundle = yaml.safe_load(golden_text)
    bundle["certs"][name] = ca_with_subject(name, subject)
    problems = secrets.validate(bundle)
    expected = SUBJECTS[(name, subject)]
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith(expected), problems
