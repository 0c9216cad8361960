# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""The cluster secrets bundle, in exactly the format and with the key types of ``talosctl gen secrets``.

A bundle is the parsed ``secrets.yaml``: ``cluster`` (id, secret), ``secrets`` (bootstrap token,
secretbox encryption secret), ``trustdinfo`` (token) and ``certs`` (etcd, k8s, k8saggregator and os
CAs, the service-account key), every certificate and key a base64-encoded PEM.
"""

from __future__ import annotations

import base64
import os
import re

import yaml

from ansible_collections.netboot.talos.plugins.module_utils.talos import pki, yamlv3

TOKEN = re.compile(r"^[0-9a-z]{6}\.[0-9a-z]{16}$")
TOKEN_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# (bundle key, subject organisation, key type); k8saggregator's CA has an empty subject in Talos.
CERTIFICATE_AUTHORITIES = (
    ("etcd", "etcd", "ecdsa"),
    ("k8s", "kubernetes", "ecdsa"),
    ("k8saggregator", None, "ecdsa"),
    ("os", "talos", "ed25519"),
)
ENCRYPTION_SECRETS = ("secretboxencryptionsecret", "aescbcencryptionsecret")


def _token_part(length):
    """Random characters of [0-9a-z], rejecting bytes >= 252 so that every character is equally likely."""
    chars = []
    while len(chars) < length:
        for byte in os.urandom(length):
            if byte < 252 and len(chars) < length:
                chars.append(TOKEN_ALPHABET[byte % 36])
    return "".join(chars)


def token():
    return "%s.%s" % (_token_part(6), _token_part(16))


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def generate():
    """A new bundle as talosctl gen secrets makes it for Talos 1.9 and later."""
    certs = {}
    for name, organization, kind in CERTIFICATE_AUTHORITIES:
        key = pki.generate_key(kind)
        certs[name] = {"crt": _b64(pki.certificate_pem(pki.self_signed_ca(organization, key))), "key": _b64(pki.key_pem(key))}
    certs["k8sserviceaccount"] = {"key": _b64(pki.key_pem(pki.generate_key("rsa")))}
    return {
        "cluster": {"id": base64.urlsafe_b64encode(os.urandom(32)).decode("ascii"), "secret": _b64(os.urandom(32))},
        "secrets": {"bootstraptoken": token(), "secretboxencryptionsecret": _b64(os.urandom(32))},
        "trustdinfo": {"token": token()},
        "certs": {name: certs[name] for name in ("etcd", "k8s", "k8saggregator", "k8sserviceaccount", "os")},
    }


def dump(bundle):
    """secrets.yaml text, byte for byte as talosctl writes it (yaml.v3, 4-space indent)."""
    return yamlv3.dump(bundle)


def placeholder_bundle():
    """A complete bundle of stand-in values, for trial renders before the real bundle exists. No crypto."""
    pem = _b64(b"-----BEGIN PLACEHOLDER-----\nAAAA\n-----END PLACEHOLDER-----\n")
    return {
        "cluster": {"id": _b64(b"\0" * 32), "secret": _b64(b"\0" * 32)},
        "secrets": {"bootstraptoken": "000000.0000000000000000", "secretboxencryptionsecret": _b64(b"\0" * 32)},
        "trustdinfo": {"token": "000000.0000000000000000"},
        "certs": {
            "etcd": {"crt": pem, "key": pem},
            "k8s": {"crt": pem, "key": pem},
            "k8saggregator": {"crt": pem, "key": pem},
            "k8sserviceaccount": {"key": pem},
            "os": {"crt": pem, "key": pem},
        },
    }


def _decode_pem(value, where, problems):
    if value == "******":
        problems.append("%s: is redacted (******), not a usable value" % where)
        return None
    if not isinstance(value, str) or not value:
        problems.append("%s: is missing" % where)
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        problems.append("%s: is not base64" % where)
        return None


def _check_authority(certs, name, problems):
    entry = certs.get(name)
    if not isinstance(entry, dict):
        problems.append("certs.%s: is missing" % name)
        return
    crt = _decode_pem(entry.get("crt"), "certs.%s.crt" % name, problems)
    key = _decode_pem(entry.get("key"), "certs.%s.key" % name, problems)
    certificate = private_key = None
    if crt is not None:
        try:
            certificate = pki.load_certificate(crt)
        except pki.PKIError as exc:
            problems.append("certs.%s.crt: %s" % (name, exc))
    if key is not None:
        try:
            private_key = pki.load_key(key)
        except pki.PKIError as exc:
            problems.append("certs.%s.key: %s" % (name, exc))
    if certificate is not None and private_key is not None and not pki.key_matches(certificate, private_key):
        problems.append("certs.%s: key does not match certificate" % name)


def validate(bundle):
    """Every problem of a parsed bundle, each naming its field; an empty list when it is usable."""
    if not isinstance(bundle, dict):
        return ["secrets.yaml: is not a mapping of cluster, secrets, trustdinfo and certs"]
    problems = []
    sections = {}
    for section in ("cluster", "secrets", "trustdinfo", "certs"):
        sections[section] = bundle.get(section)
        if not isinstance(sections[section], dict):
            problems.append("%s: is missing" % section)
            sections[section] = {}
    for key in ("id", "secret"):
        if not isinstance(sections["cluster"].get(key), str) or not sections["cluster"][key]:
            problems.append("cluster.%s: is missing" % key)
    for where, value in (("secrets.bootstraptoken", sections["secrets"].get("bootstraptoken")), ("trustdinfo.token", sections["trustdinfo"].get("token"))):
        if value is None:
            problems.append("%s: is missing" % where)
        elif not isinstance(value, str) or not TOKEN.match(value):
            problems.append("%s: is not a token like abcdef.0123456789abcdef" % where)
    present = [key for key in ENCRYPTION_SECRETS if sections["secrets"].get(key)]
    if len(present) != 1:
        problems.append(
            "secrets: needs exactly one of %s (found %s)" % (" and ".join(ENCRYPTION_SECRETS), " and ".join(present) or "neither")
        )
    else:
        raw = _decode_pem(sections["secrets"][present[0]], "secrets." + present[0], problems)
        if raw is not None and len(raw) != 32:
            problems.append("secrets.%s: must encode 32 bytes, not %d" % (present[0], len(raw)))
    certs = sections["certs"]
    for name, _, _ in CERTIFICATE_AUTHORITIES:
        _check_authority(certs, name, problems)
    service_account = certs.get("k8sserviceaccount")
    if not isinstance(service_account, dict):
        problems.append("certs.k8sserviceaccount: is missing")
    else:
        key = _decode_pem(service_account.get("key"), "certs.k8sserviceaccount.key", problems)
        if key is not None:
            try:
                pki.load_key(key)
            except pki.PKIError as exc:
                problems.append("certs.k8sserviceaccount.key: %s" % exc)
    return problems


def parse(text):
    """(bundle, problems) from secrets.yaml text."""
    try:
        bundle = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, ["secrets.yaml: not valid YAML: %s" % str(exc).replace("\n", " ")]
    return bundle, validate(bundle)


def os_ca(bundle):
    """(certificate, private key) of the Talos API CA."""
    certs = bundle["certs"]["os"]
    return pki.load_certificate(base64.b64decode(certs["crt"])), pki.load_key(base64.b64decode(certs["key"]))


def describe(bundle):
    """Facts about a bundle that are safe to show: the OS CA's fingerprint, subjects and expiry dates."""
    import hashlib

    facts = {}
    for name, _, _ in CERTIFICATE_AUTHORITIES:
        certificate = pki.load_certificate(base64.b64decode(bundle["certs"][name]["crt"]))
        facts[name] = {
            "subject": certificate.subject.rfc4514_string(),
            "not_after": certificate.not_valid_after_utc.isoformat(),
        }
    os_certificate = pki.load_certificate(base64.b64decode(bundle["certs"]["os"]["crt"]))
    facts["os"]["sha256"] = hashlib.sha256(pki.certificate_der(os_certificate)).hexdigest()
    return facts


def ensure(path, check_mode=False):
    """Create the bundle at path unless one exists; never rewrite an existing one.

    Returns (changed, created, bundle). An existing bundle is only validated, and its mode fixed to
    0600. A bundle with problems raises BundleError and nothing is written.
    """
    from ansible_collections.netboot.talos.plugins.module_utils import files

    existing = files.read_bytes(path)
    if existing is not None:
        bundle, problems = parse(existing.decode("utf-8", "replace"))
        if problems:
            raise BundleError(path, problems)
        changed = files.file_mode(path) != 0o600
        if changed and not check_mode:
            os.chmod(path, 0o600)
        return changed, False, bundle
    bundle = generate()
    if not check_mode:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            files.ensure_directory(parent, 0o700)
        files.write_atomic(path, dump(bundle).encode("utf-8"), 0o600)
    return True, True, bundle


class BundleError(ValueError):
    def __init__(self, path, problems):
        self.problems = problems
        super().__init__(
            "%s is not a usable Talos secrets bundle; it was left untouched:\n%s" % (path, "\n".join("- " + p for p in problems))
        )
