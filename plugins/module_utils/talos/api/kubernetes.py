# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Kubeconfig handling and the Kubernetes node list (python requests, client cert, CA verified)."""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import tempfile
import time

from ansible_collections.netboot.talos.plugins.module_utils import files, libraries

try:
    import yaml
except ImportError as exc:  # reported by the modules: see libraries.py
    libraries.missing(exc)

try:
    import requests
    HAS_REQUESTS = True
except ImportError:
    HAS_REQUESTS = False


class KubeconfigError(ValueError):
    pass


def parse_kubeconfig(content):
    """The parts of a kubeconfig that matter: cluster name, server, CA, user, client certificate."""
    try:
        data = yaml.safe_load(content)
        context_name = data["current-context"]
        context = next(c["context"] for c in data["contexts"] if c["name"] == context_name)
        cluster = next(c for c in data["clusters"] if c["name"] == context["cluster"])
        user = next(u for u in data["users"] if u["name"] == context["user"])
        return {
            "context": context_name,
            "cluster": cluster["name"],
            "server": cluster["cluster"]["server"],
            "ca": base64.b64decode(cluster["cluster"]["certificate-authority-data"]),
            "user": user["name"],
            "crt": base64.b64decode(user["user"]["client-certificate-data"]),
            "key": base64.b64decode(user["user"]["client-key-data"]),
        }
    except (yaml.YAMLError, KeyError, TypeError, StopIteration, ValueError) as exc:
        raise KubeconfigError("not a usable kubeconfig (%s: %s)" % (type(exc).__name__, exc))


def certificate_expiry(crt_pem):
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(crt_pem)
    return cert.not_valid_after_utc


def issued_by(crt_pem, ca_pem):
    """Whether the client certificate was signed by this CA."""
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(crt_pem).verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
        return True
    except (ValueError, TypeError, Exception):  # InvalidSignature and friends
        return False


def keep_existing(existing, fetched, renew_days, now=None):
    """Why the existing kubeconfig can stay (a reason string) or None when it must be replaced.

    Talos issues a new client certificate on every Kubeconfig call, so the content always differs.
    The existing file is kept when it is for the same cluster (name, server, CA, user and context),
    its client certificate is from that CA, and the certificate is valid for more than renew_days.
    """
    if existing is None:
        return None
    try:
        old = parse_kubeconfig(existing)
    except KubeconfigError:
        return None
    same = all(old[k] == fetched[k] for k in ("context", "cluster", "server", "ca", "user"))
    if not same or not issued_by(old["crt"], fetched["ca"]):
        return None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    expires = certificate_expiry(old["crt"])
    if expires - now <= datetime.timedelta(days=renew_days):
        return None
    return "same cluster, server and CA; client certificate valid until %s" % expires.strftime("%Y-%m-%d")


class KubeApiError(RuntimeError):
    """A request the API server refused; str() has the method, path, status and the Status message."""

    def __init__(self, status, body, what):
        self.status, self.body = status, body
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__("%s: HTTP %s%s" % (what, status, ": %s" % message if message else ""))


class KubeClient:
    """Requests against the API server named by a kubeconfig."""

    def __init__(self, kubeconfig_content, timeout=5.0):
        config = parse_kubeconfig(kubeconfig_content)
        self.server = config["server"].rstrip("/")
        self.timeout = timeout
        self._directory = tempfile.mkdtemp(prefix="netboot-kube-")
        self._files = {}
        for name, content in (("ca", config["ca"]), ("crt", config["crt"]), ("key", config["key"])):
            path = os.path.join(self._directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            self._files[name] = path
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would override the cluster's CA; no proxies either

    def get(self, path):
        response = self.session.get(self.server + path, timeout=self.timeout, verify=self._files["ca"],
                                    cert=(self._files["crt"], self._files["key"]))
        response.raise_for_status()
        return response.json()

    # ---- write verbs (day 2: cordon, drain, node removal)

    def call(self, method, path, body=None, content_type="application/json"):
        """(HTTP status, decoded JSON body or {}) of any request; statuses are the caller's to judge."""
        headers = {"Content-Type": content_type} if body is not None else {}
        response = self.session.request(method, self.server + path, timeout=self.timeout, verify=self._files["ca"],
                                        cert=(self._files["crt"], self._files["key"]), headers=headers,
                                        data=None if body is None else json.dumps(body))
        try:
            decoded = response.json()
        except ValueError:
            decoded = {}
        return response.status_code, decoded

    def merge_patch(self, path, body):
        status, decoded = self.call("PATCH", path, body, "application/merge-patch+json")
        if status >= 300:
            raise KubeApiError(status, decoded, "PATCH " + path)
        return decoded

    def apply(self, path, body, field_manager, force=True):
        """Server-side apply of one object (PATCH application/apply-patch+yaml; JSON is YAML)."""
        query = "?fieldManager=%s%s" % (field_manager, "&force=true" if force else "")
        status, decoded = self.call("PATCH", path + query, body, "application/apply-patch+yaml")
        if status >= 300:
            raise KubeApiError(status, decoded, "PATCH (server-side apply) " + path)
        return decoded

    def delete(self, path):
        """Deletes; a 404 counts as done. Returns the status."""
        status, decoded = self.call("DELETE", path)
        if status >= 300 and status != 404:
            raise KubeApiError(status, decoded, "DELETE " + path)
        return status

    def close(self):
        self.session.close()
        shutil.rmtree(self._directory, ignore_errors=True)


def client_from_file(path):
    """A KubeClient for the kubeconfig at path; KubeconfigError names the file and the problem."""
    try:
        content = files.read_secret(path)
        if content is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        return KubeClient(content)
    except (OSError, KubeconfigError) as exc:
        raise KubeconfigError("kubeconfig: %s: %s" % (path, getattr(exc, "strerror", None) or exc))


def _age(created, now):
    try:
        then = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    seconds = int((now - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return "%d%s" % (seconds // size, unit)
    return "%ds" % max(seconds, 0)


def summarize(node, now=None):
    """One row of `kubectl get nodes -o wide` as a dict."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    metadata, status = node.get("metadata") or {}, node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    labels = metadata.get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return {
        "name": metadata.get("name", ""),
        "status": "Ready" if ready.get("status") == "True" else "NotReady",
        "roles": ",".join(roles) or "<none>",
        "age": _age(metadata.get("creationTimestamp"), now),
        "version": info.get("kubeletVersion", ""),
        "internal_ip": addresses.get("InternalIP", "<none>"),
        "external_ip": addresses.get("ExternalIP", "<none>"),
        "os_image": info.get("osImage", ""),
        "kernel_version": info.get("kernelVersion", ""),
        "container_runtime": info.get("containerRuntimeVersion", ""),
    }


COLUMNS = [("NAME", "name"), ("STATUS", "status"), ("ROLES", "roles"), ("AGE", "age"), ("VERSION", "version"),
           ("INTERNAL-IP", "internal_ip"), ("EXTERNAL-IP", "external_ip"), ("OS-IMAGE", "os_image"),
           ("KERNEL-VERSION", "kernel_version"), ("CONTAINER-RUNTIME", "container_runtime")]


def table(rows):
    """Lines laid out like kubectl: columns padded to the widest cell plus three spaces."""
    cells = [[title for title, _unused1 in COLUMNS]] + [[row[key] for _unused2, key in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return ["   ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]


NOT_REGISTERED, REGISTERED, READY = "not registered", "registered", "Ready"


def stages_of(rows, names):
    """Each name's stage in the node list: not registered, registered (not Ready yet) or Ready."""
    status = {row["name"]: row["status"] for row in rows}
    return {name: READY if status.get(name) == "Ready" else REGISTERED if name in status else NOT_REGISTERED
            for name in names}


def wait_ready(api, names, timeout, interval=1.0, on_change=None, on_tick=None):
    """Read the node list every interval seconds until every name is Ready or timeout seconds pass.

    on_change(name, previous_stage, stage, seconds) runs at each stage change (previous None at
    first sight), on_tick(seconds, stages) after every read that leaves someone waiting.
    Returns {"ready", "rows", "stages", "waiting", "last_error", "seconds"}.
    """
    start = time.monotonic()
    rows, stages, last_error = [], {}, None
    while True:
        try:
            rows = [summarize(item) for item in api.get("/api/v1/nodes").get("items", [])]
            last_error = None
        except Exception as exc:  # requests' connection, TLS and HTTP errors: retried until the timeout
            last_error = "%s: %s" % (type(exc).__name__, exc)
        seconds = round(time.monotonic() - start, 2)
        current = stages_of(rows, names)
        for name in names:
            if on_change is not None and current[name] != stages.get(name):
                on_change(name, stages.get(name), current[name], seconds)
        stages = current
        waiting = [name for name in names if stages[name] != READY]
        ready = not waiting and last_error is None
        if ready or seconds >= timeout:
            return {"ready": ready, "rows": rows, "stages": stages, "waiting": waiting, "last_error": last_error,
                    "seconds": seconds}
        if on_tick is not None:
            on_tick(seconds, stages)
        time.sleep(interval)


def not_ready_message(outcome, timeout, server):
    """Why the wait failed: each waiting node with its stage, and the last error reading the list."""
    texts = {REGISTERED: "registered (NotReady)"}
    parts = ["%s %s" % (name, texts.get(outcome["stages"][name], outcome["stages"][name])) for name in outcome["waiting"]]
    if outcome["last_error"]:
        parts.append("last error from %s: %s" % (server, outcome["last_error"]))
    return "nodes not Ready after %ss: %s" % (timeout, "; ".join(parts))


def object_path(item):
    """The API path of a manifest object: /api/v1 or /apis/<group>/<version>, its namespace, its kind's plural."""
    version = item.get("apiVersion") or ""
    metadata = item.get("metadata") or {}
    if not version or not item.get("kind") or not metadata.get("name"):
        raise ValueError("a manifest object needs apiVersion, kind and metadata.name: %r" % (item,))
    kind = item["kind"].lower()
    plural = kind[:-1] + "ies" if kind.endswith("y") and kind[-2:-1] not in "aeiou" else kind + ("es" if kind.endswith("s") else "s")
    base = "/api/" + version if "/" not in version else "/apis/" + version
    namespace = "/namespaces/%s" % metadata["namespace"] if metadata.get("namespace") else ""
    return "%s%s/%s/%s" % (base, namespace, plural, metadata["name"])
