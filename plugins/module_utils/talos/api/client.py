# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Talos machine API over gRPC (grpclib + the stdlib ssl module), called synchronously.

grpcio cannot be used: its BoringSSL offers no Ed25519 signatures and every Talos API certificate
is Ed25519. Two kinds of connection exist:

* secure: mTLS with the talosconfig's admin certificate, the node's certificate verified against
  the cluster's OS CA. The hostname check is off because nodes are reached by addresses that need
  not be in the certificate's SANs; the chain is still verified, so only a node holding a
  certificate from this cluster's OS CA is accepted.
* maintenance (insecure): server-only TLS against the node's throw-away self-signed certificate,
  optionally pinned by the SHA-256 of its SubjectPublicKeyInfo (base64, as the console prints it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import io
import os
import ssl
import tarfile
import tempfile
import time

try:
    from grpclib.client import Channel
    from grpclib.const import Cardinality
    from grpclib.encoding.base import CodecBase
    from grpclib.exceptions import GRPCError, StreamTerminatedError
    HAS_GRPCLIB = True
except ImportError:  # reported by the modules through missing_required_lib
    HAS_GRPCLIB = False
    CodecBase = object

from ansible_collections.netboot.talos.plugins.module_utils import files, libraries

try:
    import yaml
except ImportError as exc:  # reported by the modules: see libraries.py
    libraries.missing(exc)

from ansible_collections.netboot.talos.plugins.module_utils.talos.api import messages as m

try:
    from ansible_collections.netboot.talos.plugins.module_utils.talos.pki import openssl_compatible_key_pem
except ImportError:
    openssl_compatible_key_pem = None

API_PORT = 50000
CONNECT_TIMEOUT = 5.0

# gRPC status codes (google.rpc.Code)
INVALID_ARGUMENT, ALREADY_EXISTS, PERMISSION_DENIED = 3, 6, 7
FAILED_PRECONDITION, UNIMPLEMENTED, UNAVAILABLE, UNAUTHENTICATED = 9, 12, 14, 16
DEADLINE_EXCEEDED = 4


class TalosApiError(Exception):
    """A call to one node failed; str() names the node and what went wrong.

    via is the endpoint whose apid answered for the node (the error came in the reply's metadata).
    """

    code = None

    def __init__(self, node, message, code=None, via=None):
        self.node = node
        self.detail = message
        self.via = via
        if code is not None:
            self.code = code
        where = "node %s (through endpoint %s)" % (node, via) if via else "node %s" % node
        super().__init__("%s: %s" % (where, message))


class Unavailable(TalosApiError):
    """No answer: connection refused or timed out, or the API reported UNAVAILABLE."""

    code = UNAVAILABLE


class FailedPrecondition(TalosApiError):
    code = FAILED_PRECONDITION


class AlreadyExists(TalosApiError):
    code = ALREADY_EXISTS


class InvalidArgument(TalosApiError):
    code = INVALID_ARGUMENT


class PermissionDenied(TalosApiError):
    code = PERMISSION_DENIED


class MaintenanceMode(TalosApiError):
    """UNIMPLEMENTED: the node runs in maintenance mode (no config yet) and offers no such call or option."""

    code = UNIMPLEMENTED


class TlsError(TalosApiError):
    """The TLS handshake failed: wrong CA, rejected client certificate, pin mismatch."""


class ClientCertificateRequired(TlsError):
    """A maintenance-mode (insecure) connection was refused: the node is configured and wants mTLS."""


ERRORS_BY_CODE = {
    cls.code: cls for cls in (Unavailable, FailedPrecondition, AlreadyExists, InvalidArgument, PermissionDenied, MaintenanceMode)
}


def error_for(node, code, message, via=None):
    """The exception for a gRPC status code (via: the endpoint that relayed it in the reply's metadata)."""
    code = int(code)
    # Maintenance mode refuses some calls and options in its own words ("apply configuration
    # --mode='staged' is not supported in maintenance mode"): those are not a missing API.
    if code == UNIMPLEMENTED and "maintenance mode" not in message:
        return TalosApiError(node, "not implemented by this Talos version: %s" % message, code, via=via)
    if code == PERMISSION_DENIED:
        message += " (the client certificate's role, its O=, must be os:admin)"
    if code == UNAUTHENTICATED:
        message += " (the node did not accept the client certificate)"
    cls = ERRORS_BY_CODE.get(code, TalosApiError)
    return cls(node, message, code, via=via)


def raise_metadata_error(message, node, via):
    """apid through an endpoint answers OK and puts a node's failure in the message's metadata."""
    meta = message.get("metadata") or {}
    if meta.get("error"):
        status = meta.get("status") or {}
        raise error_for(meta.get("hostname") or node, status.get("code") or 2, meta["error"], via=via)


# ---------------------------------------------------------------- credentials and TLS contexts

class Credentials:
    """The OS CA and the admin client certificate and key, all PEM bytes."""

    def __init__(self, ca, crt, key):
        self.ca, self.crt, self.key = ca, crt, key

    @classmethod
    def from_talosconfig(cls, path, context=None):
        raw = files.read_secret(path)
        if raw is None:
            raise ValueError("talosconfig %s does not exist" % path)
        data = yaml.safe_load(raw) or {}
        name = context or data.get("context")
        contexts = data.get("contexts") or {}
        if name not in contexts:
            raise ValueError("talosconfig %s has no context %r (contexts: %s)" % (path, name, ", ".join(sorted(contexts)) or "none"))
        entry = contexts[name] or {}
        missing = [k for k in ("ca", "crt", "key") if not entry.get(k)]
        if missing:
            raise ValueError("talosconfig %s context %r lacks %s" % (path, name, ", ".join(missing)))
        try:
            ca, crt, key = (base64.b64decode(entry[k], validate=True) for k in ("ca", "crt", "key"))
        except ValueError:
            raise ValueError("talosconfig %s context %r: ca, crt and key must be base64 PEM" % (path, name))
        return cls(ca, crt, key)


def relabel_key(pem):
    """OpenSSL rejects Talos's `ED25519 PRIVATE KEY` label; the body already is PKCS#8."""
    if openssl_compatible_key_pem is not None:
        return openssl_compatible_key_pem(pem)
    return pem.replace(b"ED25519 PRIVATE KEY", b"PRIVATE KEY")


def _base_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    return context


def secure_context(credentials):
    context = _base_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cadata=credentials.ca.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError) as exc:
        raise ValueError("the talosconfig CA is not a PEM certificate: %s" % exc)
    # load_cert_chain reads files only: hand it 0600 temporary files and remove them at once.
    directory = tempfile.mkdtemp(prefix="netboot-talos-")
    try:
        paths = []
        for name, content in (("crt", credentials.crt), ("key", relabel_key(credentials.key))):
            path = os.path.join(directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            paths.append(path)
        try:
            context.load_cert_chain(*paths)
        except ssl.SSLError as exc:
            raise ValueError("the talosconfig client certificate or key is unusable: %s" % exc)
    finally:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)
    return context


def insecure_context():
    context = _base_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def spki_fingerprint(der_certificate):
    """base64(SHA-256(SubjectPublicKeyInfo)), the fingerprint a maintenance-mode console prints."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    public_key = x509.load_der_x509_certificate(der_certificate).public_key()
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


class DictCodec(CodecBase):
    """grpclib codec for the schemas in messages.py (plain dicts in, plain dicts out)."""

    __content_subtype__ = "proto"

    def encode(self, message, message_type):
        return message_type.encode(message or {})

    def decode(self, data, message_type):
        return message_type.decode(data)


# ---------------------------------------------------------------- calls

def split_endpoint(endpoint, default_port=API_PORT):
    """'10.0.0.2' or '10.0.0.2:50000' or '[fd00::2]:50000' -> (host, port)."""
    endpoint = str(endpoint)
    if endpoint.startswith("["):
        host, _unused, rest = endpoint[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if endpoint.count(":") == 1:
        host, port = endpoint.split(":")
        return host, int(port)
    return endpoint, default_port


def _tls_failure(node, exc, secure):
    text = str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        if secure:
            return TlsError(node, "the node's certificate is not issued by the talosconfig's OS CA (%s); "
                                  "is the node in maintenance mode or from another cluster?" % exc.verify_message)
        return TlsError(node, "certificate verification failed: %s" % exc.verify_message)
    if not secure and "certificate required" in text.lower():
        return ClientCertificateRequired(node, "the node requires a client certificate: it is configured, not in maintenance mode")
    if "unknown ca" in text.lower() or "certificate required" in text.lower() or "bad certificate" in text.lower():
        return TlsError(node, "the node rejected the client certificate (not issued by its OS CA?): %s" % text)
    return TlsError(node, "TLS handshake failed: %s" % text)


class Target:
    """How to reach one node: the endpoint to dial, the node to address through it, the TLS context."""

    def __init__(self, node, context, secure, endpoint=None, port=API_PORT, pin=None):
        self.node = str(node)
        self.host, self.port = split_endpoint(endpoint or node, port)
        self.context = context
        self.secure = secure
        self.pin = pin
        # Through another endpoint the apid there proxies to the node (one-to-many, wrapped errors).
        self.proxied = endpoint is not None and split_endpoint(endpoint, port)[0] != self.node
        self.via = "%s:%d" % (self.host, self.port) if self.proxied else None


@contextlib.asynccontextmanager
async def _open(target, method, timeout):
    """A started request stream for method (pin checked); maps every failure to a TalosApiError."""
    request_type, reply_type, streaming = m.METHODS[method]
    metadata = [("node" if method in m.NODE_METADATA_METHODS else "nodes", target.node)] if target.proxied else None
    node = target.node
    channel = Channel(target.host, target.port, ssl=target.context, codec=DictCodec())
    if method in m.CLIENT_STREAMING:
        cardinality = Cardinality.STREAM_UNARY
    else:
        cardinality = Cardinality.UNARY_STREAM if streaming else Cardinality.UNARY_UNARY
    try:
        async with channel.request(method, cardinality, request_type, reply_type, timeout=timeout, metadata=metadata) as stream:
            await asyncio.wait_for(stream.send_request(), CONNECT_TIMEOUT)
            if target.pin:
                ssl_object = stream.peer._transport.get_extra_info("ssl_object")
                seen = spki_fingerprint(ssl_object.getpeercert(binary_form=True))
                if seen != target.pin:
                    raise TlsError(node, "certificate fingerprint %s does not match the pinned %s" % (seen, target.pin))
            yield stream
    except GRPCError as exc:
        raise error_for(node, exc.status.value, exc.message or "")
    except ssl.SSLError as exc:
        raise _tls_failure(node, exc, target.secure)
    except (asyncio.TimeoutError, TimeoutError):
        raise Unavailable(node, "no answer from %s:%d within the timeout" % (target.host, target.port))
    except (ConnectionResetError, StreamTerminatedError, BrokenPipeError) as exc:
        if target.secure:
            raise TlsError(node, "connection closed during the call; the node probably rejected the client "
                                 "certificate (not issued by its OS CA?): %s" % (exc or type(exc).__name__))
        raise ClientCertificateRequired(node, "the node closed a connection without client certificate: it is "
                                              "configured, not in maintenance mode")
    except OSError as exc:
        raise Unavailable(node, "cannot connect to %s:%d: %s" % (target.host, target.port, exc.strerror or exc))
    finally:
        channel.close()


async def call(target, method, request=None, timeout=30.0):
    """One RPC; returns the reply messages (a list). Raises a TalosApiError subclass."""
    async with _open(target, method, timeout) as stream:
        await stream.send_message(request or {}, end=True)
        replies = [reply async for reply in stream]
    if m.METHODS[method][2]:
        return replies
    messages = replies[0]["messages"] if replies else []
    for message in messages:
        raise_metadata_error(message, target.node, target.via)
    return messages


def run(coroutine):
    """Run one coroutine to completion from synchronous module code."""
    return asyncio.run(coroutine)


# ---------------------------------------------------------------- operations

async def version(target, timeout=10.0):
    messages = await call(target, m.MACHINE + "Version", timeout=timeout)
    info = (messages[0].get("version") or {}) if messages else {}
    platform = (messages[0].get("platform") or {}) if messages else {}
    return {"tag": info.get("tag", ""), "sha": info.get("sha", ""), "arch": info.get("arch", ""),
            "platform": platform.get("name", ""), "mode": platform.get("mode", "")}


async def bootstrap(target, timeout=30.0, recover_etcd=False, recover_skip_hash_check=False):
    request = {"recover_etcd": recover_etcd, "recover_skip_hash_check": recover_skip_hash_check}
    await call(target, m.MACHINE + "Bootstrap", request, timeout=timeout)


async def etcd_member_names(target):
    """The etcd member names, or None when they cannot be read (etcd not running yet)."""
    try:
        return [member["hostname"] for member in await etcd_members(target)]
    except (FailedPrecondition, Unavailable):
        return None
    except TalosApiError as exc:
        if isinstance(exc, (TlsError, PermissionDenied, MaintenanceMode)):
            raise
        return None


async def bootstrap_once(target, timeout, interval=2.0, check=False):
    """Bootstrap etcd unless it has members, retrying while the node is not ready: (changed, reason, attempts)."""
    members = await etcd_member_names(target)
    if members:
        return False, "etcd already has members (%s)" % ", ".join(members), 0
    if check:
        return True, "etcd has no members yet; would bootstrap", 0
    try:
        _response, attempts = await retry(lambda: bootstrap(target), timeout, interval)
    except AlreadyExists as exc:
        return False, "already bootstrapped: %s" % exc.detail, 1
    return True, "bootstrapped", attempts


async def kubeconfig(target, timeout=60.0):
    """The admin kubeconfig (bytes) from the tar.gz stream of a control-plane node."""
    chunks = []
    for data in await call(target, m.MACHINE + "Kubeconfig", timeout=timeout):
        raise_metadata_error(data, target.node, target.via)
        chunks.append(data["bytes"])
    return extract_kubeconfig(target.node, b"".join(chunks))


def extract_kubeconfig(node, archive):
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive)), mode="r:") as tar:
            for member in tar:
                if member.isfile() and member.name.lstrip("./") == "kubeconfig":
                    return tar.extractfile(member).read()
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise TalosApiError(node, "the Kubeconfig stream is not a tar.gz archive: %s" % exc)
    raise TalosApiError(node, "the Kubeconfig archive holds no file named kubeconfig")


async def apply_configuration(target, data, mode="auto", dry_run=False, timeout=60.0):
    request = {"data": data, "mode": m.APPLY_MODES[mode], "dry_run": dry_run}
    messages = await call(target, m.MACHINE + "ApplyConfiguration", request, timeout=timeout)
    message = messages[0] if messages else {"warnings": [], "mode": 0, "mode_details": ""}
    names = {number: name for name, number in m.APPLY_MODES.items()}
    return {"warnings": message["warnings"], "mode": names.get(message["mode"], str(message["mode"])),
            "mode_details": message["mode_details"]}


async def reset(target, graceful=True, reboot=True, wipe=("STATE", "EPHEMERAL"), timeout=60.0):
    request = {"graceful": graceful, "reboot": reboot,
               "system_partitions_to_wipe": [{"label": label, "wipe": True} for label in wipe]}
    await call(target, m.MACHINE + "Reset", request, timeout=timeout)


async def service_list(target, timeout=10.0):
    messages = await call(target, m.MACHINE + "ServiceList", timeout=timeout)
    return [{"id": s["id"], "state": s["state"], "healthy": bool((s.get("health") or {}).get("healthy")),
             "message": (s.get("health") or {}).get("last_message") or ""} for message in messages for s in message["services"]]


async def etcd_members(target, timeout=10.0):
    messages = await call(target, m.MACHINE + "EtcdMemberList", {"query_local": False}, timeout=timeout)
    return [{"id": member["id"], "hostname": member["hostname"], "peer_urls": member["peer_urls"],
             "is_learner": member["is_learner"]} for message in messages for member in message["members"]]


async def etcd_status(target, timeout=10.0):
    """The node's own etcd member: {member_id, leader, errors, is_learner, raft_index}."""
    messages = await call(target, m.MACHINE + "EtcdStatus", timeout=timeout)
    status = (messages[0].get("member_status") or {}) if messages else {}
    return {"member_id": status.get("member_id", 0), "leader": status.get("leader", 0), "errors": list(status.get("errors") or []),
            "is_learner": bool(status.get("is_learner")), "raft_index": status.get("raft_index", 0)}


async def disks(target, timeout=10.0):
    messages = await call(target, "/storage.StorageService/Disks", timeout=timeout)
    return [{"device_name": d["device_name"], "size": d["size"], "model": d["model"], "system_disk": d["system_disk"]}
            for message in messages for d in message["disks"]]


# ---------------------------------------------------------------- backup: etcd snapshot and recovery

RECOVER_CHUNK = 4096  # what talosctl sends per message


async def etcd_snapshot(target, path, verify=None, timeout=300.0):
    """Stream the node's etcd snapshot into path, atomically: a 0600 temporary file beside it,
    fsynced, renamed only when the stream ended well, is not empty and verify(temp path) (may raise
    ValueError) accepts it; anything else leaves no file. Returns the size in bytes."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part", dir=directory)
    try:
        size = 0
        with os.fdopen(fd, "wb") as handle:
            async with _open(target, m.MACHINE + "EtcdSnapshot", timeout) as stream:
                await stream.send_message({}, end=True)
                async for data in stream:
                    raise_metadata_error(data, target.node, target.via)
                    handle.write(data["bytes"])
                    size += len(data["bytes"])
            handle.flush()
            os.fsync(handle.fileno())
        if not size:
            raise TalosApiError(target.node, "the etcd snapshot stream was empty: nothing saved")
        if verify is not None:
            try:
                verify(temporary)
            except ValueError as exc:
                raise TalosApiError(target.node, "the etcd snapshot is not usable, not saved: %s" % exc)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
        temporary = None
        return size
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


async def etcd_recover(target, path, timeout=300.0):
    """Upload the snapshot file at path (EtcdRecover, a client stream of common.Data chunks)."""
    async with _open(target, m.MACHINE + "EtcdRecover", timeout) as stream:
        data = files.read_secret(path) or b""  # a vault-encrypted backup is sent in clear, over mTLS
        chunks = [data[i:i + RECOVER_CHUNK] for i in range(0, len(data), RECOVER_CHUNK)]
        if not chunks:
            await stream.end()
        for index, chunk in enumerate(chunks):
            await stream.send_message({"bytes": chunk}, end=index == len(chunks) - 1)
        reply = await stream.recv_message()
    for message in (reply or {}).get("messages") or []:
        raise_metadata_error(message, target.node, target.via)


# ---------------------------------------------------------------- node removal

NOT_FOUND = 5


async def etcd_leave_cluster(target, timeout=60.0):
    """The node's own etcd member leaves the cluster (etcd stops, its data is removed)."""
    await call(target, m.MACHINE + "EtcdLeaveCluster", {}, timeout=timeout)


async def etcd_remove_member(target, member_id, timeout=30.0):
    """Remove another (dead) node's etcd member through a healthy control plane."""
    await call(target, m.MACHINE + "EtcdRemoveMemberByID", {"member_id": member_id}, timeout=timeout)
# ---------------------------------------------------------------- upgrade (talos-day2.md §2)

UPGRADE_ACK = "Upgrade request received"
# talosctl --namespace system: the installer image goes to the system namespace of the CRI containerd.
SYSTEM_CONTAINERD = {"driver": m.CONTAINER_DRIVERS["cri"], "namespace": m.CONTAINERD_NAMESPACES["system"]}
EXTENSIONS = ("runtime", "ExtensionStatuses.runtime.talos.dev")


async def upgrade_legacy(target, image, force=False, timeout=600.0):
    """MachineService/Upgrade: the node pulls and checks the installer during the call, then upgrades and reboots.
    Returns the actor id."""
    messages = await call(target, m.MACHINE + "Upgrade", {"image": image, "force": force}, timeout=timeout)
    return messages[0]["actor_id"] if messages else ""


async def image_pull(target, image, timeout=600.0):
    """ImageService/Pull into the system containerd namespace; returns the pulled image's name."""
    replies = await call(target, "/machine.ImageService/Pull", {"containerd": SYSTEM_CONTAINERD, "image_ref": image},
                         timeout=timeout)
    names = [reply["name"] for reply in replies if reply.get("name")]
    return names[-1] if names else image


async def lifecycle_upgrade(target, image, timeout=600.0):
    """LifecycleService/Upgrade: writes the (pulled) installer to the system disk, no reboot.
    Returns the installer's output lines; a non-zero exit code raises TalosApiError with them."""
    replies = await call(target, "/machine.LifecycleService/Upgrade",
                         {"containerd": SYSTEM_CONTAINERD, "source": {"image_name": image}}, timeout=timeout)
    progress = [reply.get("progress") or {} for reply in replies]
    lines = [p["message"] for p in progress if p.get("message")]
    codes = [p["exit_code"] for p in progress if p.get("exit_code") is not None]
    if not codes:
        raise TalosApiError(target.node, "the upgrade stream ended without an exit code: %s" % " / ".join(lines[-3:]))
    if codes[-1] != 0:
        raise TalosApiError(target.node, "upgrade failed with exit code %d: %s" % (codes[-1], " / ".join(lines[-3:])))
    return lines


async def reboot(target, mode="default", timeout=30.0):
    messages = await call(target, m.MACHINE + "Reboot", {"mode": m.REBOOT_MODES[mode]}, timeout=timeout)
    return messages[0]["actor_id"] if messages else ""


async def list_resources(target, namespace, resource_type, timeout=10.0):
    """COSI State/List: [{"metadata": {...}, "spec": parsed yaml_spec}] of one node."""
    replies = await call(target, "/cosi.resource.State/List", {"namespace": namespace, "type": resource_type}, timeout=timeout)
    resources = []
    for reply in replies:
        resource = reply.get("resource")
        if resource:
            spec = (resource.get("spec") or {}).get("yaml_spec") or ""
            resources.append({"metadata": resource.get("metadata") or {}, "spec": yaml.safe_load(spec) if spec else None})
    return resources


# The Kubernetes objects Talos renders for its cluster (kube-proxy, CoreDNS, CNI, bootstrap RBAC): one
# resource per manifest, its spec the list of objects (ManifestSpec.MarshalYAML).
MANIFESTS = ("controlplane", "Manifests.kubernetes.talos.dev")


async def bootstrap_manifests(target, timeout=10.0):
    """Every object of a control plane's Manifests resources, in resource id order (as upgrade-k8s reads them)."""
    resources = sorted(await list_resources(target, *MANIFESTS, timeout=timeout), key=lambda r: r["metadata"].get("id", ""))
    return [item for resource in resources for item in (resource["spec"] or []) if isinstance(item, dict)]


async def schematic(target, timeout=10.0):
    """The Image Factory schematic the node booted (its `schematic` extension's version), or None."""
    for resource in await list_resources(target, *EXTENSIONS, timeout=timeout):
        metadata = (resource["spec"] or {}).get("metadata") or {}
        if metadata.get("name") == "schematic":
            return metadata.get("version")
    return None


# ---------------------------------------------------------------- stages

DOWN, MAINTENANCE, UP, ERROR = "down", "maintenance", "up", "error"
ERROR_REPEATS = 3
STAGE_TEXT = {DOWN: "no answer", MAINTENANCE: "maintenance mode (no config yet)", UP: "configured and up"}


class Connector:
    """Builds secure and maintenance targets for nodes of one cluster."""

    def __init__(self, credentials=None, port=API_PORT, endpoint=None, pin=None):
        self.port = port
        self.endpoint = endpoint
        self.pin = pin
        self._secure = secure_context(credentials) if credentials else None
        self._insecure = insecure_context()

    def secure(self, node):
        if self._secure is None:
            raise ValueError("a talosconfig is needed to talk to node %s outside maintenance mode" % node)
        return Target(node, self._secure, True, endpoint=self.endpoint, port=self.port)

    def maintenance(self, node, pin=None):
        # Maintenance mode is always dialled directly: there is no apid to proxy through.
        return Target(node, self._insecure, False, port=self.port, pin=pin or self.pin)


async def probe(connector, node, timeout=5.0):
    """(stage, detail, version): down, maintenance or up; version is the Talos tag when known.

    An error an endpoint's apid relayed for the node (reply metadata) is raised, not taken for
    "down": the endpoint answered, and its words say why the node did not. The node is still tried
    directly in maintenance mode first, as apid cannot reach a node without a config.
    """
    secure_error = None
    if connector._secure is not None:
        try:
            tag = (await version(connector.secure(node), timeout=timeout))["tag"]
            return UP, STAGE_TEXT[UP], tag
        except Unavailable as exc:
            if not exc.via:
                return DOWN, exc.detail, None
            secure_error = exc
        except TalosApiError as exc:
            secure_error = exc
    try:
        await disks(connector.maintenance(node), timeout=timeout)
        return MAINTENANCE, STAGE_TEXT[MAINTENANCE], None
    except Unavailable as exc:
        if secure_error is not None and secure_error.via:
            raise secure_error
        return DOWN, exc.detail, None
    except ClientCertificateRequired as exc:
        if secure_error is not None:
            raise secure_error  # configured, but it does not accept our credentials
        return UP, "configured (a talosconfig is needed to read its version)", None
    except TalosApiError as exc:
        raise secure_error or exc


def _new_entry():
    return {"stage": None, "detail": "", "version": None, "reached": False, "seconds": None, "reached_at": None,
            "history": [], "error": None}


async def _probe_until_settled(connector, node, interval, probe_timeout):
    """One probe's (stage, detail, version, final); a refusal is retried ERROR_REPEATS times, then final.

    A node rebooting between modes can fail one probe. An endpoint that cannot reach the node
    (a relayed Unavailable) counts at once but is not final: the node may still boot.
    """
    errors = 0
    while True:
        try:
            return (*await probe(connector, node, timeout=probe_timeout), False)
        except Unavailable as exc:
            return ERROR, str(exc), None, False
        except TalosApiError as exc:
            errors += 1
            if errors >= ERROR_REPEATS:
                return ERROR, str(exc), None, True
            await asyncio.sleep(interval)


async def wait_for_stage(connector, nodes, wanted, timeout, interval=0.5, probe_timeout=2.0,
                         on_change=None, on_tick=None, enough=None):
    """Poll all nodes concurrently until each reaches a stage in wanted or the timeout passes.

    Returns {node: {"stage", "detail", "reached", "seconds", "history": [[seconds, stage], ...]}}.
    A node that refuses us ERROR_REPEATS times in a row (wrong CA, permission) stops being polled.
    on_change(node, entry, previous_stage) is awaited at each stage change (previous None at first
    sight); a TalosApiError it raises ends that node's wait as an error, a true result ends it as
    reached. on_tick(seconds, results) runs about every second. enough: the nodes whose arrival
    ends the wait (default: all); the others are then left as last seen.
    """
    start = time.monotonic()
    results = {node: _new_entry() for node in nodes}

    def reached(entry):
        entry.update(reached=True, seconds=entry["history"][-1][0], reached_at=time.time())

    async def watch(node):
        entry = results[node]
        while True:
            stage, detail, tag, final = await _probe_until_settled(connector, node, interval, probe_timeout)
            previous = entry["stage"]
            if stage != previous:
                entry["history"].append([round(time.monotonic() - start, 2), stage])
            entry.update(stage=stage, detail=detail, version=tag, error=detail if stage == ERROR else None)
            if stage != previous and on_change is not None:
                try:
                    if await on_change(node, entry, previous):
                        return reached(entry)
                except TalosApiError as exc:
                    entry.update(stage=ERROR, detail=str(exc), error=str(exc))
                    entry["history"].append([round(time.monotonic() - start, 2), ERROR])
                    return None
            if stage in wanted:
                return reached(entry)
            remaining = timeout - (time.monotonic() - start)
            if final or remaining <= 0:
                return None
            await asyncio.sleep(min(interval, remaining))

    async def tick():
        while True:
            await asyncio.sleep(1.0)
            on_tick(round(time.monotonic() - start, 2), results)

    watchers = {node: asyncio.ensure_future(watch(node)) for node in nodes}
    tasks = list(watchers.values()) + ([asyncio.ensure_future(tick())] if on_tick is not None else [])
    try:
        await asyncio.gather(*(watchers[node] for node in (enough or nodes)))
    finally:
        for task in tasks:
            task.cancel()  # the nodes not needed any more, and the ticker
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def retry(operation, timeout, interval=2.0, retry_on=(FailedPrecondition, Unavailable)):
    """Call operation() until it stops raising one of retry_on or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            return await operation(), attempts
        except retry_on:
            if time.monotonic() + interval > deadline:
                raise
            await asyncio.sleep(interval)
