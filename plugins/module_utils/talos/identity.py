# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""The fields of a rendered machine config that make a node part of its cluster, and patches that change them.

Every node of a cluster must carry the same cluster id and secret, CAs, tokens, encryption secret and
service-account key, all taken from the cluster's secrets bundle: a node whose patch changes one of
them renders a config Talos accepts but that cannot join the cluster. render() is config.render that
also refuses such patches, naming the patch. (A patch changing machine.type is refused by
patch.validate, which every render applies.)
"""

from __future__ import annotations

from ansible_collections.netboot.talos.plugins.module_utils.talos import config, yamlv3

# Where the identity lives in each kind of document; "[]" walks a list, "*" every value of a mapping.
# EXACT fields must stay as rendered; KEPT fields (path, name shown) may gain entries (an extra
# accepted CA, a new encryption key) but must keep every one the bundle put there.
EXACT = {
    config.V1: (
        "machine.token", "machine.ca.crt", "machine.ca.key",
        "cluster.id", "cluster.secret", "cluster.token",
        "cluster.secretboxEncryptionSecret", "cluster.aescbcEncryptionSecret",
        "cluster.ca.crt", "cluster.ca.key", "cluster.aggregatorCA.crt", "cluster.aggregatorCA.key",
        "cluster.serviceAccount.key", "cluster.etcd.ca.crt", "cluster.etcd.ca.key",
    ),
    "DiscoveryIdentityConfig": ("clusterID", "clusterSecret"),
    "KubeAPIServerCAConfig": ("issuingCA.cert", "issuingCA.key"),
    "KubeAggregatorCAConfig": ("issuingCA.cert", "issuingCA.key"),
    "KubeServiceAccountConfig": ("issuer.privateKey",),
}
KEPT = {
    "KubeAPIServerCAConfig": (("acceptedCAs[]", "acceptedCAs"),),
    "KubeEtcdEncryptionConfig": (("config.resources[].providers[].*.keys[].secret", "config (its encryption keys)"),),
}
MESSAGE = (
    "changes the cluster's identity (%s): these come from the cluster's secrets bundle and must be the same"
    " on every node, or the node cannot join its cluster; remove them from the patch"
)


def _kind(document):
    return config.V1 if "kind" not in document and document.get("version") == config.V1 else document.get("kind")


def _walk(value, steps):
    """Every value at the path steps below value."""
    if not steps:
        return [value]
    step, rest = steps[0], steps[1:]
    found = []
    if step.endswith("[]"):
        items = value.get(step[:-2]) if isinstance(value, dict) else None
        for item in items if isinstance(items, list) else []:
            found += _walk(item, rest)
    elif step == "*":
        for item in value.values() if isinstance(value, dict) else []:
            found += _walk(item, rest)
    elif isinstance(value, dict) and step in value:
        found += _walk(value[step], rest)
    return found


def _values(documents, kind, path):
    values = []
    for document in documents:
        if isinstance(document, dict) and _kind(document) == kind:
            values += _walk(document, path.split("."))
    return values


def _field(kind, name):
    return name if kind == config.V1 else "%s.%s" % (kind, name)


def changed_fields(before, after):
    """The identity fields (e.g. cluster.id, KubeAPIServerCAConfig.issuingCA.key) that differ from before to after."""
    fields = []
    for kind, paths in EXACT.items():
        fields += [_field(kind, path) for path in paths if _values(before, kind, path) != _values(after, kind, path)]
    for kind, paths in KEPT.items():
        for path, name in paths:
            kept = _values(after, kind, path)
            if not all(value in kept for value in _values(before, kind, path)):
                fields.append(_field(kind, name))
    return fields


def patch_problems(bundle, spec, patched, before):
    """`patches[<index>]: <message>` for each patch of spec that changes the cluster's identity.

    patched, before: the documents rendered from spec with and without its patches. Only a failing
    node is rendered again, once per patch, to tell which patch made each change.
    """
    if not changed_fields(before, patched):
        return []
    problems, blamed, patches = [], set(), spec["patches"]
    for count in range(1, len(patches) + 1):
        try:
            partial = patched if count == len(patches) else config.render_documents(bundle, dict(spec, patches=patches[:count]))
        except config.SpecError:
            continue  # a patch that only makes sense together with a later one
        fields = [field for field in changed_fields(before, partial) if field not in blamed]
        if fields:
            blamed.update(fields)
            problems.append("patches[%d]: %s" % (count - 1, MESSAGE % ", ".join(fields)))
    return problems


def render(bundle, spec):
    """config.render, refusing patches that change the cluster's identity (SpecError naming each patch)."""
    if not spec.get("patches"):
        return yamlv3.dump_all(config.render_documents(bundle, spec))
    documents, before = config.render_documents_and_unpatched(bundle, spec)
    problems = patch_problems(bundle, spec, documents, before)
    if problems:
        raise config.SpecError(["nodes[%s].%s" % (spec["name"], problem) for problem in problems])
    return yamlv3.dump_all(documents)
