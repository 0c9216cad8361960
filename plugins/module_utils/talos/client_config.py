# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""talosconfig: the admin client configuration for the Talos API, kept valid across runs."""

from __future__ import annotations

import base64
import datetime

import yaml

from ansible_collections.netboot.talos.plugins.module_utils import files
from ansible_collections.netboot.talos.plugins.module_utils.talos import pki, secrets, yamlv3


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _reusable_credentials(context, ca_certificate, roles, renew_before):
    """(crt, key) of an existing context when its certificate is still right, else None."""
    try:
        certificate = pki.load_certificate(base64.b64decode(context["crt"]))
        key = pki.load_key(base64.b64decode(context["key"]))
    except (KeyError, TypeError, ValueError):
        return None
    organizations = [attribute.value for attribute in certificate.subject]
    if (
        not pki.signed_by(certificate, ca_certificate)
        or not pki.key_matches(certificate, key)
        or organizations != list(roles)
        or certificate.not_valid_after_utc <= pki.now() + renew_before
    ):
        return None
    return context["crt"], context["key"]


def ensure(path, bundle, context, endpoints, nodes=(), roles=("os:admin",), validity_days=365, renew_days=30, check_mode=False):
    """Write the talosconfig at path (0600); reuse the client certificate unless it must be renewed.

    Returns {changed, renewed, expires, previous, content}.
    """
    ca_certificate, ca_key = secrets.os_ca(bundle)
    previous = files.read_bytes(path)
    try:
        document = yaml.safe_load(previous) if previous else None
    except yaml.YAMLError:
        document = None
    contexts = dict(document.get("contexts") or {}) if isinstance(document, dict) else {}
    credentials = None
    existing = contexts.get(context)
    if isinstance(existing, dict) and existing.get("ca") == bundle["certs"]["os"]["crt"]:
        credentials = _reusable_credentials(existing, ca_certificate, roles, datetime.timedelta(days=renew_days))
    renewed = credentials is None
    if renewed:
        certificate, key = pki.issue_client_certificate(
            ca_certificate, ca_key, roles, validity=datetime.timedelta(days=validity_days)
        )
        credentials = (_b64(pki.certificate_pem(certificate)), _b64(pki.key_pem(key)))
    entry = {"endpoints": list(endpoints)}
    if nodes:
        entry["nodes"] = list(nodes)
    entry.update(ca=bundle["certs"]["os"]["crt"], crt=credentials[0], key=credentials[1])
    contexts[context] = entry
    content = yamlv3.dump({"context": context, "contexts": contexts}).encode("utf-8")
    changed, previous = files.ensure_file(path, content, 0o600, check_mode)
    expires = pki.load_certificate(base64.b64decode(credentials[0])).not_valid_after_utc.isoformat()
    return {"changed": changed, "renewed": changed and renewed, "expires": expires, "previous": previous, "content": content}
