# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""X.509 the way Talos (siderolabs/crypto) makes it: self-signed CAs, leaf certificates, PEM labels.

Talos labels its PEM private keys by algorithm: `EC PRIVATE KEY` (SEC1), `RSA PRIVATE KEY` (PKCS#1)
and `ED25519 PRIVATE KEY`, whose body is PKCS#8. Keys are loaded by their label, as Talos does;
plain `PRIVATE KEY` (PKCS#8) is accepted too.
"""

from __future__ import annotations

import datetime
import os
import secrets

from ansible_collections.netboot.talos.plugins.module_utils import libraries

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
    CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
except ImportError as exc:  # reported by the modules: see libraries.py
    libraries.missing(exc)

CA_VALIDITY = datetime.timedelta(hours=87600)  # secrets.CAValidityTime: 10 years
SERIAL_LIMIT = 1 << 128
SUBJECT_KEY_ID_SIZE = 20
RSA_KEY_SIZE = 4096

ED25519 = "ed25519"
ECDSA = "ecdsa"  # always P-256
RSA = "rsa"


_ED25519_LABEL = b"ED25519 PRIVATE KEY"
_PKCS8_LABEL = b"PRIVATE KEY"


class PKIError(ValueError):
    """A certificate or key that cannot be parsed or used."""


def generate_key(kind):
    """A new private key: ed25519, ecdsa (P-256) or rsa (4096 bits)."""
    if kind == ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if kind == ECDSA:
        return ec.generate_private_key(ec.SECP256R1())
    if kind == RSA:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    raise PKIError("unknown key type %r" % (kind,))


def key_kind(key):
    """ed25519, ecdsa or rsa for a private or public key."""
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return ED25519
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return ECDSA
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return RSA
    raise PKIError("unsupported key type %s" % type(key).__name__)


def _relabel(pem, old, new):
    return pem.replace(b"-----BEGIN " + old + b"-----", b"-----BEGIN " + new + b"-----").replace(
        b"-----END " + old + b"-----", b"-----END " + new + b"-----"
    )


def key_pem(key):
    """The PEM of a private key with Talos's label for its algorithm."""
    if key_kind(key) == ED25519:
        pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return _relabel(pkcs8, _PKCS8_LABEL, _ED25519_LABEL)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def openssl_compatible_key_pem(pem):
    """The same key with the standard PKCS#8 label, which OpenSSL (and Python's ssl) can read."""
    return _relabel(pem, _ED25519_LABEL, _PKCS8_LABEL)


def pem_label(pem):
    """The label of the first PEM block (`CERTIFICATE`, `EC PRIVATE KEY`, ...) or None."""
    start = pem.find(b"-----BEGIN ")
    if start < 0:
        return None
    end = pem.find(b"-----", start + 11)
    return pem[start + 11:end].decode("ascii", "replace") if end > 0 else None


def load_key(pem):
    """The private key in pem (bytes), read by its PEM label as Talos reads it. Raises PKIError."""
    label = pem_label(pem)
    if label not in ("EC PRIVATE KEY", "RSA PRIVATE KEY", "ED25519 PRIVATE KEY", "PRIVATE KEY"):
        raise PKIError("not a PEM private key")
    try:
        key = serialization.load_pem_private_key(openssl_compatible_key_pem(pem), password=None)
    except (ValueError, TypeError):
        raise PKIError("not a PEM private key") from None
    expected = {"EC PRIVATE KEY": ECDSA, "RSA PRIVATE KEY": RSA, "ED25519 PRIVATE KEY": ED25519}.get(label)
    try:
        kind = key_kind(key)
    except PKIError:
        raise PKIError("unsupported private key type") from None
    if expected and kind != expected:
        raise PKIError("PEM label %s does not match its %s key" % (label, kind))
    if kind == ECDSA and not isinstance(key.curve, ec.SECP256R1):
        raise PKIError("ECDSA key is not on curve P-256")
    return key


def certificate_pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM)


def certificate_der(certificate):
    return certificate.public_bytes(serialization.Encoding.DER)


def load_certificate(pem):
    """The certificate in pem (bytes). Raises PKIError."""
    if pem_label(pem) != "CERTIFICATE":
        raise PKIError("not a PEM certificate")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise PKIError("not a PEM certificate") from None


def key_matches(certificate, key):
    """True when key is the private key of the certificate's public key."""
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return certificate.public_key().public_bytes(*raw) == key.public_key().public_bytes(*raw)


def signed_by(certificate, ca_certificate):
    """True when ca_certificate signed certificate (issuer name and signature)."""
    try:
        certificate.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def extended_key_usages(certificate):
    """The certificate's extended key usage OIDs, in order; [] without the extension."""
    try:
        return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []


def is_ca(certificate):
    """True when the certificate's basic constraints say CA:TRUE."""
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def fingerprint_sha256(certificate):
    """`AB:CD:...` over the DER certificate, as `openssl x509 -fingerprint -sha256` prints it."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def organizations(certificate):
    return [attribute.value for attribute in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def _signature_hash(ca_key):
    return None if key_kind(ca_key) == ED25519 else hashes.SHA256()


def _serial_number():
    # Go draws from [0, 2^128); X.509 (and cryptography) require a positive serial.
    serial = 0
    while serial == 0:
        serial = secrets.randbelow(SERIAL_LIMIT)
    return serial


def now():
    """The current UTC time in whole seconds, as certificates carry it."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _name(orgs):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in orgs])


def _builder(subject, issuer, public_key, when, validity, key_cert_sign):
    """Subject, issuer, key, a random serial, the validity window and the critical key usage."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(_serial_number())
        .not_valid_before(when)
        .not_valid_after(when + validity)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    )


def self_signed_ca(organization, key, when=None, validity=CA_VALIDITY):
    """A self-signed CA certificate for key, as crypto's NewSelfSignedCertificateAuthority makes it.

    organization None gives an empty subject (Talos's aggregator CA).
    """
    name = _name([organization] if organization else [])
    builder = (
        _builder(name, name, key.public_key(), when or now(), validity, key_cert_sign=True)
        # Go's extension order: key usage, extended key usage, basic constraints, subject key id.
        .add_extension(x509.ExtendedKeyUsage([SERVER_AUTH, CLIENT_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier(os.urandom(SUBJECT_KEY_ID_SIZE)), critical=False)
    )
    return builder.sign(key, _signature_hash(key))


def issue(ca_certificate, ca_key, orgs, ext_key_usages, validity, when=None):
    """A leaf certificate signed by the CA, as crypto's NewKeyPair makes it: (certificate, key).

    The new key has the CA key's type (ECDSA always P-256), subject O=<orgs> without a common
    name, key usage DigitalSignature (critical), the given extended key usages, no basic
    constraints, authority key id = the CA's subject key id.
    """
    key = generate_key(key_kind(ca_key))
    builder = _builder(_name(orgs), ca_certificate.subject, key.public_key(), when or now(), validity, key_cert_sign=False)
    builder = builder.add_extension(x509.ExtendedKeyUsage(list(ext_key_usages)), critical=False)
    try:
        ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(ca_key, _signature_hash(ca_key)), key


def issue_client_certificate(ca_certificate, ca_key, roles, validity):
    """A Talos API client certificate (secrets/ca.go NewAdminCertificateAndKey): O=<roles>, ClientAuth only."""
    return issue(ca_certificate, ca_key, list(roles), [CLIENT_AUTH], validity)
