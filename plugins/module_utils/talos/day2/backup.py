# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Day 2, etcd backups and restore (Talos's disaster-recovery procedure).

Backup: an etcd snapshot (MachineService/EtcdSnapshot) from the first healthy control plane is
streamed to <dir>/etcd-<UTC timestamp>.db (0600, atomically, refused when empty or not a
snapshot); the newest `keep` snapshots stay, older ones are removed.

Restore: only onto control planes that were reset or reprovisioned through PXE - each answers in
maintenance mode or runs its config with etcd not bootstrapped. A running etcd is never
overwritten. Maintenance-mode control planes get their rendered config first; then one control
plane receives the snapshot (EtcdRecover) and is bootstrapped from it (Bootstrap recover_etcd);
the others join it. Done when every etcd member is healthy and the node is Ready in Kubernetes.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import time

from ansible_collections.netboot.talos.plugins.module_utils import files, vault
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client
from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import rollout

# The nodes option of talos_etcd_backup and talos_etcd_restore: the cluster's control planes.
CONTROLPLANES = dict(type="list", elements="dict", required=True,
                     options=dict(name=dict(type="str", required=True), ip=dict(type="str", required=True)))
NAME = re.compile(r"^etcd-\d{8}T\d{6}Z\.db$")
BOLT_MAGIC = 0xED0CDAED  # bbolt's meta page: a 16-byte page header, then this magic (little endian)


def snapshot_name(now=None):
    return time.strftime("etcd-%Y%m%dT%H%M%SZ.db", time.gmtime(now))


def snapshot_problem(path, skip_hash_check=False):
    """None when path holds an etcd snapshot, else why not. etcd appends the SHA-256 of the bbolt
    database to a snapshot, so its size is 32 past a multiple of 512 (talosctl's own check)."""
    try:
        data = files.read_secret(path)  # the plaintext of a vault-encrypted backup
    except OSError as exc:
        return "%s: %s" % (path, exc.strerror or exc)
    if data is None:
        return "%s: No such file or directory" % path
    size, head = len(data), data[:24]
    if not size:
        return "%s is empty" % path
    if len(head) < 20 or struct.unpack_from("<I", head, 16)[0] != BOLT_MAGIC:
        return "%s is not an etcd snapshot (no bbolt database header)" % path
    if skip_hash_check:
        return None
    if size % 512 != 32:
        return "%s: sha256 checksum not found (size %d)" % (path, size)
    if hashlib.sha256(data[:-32]).digest() != data[-32:]:
        return "%s: the sha256 checksum at its end does not match its content (corrupt or cut)" % path
    return None


def verify(path):
    """client.etcd_snapshot's check of a downloaded snapshot."""
    problem = snapshot_problem(path)
    if problem:
        raise ValueError(problem)


def file_sha256(path):
    """The SHA-256 of the snapshot itself (the plaintext of a vault-encrypted backup)."""
    return hashlib.sha256(files.read_secret(path)).hexdigest()


def backups(directory):
    """The snapshot files in directory, oldest first (their names sort by time)."""
    try:
        return sorted(name for name in os.listdir(directory) if NAME.match(name))
    except FileNotFoundError:
        return []


def to_prune(directory, keep, adding=None):
    """The snapshot names beyond the newest keep (counting adding, the one about to be written)."""
    names = sorted(set(backups(directory)) | ({adding} if adding else set()))
    return [name for name in names[:max(len(names) - keep, 0)] if name != adding]


# ---------------------------------------------------------------- backup

async def healthy_controlplane(connector, controlplanes):
    """The first control plane whose etcd member has a leader and no errors; TalosApiError when none."""
    reasons = []
    for node in controlplanes:
        try:
            status = await client.etcd_status(connector.secure(node["ip"]), timeout=5.0)
        except client.TalosApiError as exc:
            reasons.append(str(exc))
            continue
        if status["errors"]:
            reasons.append("node %s: etcd reports %s" % (node["name"], "; ".join(status["errors"])))
        elif not status["leader"]:
            reasons.append("node %s: etcd has no leader" % node["name"])
        else:
            return node
    raise client.TalosApiError(", ".join(n["name"] for n in controlplanes),
                               "no control plane has a healthy etcd to take a snapshot from: " + "; ".join(reasons))


async def backup(connector, controlplanes, directory, keep, check=False, timeout=300.0):
    """Take one snapshot into directory and prune; returns what was (or, in check mode, would be) done."""
    node = await healthy_controlplane(connector, controlplanes)
    name = snapshot_name()
    if os.path.exists(os.path.join(directory, name)):  # a backup this very second already: take the next second's name
        time.sleep(1.0)
        name = snapshot_name()
    path = os.path.join(directory, name)
    result = {"node": node["name"], "path": path, "pruned": to_prune(directory, keep, adding=name)}
    if check:
        return result
    os.makedirs(directory, mode=0o700, exist_ok=True)
    result["size"] = await client.etcd_snapshot(connector.secure(node["ip"]), path, verify=verify, timeout=timeout)
    if vault.active() is not None:  # verified in clear in its 0600 download file; kept encrypted
        files.write_atomic(path, files.encode_secret(files.read_bytes(path)), 0o600)
    result["sha256"] = file_sha256(path)
    for old in result["pruned"]:
        os.unlink(os.path.join(directory, old))
    return result


# ---------------------------------------------------------------- restore

REFUSAL_HINT = ("restore.yml recovers only control planes that were reset (talosctl reset --graceful=false --reboot "
                "--system-labels-to-wipe EPHEMERAL) or reprovisioned through PXE; it never overwrites a running etcd")


async def controlplane_state(connector, node):
    """(stage, problem): maintenance, configured (etcd not bootstrapped) or a reason the restore must not run."""
    stage, detail, _version = await client.probe(connector, node["ip"], timeout=5.0)
    where = "%s (talos_ip %s)" % (node["name"], node["ip"])
    if stage == client.DOWN:
        return stage, "%s: no answer (%s); every control plane must be up for a restore" % (where, detail)
    if stage == client.MAINTENANCE:
        return stage, None
    target = connector.secure(node["ip"])
    services = {s["id"]: s for s in await client.service_list(target)}
    etcd = services.get("etcd")
    if etcd is None:
        return stage, "%s: runs no etcd service: is it a control plane?" % where
    members = await client.etcd_member_names(target)
    if members or etcd["state"] == "Running":
        listed = " (members: %s)" % ", ".join(members) if members else ""
        return stage, "%s: etcd is running%s; %s" % (where, listed, REFUSAL_HINT)
    return "configured", None


class Restore(rollout.Rollout):
    """The recovery of one control plane from a snapshot, as rollout stages (first failure stops)."""

    def __init__(self, connector, nodes, configs, snapshot, skip_hash_check=False, kubeconfig=None, timeout=600,
                 interval=1.0):
        super().__init__(connector, nodes, configs, kubeconfig=kubeconfig, reboot_timeout=timeout, etcd_timeout=timeout,
                         ready_timeout=timeout, interval=interval)
        self.snapshot, self.skip_hash_check, self.timeout = snapshot, skip_hash_check, timeout

    async def configure(self, node):
        """A maintenance-mode control plane gets its rendered config and comes up running it."""
        await client.apply_configuration(self.connector.maintenance(node["ip"]), self.configs[node["name"]], "auto")
        await self.wait_stage(node, client.UP)

    async def recover(self, node):
        target = self.connector.secure(node["ip"])
        await client.retry(lambda: client.etcd_recover(target, self.snapshot), self.timeout, self.interval,
                           retry_on=(client.FailedPrecondition, client.Unavailable))

    async def bootstrap(self, node):
        target = self.connector.secure(node["ip"])
        await client.retry(lambda: client.bootstrap(target, recover_etcd=True, recover_skip_hash_check=self.skip_hash_check),
                           self.timeout, self.interval)

    async def etcd_service_problems(self, node):
        """The etcd service's own failure (a restore that fails shows there, not as an RPC error), else the members' health."""
        for service in await client.service_list(self.connector.secure(node["ip"])):
            if service["id"] == "etcd" and service["state"] == "Failed":
                raise RuntimeError("the etcd service failed: %s" % (service.get("message") or "no message"))
        return await self.etcd_problems()

    def stages(self, entry):
        return [("snapshot uploaded (EtcdRecover)", lambda: self.recover(entry)),
                ("bootstrap recover_etcd", lambda: self.bootstrap(entry)),
                ("etcd healthy", lambda: self._until(lambda: self.etcd_service_problems(entry), self.timeout, "etcd not healthy")),
                ("kubernetes ready", lambda: self.wait_ready(entry))][:4 if self.kubeconfig else 3]

    async def run_restore(self, states):
        """Configure the maintenance-mode control planes, then recover the first one; returns its record."""
        for node in self.nodes:
            if states[node["name"]] == client.MAINTENANCE:
                try:
                    await self.configure(node)
                except (client.TalosApiError, TimeoutError) as exc:
                    raise rollout.StageError(node, "config applied", str(exc))
        return await self.converge(dict(self.nodes[0], action="recover"))
