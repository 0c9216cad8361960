"""pki: Talos's PEM labels, key loading by label, self-signed CAs and leaf certificates (talos.md §1.3, §1.4)."""

from __future__ import annotations

import base64
import datetime
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.netboot.talos.plugins.module_utils.talos import pki

LABELS = {pki.ED25519: "ED25519 PRIVATE KEY", pki.ECDSA: "EC PRIVATE KEY", pki.RSA: "RSA PRIVATE KEY"}


@pytest.fixture(scope="module")
def keys():
    return {kind: pki.generate_key(kind) for kind in (pki.ED25519, pki.ECDSA, pki.RSA)}


def pem_body(pem):
    return base64.b64decode("".join(line for line in pem.decode().splitlines() if not line.startswith("-----")))


@pytest.mark.parametrize("kind", [pki.ED25519, pki.ECDSA, pki.RSA])
def test_key_pem_uses_talos_label_and_loads_back(keys, kind):
    pem = pki.key_pem(keys[kind])
    lines = pem.decode().splitlines()
    assert lines[0] == "-----BEGIN %s-----" % LABELS[kind]
    assert lines[-1] == "-----END %s-----" % LABELS[kind]
    assert all(len(line) <= 64 for line in lines)
    loaded = pki.load_key(pem)
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert loaded.public_key().public_bytes(*raw) == keys[kind].public_key().public_bytes(*raw)


def test_key_bodies_are_sec1_pkcs1_and_pkcs8(keys):
    # SEC1 and PKCS#1 load as DER "traditional" keys; the Ed25519 body is a PKCS#8 PrivateKeyInfo.
    assert isinstance(serialization.load_der_private_key(pem_body(pki.key_pem(keys[pki.ECDSA])), None), ec.EllipticCurvePrivateKey)
    assert isinstance(serialization.load_der_private_key(pem_body(pki.key_pem(keys[pki.RSA])), None), rsa.RSAPrivateKey)
    pkcs8 = keys[pki.ED25519].private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert pem_body(pki.key_pem(keys[pki.ED25519])) == pkcs8
    assert keys[pki.RSA].key_size == 4096
    assert isinstance(keys[pki.ECDSA].curve, ec.SECP256R1)


def test_openssl_compatible_key_pem_is_readable_by_openssl(keys, tmp_path):
    talos_pem = pki.key_pem(keys[pki.ED25519])
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(talos_pem, None)  # the reason the helper exists
    standard = pki.openssl_compatible_key_pem(talos_pem)
    assert standard.startswith(b"-----BEGIN PRIVATE KEY-----\n") and standard.endswith(b"-----END PRIVATE KEY-----\n")
    path = tmp_path / "key.pem"
    path.write_bytes(standard)
    out = subprocess.run(["openssl", "pkey", "-in", str(path), "-noout", "-text"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "ED25519 Private-Key" in out.stdout, out.stderr
    # other labels pass through untouched
    assert pki.openssl_compatible_key_pem(pki.key_pem(keys[pki.ECDSA])) == pki.key_pem(keys[pki.ECDSA])


@pytest.mark.parametrize("kind", [pki.ECDSA, pki.RSA, pki.ED25519])
def test_load_key_accepts_plain_pkcs8(keys, kind):
    pem = keys[kind].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert pki.key_kind(pki.load_key(pem)) == kind


def test_load_key_rejects_what_talos_would_not_read(keys):
    certificate = pki.self_signed_ca("x", keys[pki.ECDSA])
    ec_pem = pki.key_pem(keys[pki.ECDSA])
    cases = {
        "certificate": pki.certificate_pem(certificate),
        "garbage": b"not a key at all",
        "truncated": ec_pem[: len(ec_pem) // 2] + b"\n-----END EC PRIVATE KEY-----\n",
        "label swapped": ec_pem.replace(b"EC PRIVATE KEY", b"RSA PRIVATE KEY"),
        "p384": ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ),
    }
    accepted = []
    for name, pem in cases.items():
        try:
            pki.load_key(pem)
            accepted.append(name)
        except pki.PKIError:
            pass
    assert accepted == []


def test_load_certificate_rejects_non_certificates(keys):
    with pytest.raises(pki.PKIError, match="not a PEM certificate"):
        pki.load_certificate(pki.key_pem(keys[pki.ECDSA]))
    pem = pki.certificate_pem(pki.self_signed_ca("x", keys[pki.ECDSA]))
    with pytest.raises(pki.PKIError):
        pki.load_certificate(pem[:200] + b"\n-----END CERTIFICATE-----\n")


@pytest.mark.parametrize("kind", [pki.ED25519, pki.ECDSA, pki.RSA])
def test_self_signed_ca_has_every_property_of_talos_cas(keys, kind):
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    certificate = pki.self_signed_ca("talos", keys[kind])
    assert certificate.subject == certificate.issuer
    assert certificate.subject.rfc4514_string() == "O=talos"
    assert 0 < certificate.serial_number < 1 << 128
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == datetime.timedelta(hours=87600)
    assert before - datetime.timedelta(minutes=5) <= certificate.not_valid_before_utc <= before + datetime.timedelta(minutes=5)
    extensions = certificate.extensions
    assert [type(e.value) for e in extensions] == [x509.KeyUsage, x509.ExtendedKeyUsage, x509.BasicConstraints, x509.SubjectKeyIdentifier]
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_cert_sign
    assert not (usage.value.key_encipherment or usage.value.crl_sign or usage.value.content_commitment)
    eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length is None
    ski = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert len(ski) == 20 and ski != x509.SubjectKeyIdentifier.from_public_key(keys[kind].public_key()).digest
    with pytest.raises(x509.ExtensionNotFound):
        extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert pki.signed_by(certificate, certificate) and pki.is_ca(certificate)


def test_self_signed_ca_without_organization_has_empty_subject(keys):
    certificate = pki.self_signed_ca(None, keys[pki.ECDSA])
    assert len(certificate.subject) == 0 and len(certificate.issuer) == 0


def test_two_cas_differ_in_serial_and_subject_key_id(keys):
    one, two = (pki.self_signed_ca("etcd", keys[pki.ECDSA]) for _unused in range(2))
    ski = [c.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest for c in (one, two)]
    assert one.serial_number != two.serial_number and ski[0] != ski[1]


@pytest.mark.parametrize("kind", [pki.ED25519, pki.ECDSA])
def test_client_certificate_follows_talos_admin_certificate(keys, kind):
    ca = pki.self_signed_ca("talos", keys[kind])
    certificate, key = pki.issue_client_certificate(ca, keys[kind], ["os:admin", "os:reader"], datetime.timedelta(days=365))
    assert pki.key_kind(key) == kind and pki.key_matches(certificate, key)
    assert pki.signed_by(certificate, ca)
    assert certificate.issuer == ca.subject
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    assert pki.organizations(certificate) == ["os:admin", "os:reader"]
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == datetime.timedelta(days=365)
    assert 0 < certificate.serial_number < 1 << 128
    extensions = certificate.extensions
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert pki.extended_key_usages(certificate) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        extensions.get_extension_for_class(x509.BasicConstraints)
    with pytest.raises(x509.ExtensionNotFound):
        extensions.get_extension_for_class(x509.SubjectAlternativeName)
    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert not pki.is_ca(certificate)


def test_signed_by_and_key_matches_say_no_to_strangers(keys):
    ca = pki.self_signed_ca("talos", keys[pki.ED25519])
    stranger_key = ed25519.Ed25519PrivateKey.generate()
    stranger = pki.self_signed_ca("talos", stranger_key)  # same subject, other key
    certificate, key = pki.issue_client_certificate(stranger, stranger_key, ["os:admin"], datetime.timedelta(days=1))
    assert not pki.signed_by(certificate, ca)
    assert pki.signed_by(certificate, stranger)
    assert not pki.key_matches(certificate, keys[pki.ED25519])


def test_fingerprint_matches_openssl(keys, tmp_path):
    certificate = pki.self_signed_ca("talos", keys[pki.ED25519])
    path = tmp_path / "ca.pem"
    path.write_bytes(pki.certificate_pem(certificate))
    out = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-fingerprint", "-sha256"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split("=", 1)[1] == pki.fingerprint_sha256(certificate)
