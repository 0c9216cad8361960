# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""talosconfig: the admin client configuration for the Talos API, kept valid across runs.

The file is what talosctl writes (yaml.v3, contexts sorted by name, each context in struct order).
The client certificate of a context is kept while it is signed by the bundle's Talos API CA, carries
the requested roles, is for client authentication only and does not expire within renew_days;
otherwise a new one is issued. Other contexts in the file are left as they are.
"""

from __future__ import annotations

import base64
import datetime

from ansible_collections.netboot.talos.plugins.module_utils import libraries

try:
    import yaml
except ImportError as exc:  # reported by the modules: see libraries.py
    libraries.missing(exc)

from ansible_collections.netboot.talos.plugins.module_utils import files
from ansible_collections.netboot.talos.plugins.module_utils.talos import pki, secrets, yamlv3

# pkg/machinery/role: the roles a client certificate can carry.
ROLES = ("os:admin", "os:operator", "os:reader", "os:etcd:backup", "os:image:verifier", "os:meta:writer", "os:impersonator")
# pkg/machinery/client/config Context, in declaration order; `target` is deprecated in favour of endpoints.
CONTEXT_FIELDS = ("endpoints", "nodes", "ca", "crt", "key", "auth", "cluster", "proxy-url")
FILE_MODE = 0o600


class ClientConfigError(ValueError):
    """Bad options or an unreadable talosconfig; .problems names every bad field."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__("; ".join(problems))


def check_options(context, endpoints, nodes, roles, validity_days, renew_days):
    """Every problem of the options, each naming its field."""
    problems = []
    if not isinstance(context, str) or not context.strip():
        problems.append("context: must be a non-empty name")
    for field, values in (("endpoints", endpoints), ("nodes", nodes)):
        for index, value in enumerate(values or ()):
            if not isinstance(value, str) or not value or any(char.isspace() for char in value):
                problems.append("%s[%d]: %r is not a host or host:port" % (field, index, value))
    if not roles:
        problems.append("roles: needs at least one role")
    for index, role in enumerate(roles or ()):
        if role not in ROLES:
            problems.append("roles[%d]: %r is not a Talos role (%s)" % (index, role, ", ".join(ROLES)))
    if validity_days < 1:
        problems.append("validity_days: must be at least 1")
    if renew_days < 0:
        problems.append("renew_days: must not be negative")
    elif renew_days >= validity_days:
        problems.append("renew_days: must be smaller than validity_days, or every run would issue a new certificate")
    return problems


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def certificate_is_current(entry, ca_certificate, roles, renew_before, now=None):
    """True when the context's client certificate and key can stay."""
    try:
        certificate = pki.load_certificate(base64.b64decode(entry["crt"], validate=True))
        key = pki.load_key(base64.b64decode(entry["key"], validate=True))
    except (KeyError, TypeError, ValueError):
        return False
    return (
        pki.signed_by(certificate, ca_certificate)
        and pki.key_matches(certificate, key)
        and sorted(pki.organizations(certificate)) == sorted(roles)
        and pki.extended_key_usages(certificate) == [pki.CLIENT_AUTH]
        and certificate.not_valid_after_utc > (now or pki.now()) + renew_before
    )


def _read(path):
    """(previous bytes or None, parsed document or None); ClientConfigError when it is not a talosconfig."""
    previous = files.read_secret(path)
    if not previous:
        return previous, None
    try:
        document = yaml.safe_load(previous)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d" % (mark.line + 1) if mark else ""
        raise ClientConfigError(["path: %s is not valid YAML%s; fix or remove it" % (path, where)]) from None
    if document is None:
        return previous, None
    if not isinstance(document, dict) or not isinstance(document.get("contexts") or {}, dict):
        raise ClientConfigError(["path: %s is not a talosconfig (no contexts mapping); fix or remove it" % path])
    return previous, document


def ensure(path, bundle, context, endpoints, nodes=(), roles=("os:admin",), validity_days=365, renew_days=30, check_mode=False):
    """Write the talosconfig at path (0600); reuse the client certificate unless it must be renewed.

    Returns {changed, renewed, expires, previous, content}. Raises ClientConfigError before writing.
    """
    roles = sorted(set(roles or ()))
    problems = check_options(context, endpoints, nodes, roles, validity_days, renew_days)
    if problems:
        raise ClientConfigError(problems)
    previous, document = _read(path)
    contexts = dict((document or {}).get("contexts") or {})
    existing = contexts.get(context)
    existing = existing if isinstance(existing, dict) else {}
    ca_certificate, ca_key = secrets.os_ca(bundle)
    ca = bundle["certs"]["os"]["crt"]
    renewed = not certificate_is_current(existing, ca_certificate, roles, datetime.timedelta(days=renew_days))
    if renewed:
        certificate, key = pki.issue_client_certificate(ca_certificate, ca_key, roles, datetime.timedelta(days=validity_days))
        crt, key = _b64(pki.certificate_pem(certificate)), _b64(pki.key_pem(key))
    else:
        crt, key = existing["crt"], existing["key"]
        certificate = pki.load_certificate(base64.b64decode(crt))
    managed = {"endpoints": list(endpoints), "nodes": list(nodes or ()) or None, "ca": ca, "crt": crt, "key": key}
    merged = {field: value for field, value in existing.items() if field != "target"}
    merged.update(managed)
    entry = {field: merged[field] for field in CONTEXT_FIELDS if merged.get(field) is not None}
    entry.update((field, value) for field, value in merged.items() if field not in entry and field not in CONTEXT_FIELDS)
    contexts[context] = entry
    content = yamlv3.dump({"context": context, "contexts": yamlv3.sort_keys(contexts)}).encode("utf-8")
    changed, previous = files.ensure_secret_file(path, content, FILE_MODE, check_mode)
    return {
        "changed": changed,
        "renewed": renewed,
        "expires": certificate.not_valid_after_utc.isoformat(),
        "previous": previous,
        "content": content,
    }
