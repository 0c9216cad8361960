# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""The cluster secrets bundle, in exactly the format and with the key types of ``talosctl gen secrets``.

A bundle is the parsed ``secrets.yaml``: ``cluster`` (id, secret), ``secrets`` (bootstrap token,
secretbox or aescbc encryption secret), ``trustdinfo`` (token) and ``certs`` (etcd, k8s,
k8saggregator and os CAs, the service-account key), every certificate and key a base64-encoded PEM.
"""

from __future__ import annotations

import base64
import os
import re

from ansible_collections.netboot.talos.plugins.module_utils import libraries

try:
    import yaml
except ImportError as exc:  # reported by the modules: see libraries.py
    libraries.missing(exc)

from ansible_collections.netboot.talos.plugins.module_utils import files
from ansible_collections.netboot.talos.plugins.module_utils.talos import pki, yamlv3

TOKEN = re.compile(r"^[0-9a-z]{6}\.[0-9a-z]{16}$")
TOKEN_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
TOKEN_BYTE_LIMIT = 252  # 256 - 256 % 36: larger bytes would favour the first characters
SECRET_SIZE = 32
# (bundle key, subject organisation, key type); k8saggregator's CA has an empty subject in Talos.
CERTIFICATE_AUTHORITIES = (
    ("etcd", "etcd", pki.ECDSA),
    ("k8s", "kubernetes", pki.ECDSA),
    ("k8saggregator", None, pki.ECDSA),
    ("os", "talos", pki.ED25519),
)
CERT_ORDER = ("etcd", "k8s", "k8saggregator", "k8sserviceaccount", "os")
# The subjects (RFC 4514) a CA of each role may have: talosctl's, then kubeadm's, which
# `talosctl gen secrets --from-kubernetes-pki` imports. Each role's differ from every other role's,
# so CA pairs swapped between roles are caught.
CA_SUBJECTS = {
    "etcd": ("O=etcd", "CN=etcd-ca"),
    "k8s": ("O=kubernetes", "CN=kubernetes"),
    "k8saggregator": ("", "CN=front-proxy-ca"),
    "os": ("O=talos",),
}
CA_TITLES = {"etcd": "etcd CA", "k8s": "Kubernetes CA", "k8saggregator": "aggregator (front-proxy) CA", "os": "Talos API CA"}
# yaml.v3 writes struct fields in declaration order: Secrets has AESCBC before Secretbox.
ENCRYPTION_SECRETS = ("aescbcencryptionsecret", "secretboxencryptionsecret")
REDACTED = "******"
BUNDLE_MODE = 0o600
DIRECTORY_MODE = 0o700


class BundleError(ValueError):
    """A secrets bundle that cannot be used; .problems names every bad field."""

    def __init__(self, path, problems):
        self.problems = problems
        super().__init__(
            "%s is not a usable Talos secrets bundle; it was left untouched:\n%s" % (path, "\n".join("- " + p for p in problems))
        )


# ---------------------------------------------------------------------------------------------
# Generating


def _token_part(length):
    """Random characters of [0-9a-z]; bytes >= 252 are rejected so that every character is equally likely."""
    chars = []
    while len(chars) < length:
        chars.extend(TOKEN_ALPHABET[byte % 36] for byte in os.urandom(length) if byte < TOKEN_BYTE_LIMIT)
    return "".join(chars[:length])


def token():
    """A kubeadm-style token `abcdef.0123456789abcdef`, as talosctl's genToken(6, 16)."""
    return "%s.%s" % (_token_part(6), _token_part(16))


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def generate(contract=None):
    """A new bundle as `talosctl gen secrets` makes it for a version contract (major, minor).

    Contracts after 1.2 get a secretbox encryption secret (before: aescbc), after 1.6 an RSA-4096
    service-account key (before: ECDSA P-256). talosctl 1.14 encodes the cluster id with standard
    base64, earlier releases with URL-safe base64; without a contract the id is URL-safe, as every
    supported release before 1.14 writes it (Talos treats the id as an opaque string).
    """
    modern = contract is None
    certs = {}
    for name, organization, kind in CERTIFICATE_AUTHORITIES:
        key = pki.generate_key(kind)
        certs[name] = {"crt": _b64(pki.certificate_pem(pki.self_signed_ca(organization, key))), "key": _b64(pki.key_pem(key))}
    service_account_kind = pki.RSA if modern or contract > (1, 6) else pki.ECDSA
    certs["k8sserviceaccount"] = {"key": _b64(pki.key_pem(pki.generate_key(service_account_kind)))}
    encryption = "secretboxencryptionsecret" if modern or contract > (1, 2) else "aescbcencryptionsecret"
    id_encoding = base64.b64encode if not modern and contract >= (1, 14) else base64.urlsafe_b64encode
    return {
        "cluster": {"id": id_encoding(os.urandom(SECRET_SIZE)).decode("ascii"), "secret": _b64(os.urandom(SECRET_SIZE))},
        "secrets": {"bootstraptoken": token(), encryption: _b64(os.urandom(SECRET_SIZE))},
        "trustdinfo": {"token": token()},
        "certs": {name: certs[name] for name in CERT_ORDER},
    }


def dump(bundle):
    """secrets.yaml text, byte for byte as talosctl writes it (yaml.v3 struct order, 4-space indent)."""
    section = bundle["secrets"]
    ordered = {
        "cluster": {"id": bundle["cluster"]["id"], "secret": bundle["cluster"]["secret"]},
        "secrets": dict(
            [("bootstraptoken", section["bootstraptoken"])]
            + [(name, section[name]) for name in ENCRYPTION_SECRETS if section.get(name)]  # omitempty
        ),
        "trustdinfo": {"token": bundle["trustdinfo"]["token"]},
        "certs": {
            name: {field: bundle["certs"][name][field] for field in ("crt", "key") if field in bundle["certs"][name]}
            for name in CERT_ORDER
        },
    }
    return yamlv3.dump(ordered)


def placeholder_bundle():
    """A complete bundle of stand-in values, for trial renders before the real bundle exists. No crypto."""
    pem = _b64(b"-----BEGIN PLACEHOLDER-----\nAAAA\n-----END PLACEHOLDER-----\n")
    zeros = _b64(b"\0" * SECRET_SIZE)
    return {
        "cluster": {"id": zeros, "secret": zeros},
        "secrets": {"bootstraptoken": "000000.0000000000000000", "secretboxencryptionsecret": zeros},
        "trustdinfo": {"token": "000000.0000000000000000"},
        "certs": {name: ({"key": pem} if name == "k8sserviceaccount" else {"crt": pem, "key": pem}) for name in CERT_ORDER},
    }


# ---------------------------------------------------------------------------------------------
# Validating


def _decode(value, where, problems):
    """The bytes behind a base64 field, or None after recording why there are none."""
    if value is None or value == "":
        problems.append("%s: is missing" % where)
        return None
    if value == REDACTED:
        problems.append("%s: is redacted (******), not a usable value" % where)
        return None
    if not isinstance(value, str):
        problems.append("%s: is not a base64 string" % where)
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        problems.append("%s: is not base64" % where)
        return None


def _check_key(value, where, problems):
    raw = _decode(value, where, problems)
    if raw is None:
        return None
    try:
        return pki.load_key(raw)
    except pki.PKIError as exc:
        problems.append("%s: %s" % (where, exc))
        return None


def _check_authority(certs, name, problems):
    entry = certs.get(name)
    if not isinstance(entry, dict):
        problems.append("certs.%s: is missing" % name)
        return
    certificate = None
    raw = _decode(entry.get("crt"), "certs.%s.crt" % name, problems)
    if raw is not None:
        try:
            certificate = pki.load_certificate(raw)
        except pki.PKIError as exc:
            problems.append("certs.%s.crt: %s" % (name, exc))
    if certificate is not None and not pki.is_ca(certificate):
        problems.append("certs.%s.crt: is not a CA certificate" % name)
    elif certificate is not None:
        _check_subject(name, certificate.subject.rfc4514_string(), problems)
    private_key = _check_key(entry.get("key"), "certs.%s.key" % name, problems)
    if certificate is not None and private_key is not None and not pki.key_matches(certificate, private_key):
        problems.append("certs.%s: key does not match certificate" % name)


def _subjects(name):
    return " or ".join("subject " + subject if subject else "empty subject" for subject in CA_SUBJECTS[name])


def _check_subject(name, subject, problems):
    """A CA must have its role's subject; Talos would accept CA pairs swapped between roles."""
    if subject in CA_SUBJECTS[name]:
        return
    owner = next((other for other, subjects in CA_SUBJECTS.items() if subject in subjects), None)
    shown = "subject " + subject if subject else "empty subject"
    if owner:
        problems.append(
            "certs.%s.crt: is the %s (%s), not the %s (%s); it belongs in certs.%s: are the CA pairs swapped?"
            % (name, CA_TITLES[owner], shown, CA_TITLES[name], _subjects(name), owner)
        )
    else:
        problems.append("certs.%s.crt: has the %s; talosctl gives the %s the %s" % (name, shown, CA_TITLES[name], _subjects(name)))


def _check_secret(value, where, problems):
    raw = _decode(value, where, problems)
    if raw is not None and len(raw) != SECRET_SIZE:
        problems.append("%s: must encode %d bytes, not %d" % (where, SECRET_SIZE, len(raw)))


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
    cluster_id = sections["cluster"].get("id")
    if not isinstance(cluster_id, str) or not cluster_id:
        problems.append("cluster.id: is missing")
    _check_secret(sections["cluster"].get("secret"), "cluster.secret", problems)
    for where, value in (("secrets.bootstraptoken", sections["secrets"].get("bootstraptoken")), ("trustdinfo.token", sections["trustdinfo"].get("token"))):
        if value is None or value == "":
            problems.append("%s: is missing" % where)
        elif not isinstance(value, str) or not TOKEN.match(value):
            problems.append("%s: is not a token like abcdef.0123456789abcdef" % where)
    present = [name for name in ENCRYPTION_SECRETS if sections["secrets"].get(name)]
    if len(present) != 1:
        problems.append(
            "secrets: needs exactly one of %s (found %s)" % (" and ".join(ENCRYPTION_SECRETS), " and ".join(present) or "neither")
        )
    else:
        _check_secret(sections["secrets"][present[0]], "secrets." + present[0], problems)
    certs = sections["certs"]
    for name, _unused1, _unused2 in CERTIFICATE_AUTHORITIES:
        _check_authority(certs, name, problems)
    service_account = certs.get("k8sserviceaccount")
    if not isinstance(service_account, dict):
        problems.append("certs.k8sserviceaccount: is missing")
    else:
        _check_key(service_account.get("key"), "certs.k8sserviceaccount.key", problems)
    return problems


def parse(text):
    """(bundle, problems) from secrets.yaml text. Messages name fields and lines, never quote content."""
    try:
        bundle = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark else ""
        return None, ["secrets.yaml: is not valid YAML%s" % where]
    return bundle, validate(bundle)


def load(path):
    """The valid bundle at path, or None when there is no file. Raises BundleError listing every problem."""
    raw = files.read_secret(path)
    if raw is None:
        return None
    bundle, problems = parse(raw.decode("utf-8", "replace"))
    if problems:
        raise BundleError(path, problems)
    return bundle


def os_ca(bundle):
    """(certificate, private key) of the Talos API CA of a valid bundle."""
    certs = bundle["certs"]["os"]
    return pki.load_certificate(base64.b64decode(certs["crt"])), pki.load_key(base64.b64decode(certs["key"]))


def describe(bundle):
    """Facts about a valid bundle that are safe to show: CA subjects, expiry dates, the OS CA's fingerprint."""
    facts = {}
    for name, _unused1, _unused2 in CERTIFICATE_AUTHORITIES:
        certificate = pki.load_certificate(base64.b64decode(bundle["certs"][name]["crt"]))
        facts[name] = {
            "subject": certificate.subject.rfc4514_string(),
            "not_after": certificate.not_valid_after_utc.isoformat(),
        }
        if name == "os":
            facts[name]["sha256"] = pki.fingerprint_sha256(certificate)
    return facts


# ---------------------------------------------------------------------------------------------
# The file


def _create_exclusive(path, content):
    """Write a new file atomically, 0600, and never over an existing one (not even one made meanwhile)."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, ".%s.%d.new" % (os.path.basename(path), os.getpid()))
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, BUNDLE_MODE)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)  # fails with FileExistsError instead of replacing
    finally:
        os.unlink(temporary)


def ensure(path, check_mode=False, contract=None):
    """Create the bundle at path unless one exists; never rewrite an existing one.

    Returns (changed, created, bundle). An existing bundle is only validated, and its mode fixed to
    0600; a bundle with problems raises BundleError and nothing is written. In check mode a missing
    bundle is reported as created and no bundle is returned (nothing is generated).
    """
    if os.path.isdir(path):
        raise BundleError(path, ["path: is a directory"])
    bundle = load(path)
    if bundle is not None:
        # Its plaintext as it is: only the mode, or the vault form with a vault secret given, may change.
        changed, _previous = files.ensure_secret_file(path, files.read_secret(path), BUNDLE_MODE, check_mode)
        return changed, False, bundle
    if check_mode:
        return True, True, None
    bundle = generate(contract)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        files.ensure_directory(parent, DIRECTORY_MODE)
    try:
        _create_exclusive(path, files.encode_secret(dump(bundle).encode("utf-8")))
    except FileExistsError:
        raise BundleError(path, ["path: another process created it meanwhile; run again to validate it"]) from None
    return True, True, bundle
