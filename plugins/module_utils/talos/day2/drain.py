# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Day 2, cordon and drain a Kubernetes node from the client, as talosctl 1.13 does.

Cordon is a merge PATCH of spec.unschedulable on the node. Drain lists the node's pods, leaves
mirror (static) pods and DaemonSet-owned pods alone and evicts every other pod through the
policy/v1 Eviction subresource. A 429 (a PodDisruptionBudget forbids the disruption right now) is
retried every interval until timeout, then DrainError names the pod and the API server's message.
Last, it waits until each evicted pod is gone (404, or a pod of that name with a new uid).

kube is a kubernetes.KubeClient; its calls are synchronous and run in a thread.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
GRACE_SECONDS = 60


class DrainError(RuntimeError):
    """The drain cannot finish; str() names the node and the pods in the way."""


def node_path(name):
    return "/api/v1/nodes/%s" % urllib.parse.quote(name, safe="")


def cordon(kube, name):
    kube.merge_patch(node_path(name), {"spec": {"unschedulable": True}})


def uncordon(kube, name):
    # null removes the field, which is what kubectl uncordon's merge patch does (false is omitted).
    kube.merge_patch(node_path(name), {"spec": {"unschedulable": None}})


def pods_on(kube, name):
    selector = urllib.parse.quote("spec.nodeName=%s" % name, safe="")
    return kube.get("/api/v1/pods?fieldSelector=%s" % selector).get("items", [])


def stays(pod):
    """Why the pod is not evicted (mirror pod, DaemonSet pod) or None."""
    metadata = pod.get("metadata") or {}
    if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
        return "mirror pod"
    if any(owner.get("kind") == "DaemonSet" and owner.get("controller") for owner in metadata.get("ownerReferences") or []):
        return "DaemonSet pod"
    return None


def pod_key(pod):
    return "%s/%s" % (pod["metadata"].get("namespace", "default"), pod["metadata"]["name"])


def _pod_path(pod, tail=""):
    metadata = pod["metadata"]
    namespace = urllib.parse.quote(metadata.get("namespace", "default"), safe="")
    return "/api/v1/namespaces/%s/pods/%s%s" % (namespace, urllib.parse.quote(metadata["name"], safe=""), tail)


def evict(kube, pod):
    """(done, why not): done for 200/201 and 404 (already gone); (False, message) for 429."""
    metadata = pod["metadata"]
    body = {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": metadata["name"], "namespace": metadata.get("namespace", "default")},
            "deleteOptions": {"gracePeriodSeconds": GRACE_SECONDS}}
    status, reply = kube.call("POST", _pod_path(pod, "/eviction"), body)
    if status in (200, 201, 404):
        return True, None
    reply = reply if isinstance(reply, dict) else {}
    causes = [cause.get("message") for cause in (reply.get("details") or {}).get("causes") or [] if cause.get("message")]
    message = " ".join([reply.get("message") or ""] + ["(%s)" % cause for cause in causes]).strip()
    if status == 429:
        return False, message or "Too Many Requests"
    raise DrainError("evicting %s: HTTP %s: %s" % (pod_key(pod), status, message or reply))


def gone(kube, pod):
    status, reply = kube.call("GET", _pod_path(pod))
    if status in (404, 403):  # 403: NodeRestriction hides pods of other nodes, talosctl counts it as gone
        return True
    return status == 200 and (reply.get("metadata") or {}).get("uid") != pod["metadata"].get("uid")


async def drain(kube, name, timeout=300.0, interval=5.0):
    """Evict the node's pods (see the module docstring); returns the evicted pods as namespace/name."""
    deadline = time.monotonic() + timeout
    pods = [pod for pod in await asyncio.to_thread(pods_on, kube, name) if stays(pod) is None]
    pending, blocked = list(pods), {}
    while pending:
        for pod in list(pending):
            done, why = await asyncio.to_thread(evict, kube, pod)
            if done:
                pending.remove(pod)
                blocked.pop(pod_key(pod), None)
            else:
                blocked[pod_key(pod)] = why
        if not pending:
            break
        if time.monotonic() >= deadline:
            raise DrainError("draining %s: eviction still refused after %ss: %s" % (
                name, timeout, "; ".join("%s: %s" % item for item in sorted(blocked.items()))))
        await asyncio.sleep(interval)
    waiting = list(pods)
    while waiting:
        waiting = [pod for pod in waiting if not await asyncio.to_thread(gone, kube, pod)]
        if not waiting:
            break
        if time.monotonic() >= deadline:
            raise DrainError("draining %s: evicted pods still present after %ss: %s" % (
                name, timeout, ", ".join(pod_key(pod) for pod in waiting)))
        await asyncio.sleep(interval)
    return [pod_key(pod) for pod in pods]
