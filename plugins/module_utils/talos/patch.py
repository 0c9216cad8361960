# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Talos config patches: strategic merge and RFC 6902, with Talos's rules, plus the checks a patch can break.

A patch is YAML/JSON text, a mapping (one strategic-merge document), a list of RFC 6902 operations
(`{op, path, ...}`) or a list of strategic-merge documents. Strategic merge matches documents by
apiVersion/kind/name (the v1alpha1 document is the one with `version:`), merges maps, appends lists
except Talos's replace and keyed paths, ignores zero scalars ("" and 0) but always applies booleans,
and honours `$patch: delete` on list items, map keys and whole non-v1alpha1 documents.
"""

from __future__ import annotations

import copy
import json
import re
from urllib.parse import urlsplit

import yaml

from ansible_collections.netboot.talos.plugins.module_utils.talos import yamlv3

MULTIDOC_JSON6902 = "JSON6902 patches are not supported for multi-document machine configuration"
DELETE = "$patch"

# Lists that a patch replaces instead of appending to.
REPLACE_PATHS = {("cluster", "network", "podSubnets"), ("cluster", "network", "serviceSubnets"), ("cluster", "apiServer", "auditPolicy")}
# Lists merged item by item, matched on these keys.
KEYED_PATHS = {
    ("machine", "network", "interfaces"): ("interface", "deviceSelector"),
    ("machine", "network", "interfaces", "*", "vlans"): ("vlanId",),
    ("cluster", "apiServer", "admissionControl"): ("name",),
    ("ExtensionServiceConfig", "configFiles"): ("mountPath",),
}


class PatchError(ValueError):
    """A patch that cannot be applied, or a config that Talos would reject."""


# ---------------------------------------------------------------------------------------------
# Loading


def _is_json_patch(value):
    return isinstance(value, list) and value and all(isinstance(op, dict) and "op" in op and "path" in op for op in value)


def load(patch):
    """('json6902', [ops]) or ('strategic', [documents]) for one patch in any accepted form."""
    if isinstance(patch, str):
        try:
            loaded = [document for document in yaml.safe_load_all(patch) if document is not None]
        except yaml.YAMLError as exc:
            raise PatchError("not valid YAML or JSON: %s" % str(exc).replace("\n", " ")) from None
        if len(loaded) == 1 and isinstance(loaded[0], list):
            patch = loaded[0]
        else:
            patch = loaded
    if isinstance(patch, dict):
        patch = [patch]
    if _is_json_patch(patch):
        return "json6902", patch
    if isinstance(patch, list) and patch and all(isinstance(document, dict) for document in patch):
        return "strategic", patch
    raise PatchError("a patch must be a mapping, strategic-merge documents or a list of RFC 6902 operations")


# ---------------------------------------------------------------------------------------------
# Strategic merge


def _identity(document):
    if "version" in document or ("apiVersion" not in document and "kind" not in document):
        return ("v1alpha1",)
    return (document.get("apiVersion"), document.get("kind"), document.get("name"))


def _is_zero(value):
    return value is None or (not isinstance(value, bool) and (value == "" or value == 0))


def _deleted(value):
    return isinstance(value, dict) and value.get(DELETE) == "delete"


def _matches(item, selector):
    return isinstance(item, dict) and all(item.get(key) == value for key, value in selector.items())


def _merge_list(left, right, path):
    keys = KEYED_PATHS.get(path) or KEYED_PATHS.get(tuple("*" if part.isdigit() else part for part in path))
    result = list(left)
    for item in right:
        if _deleted(item):
            selector = {key: value for key, value in item.items() if key != DELETE}
            first = next(iter(selector.items()), None)
            result = [kept for kept in result if not (first and _matches(kept, dict([first])))]
            continue
        if keys and isinstance(item, dict):
            key = next((key for key in keys if key in item), None)
            match = next((index for index, kept in enumerate(result) if key and isinstance(kept, dict) and kept.get(key) == item[key]), None)
            if match is not None:
                result[match] = merge(result[match], item, path + (str(match),))
                continue
        result.append(_without_directives(item))
    return result


def _without_directives(value):
    if isinstance(value, dict):
        return {key: _without_directives(item) for key, item in value.items() if key != DELETE and not _deleted(item)}
    if isinstance(value, list):
        return [_without_directives(item) for item in value if not _deleted(item)]
    return value


def merge(left, right, path=()):
    """right merged into left with Talos's rules; neither input is modified."""
    if isinstance(left, dict) and isinstance(right, dict):
        result = dict(left)
        for key, value in right.items():
            if key == DELETE:
                continue
            if _deleted(value):
                result.pop(key, None)
            elif key in result:
                if path + (key,) in REPLACE_PATHS:
                    result[key] = _without_directives(value)
                elif isinstance(value, bool) or not _is_zero(value):
                    result[key] = merge(result[key], value, path + (key,))
            elif isinstance(value, bool) or not _is_zero(value):
                result[key] = _without_directives(value)
        return result
    if isinstance(left, list) and isinstance(right, list):
        if path in REPLACE_PATHS:
            return _without_directives(right)
        return _merge_list(left, right, path)
    if left is not None and right is not None and isinstance(left, (dict, list)) != isinstance(right, (dict, list)):
        raise PatchError("%s: cannot merge %s into %s" % (".".join(path) or "document", type(right).__name__, type(left).__name__))
    if isinstance(right, bool) or not _is_zero(right):
        return copy.deepcopy(right)
    return left


def strategic_merge(documents, patch_documents):
    documents = list(documents)
    for patch in patch_documents:
        identity = _identity(patch)
        index = next((i for i, document in enumerate(documents) if _identity(document) == identity), None)
        if patch.get(DELETE) == "delete":
            if identity == ("v1alpha1",):
                raise PatchError("the v1alpha1 document cannot be deleted")
            if index is not None:
                del documents[index]
            continue
        if index is None:
            documents.append(_without_directives(patch))
        else:
            path = () if identity == ("v1alpha1",) else (identity[1],)
            documents[index] = merge(documents[index], patch, path)
    return documents


# ---------------------------------------------------------------------------------------------
# RFC 6902


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("JSON pointer %r must start with /" % path)
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _child(container, token, path, allow_end=False):
    if isinstance(container, dict):
        if token not in container:
            raise PatchError("path %s does not exist" % path)
        return container[token]
    if isinstance(container, list):
        index = _index(container, token, path, allow_end)
        return container[index]
    raise PatchError("path %s does not exist" % path)


def _index(container, token, path, allow_end):
    if token == "-" and allow_end:
        return len(container)
    if not re.match(r"(0|[1-9][0-9]*)\Z", token):
        raise PatchError("%r in %s is not a list index" % (token, path))
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchError("index %d in %s is out of range" % (index, path))
    return index


def _parent(document, path):
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("the whole document cannot be the target of this operation")
    node = document
    for token in tokens[:-1]:
        node = _child(node, token, path)
    return node, tokens[-1]


def _get(document, path):
    node = document
    for token in _pointer(path):
        node = _child(node, token, path)
    return node


def _add(document, path, value):
    parent, token = _parent(document, path)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, path, True), value)
    else:
        raise PatchError("path %s does not exist" % path)


def _remove(document, path):
    parent, token = _parent(document, path)
    value = _child(parent, token, path)
    if isinstance(parent, dict):
        del parent[token]
    else:
        del parent[_index(parent, token, path, False)]
    return value


def json_patch(document, operations):
    """RFC 6902 operations applied to a copy of document."""
    document = copy.deepcopy(document)
    for number, operation in enumerate(operations):
        op, path = operation.get("op"), operation.get("path")
        try:
            if not isinstance(path, str):
                raise PatchError("path must be a string")
            if op in ("add", "replace", "test") and "value" not in operation:
                raise PatchError("%s needs a value" % op)
            if op == "add":
                _add(document, path, copy.deepcopy(operation["value"]))
            elif op == "remove":
                _remove(document, path)
            elif op == "replace":
                _remove(document, path)
                _add(document, path, copy.deepcopy(operation["value"]))
            elif op in ("move", "copy"):
                source = operation.get("from")
                if not isinstance(source, str):
                    raise PatchError("%s needs from" % op)
                if op == "move" and (path + "/").startswith(source + "/") and path != source:
                    raise PatchError("cannot move %s into itself" % source)
                value = _remove(document, source) if op == "move" else copy.deepcopy(_get(document, source))
                _add(document, path, value)
            elif op == "test":
                if _get(document, path) != operation["value"]:
                    raise PatchError("test failed: %s is not %s" % (path, json.dumps(operation["value"])))
            else:
                raise PatchError("unknown op %r" % (op,))
        except PatchError as exc:
            raise PatchError("operation %d (%s %s): %s" % (number, op, path, exc)) from None
    return document


def apply(documents, patch):
    """One patch applied to the config documents; returns the new document list."""
    kind, content = load(patch)
    if kind == "json6902":
        if len(documents) != 1:
            raise PatchError(MULTIDOC_JSON6902)
        return [json_patch(documents[0], content)]
    return strategic_merge(documents, content)


# ---------------------------------------------------------------------------------------------
# Key order (Talos re-encodes a patched config in its struct order) and known keys


def _struct(order, **children):
    return ("struct", tuple(order.split()), children)


def _list(item):
    return ("list", item)


SORTED_MAP = ("map", None)
UNSTRUCTURED = ("unstructured",)

_ROUTE = _struct("network gateway source metric mtu")
_VIP = _struct("ip equinixMetal hcloud")
_DEVICE = _struct(
    "interface deviceSelector addresses cidr routes bond bridge bridgePort vlans mtu dhcp ignore dummy dhcpOptions wireguard vip",
    deviceSelector=_struct("busPath hardwareAddr permanentAddr pciID driver physical"),
    routes=_list(_ROUTE), vip=_VIP,
    vlans=_list(_struct("addresses cidr routes dhcp vlanId mtu vip dhcpOptions", routes=_list(_ROUTE), vip=_VIP)),
)
_MACHINE = _struct(
    "type token ca acceptedCAs certSANs controlPlane kubelet pods network disks install files env time sysctls sysfs "
    "registries systemDiskEncryption features udev logging kernel seccompProfiles baseRuntimeSpecOverrides nodeLabels "
    "nodeAnnotations nodeTaints",
    ca=_struct("crt key"),
    kubelet=_struct(
        "image clusterDNS extraArgs extraMounts extraConfig credentialProviderConfig defaultRuntimeSeccompProfileEnabled "
        "registerWithFQDN nodeIP skipNodeRegistration disableManifestsDirectory",
        extraArgs=SORTED_MAP, extraConfig=UNSTRUCTURED,
        extraMounts=_list(_struct("destination type source options uidMappings gidMappings")),
    ),
    network=_struct(
        "hostname interfaces nameservers searchDomains extraHostEntries kubespan disableSearchDomain",
        interfaces=_list(_DEVICE),
    ),
    install=_struct(
        "disk diskSelector extraKernelArgs image extensions bootloader wipe legacyBIOSSupport grubUseUKICmdline",
        diskSelector=_struct("size name model serial modalias uuid wwid type busPath"),
    ),
    sysctls=SORTED_MAP, sysfs=SORTED_MAP, env=SORTED_MAP, nodeLabels=SORTED_MAP, nodeAnnotations=SORTED_MAP,
    nodeTaints=SORTED_MAP,
    registries=_struct("mirrors config", mirrors=("map", _struct("endpoints overridePath skipFallback")), config=SORTED_MAP),
    features=_struct(
        "rbac stableHostname kubernetesTalosAPIAccess apidCheckExtKeyUsage diskQuotaSupport kubePrism hostDNS imageCache "
        "nodeAddressSortAlgorithm",
        kubePrism=_struct("enabled port"), hostDNS=_struct("enabled forwardKubeDNSToHost resolveMemberNames"),
    ),
)
_CLUSTER = _struct(
    "id secret controlPlane clusterName network token aescbcEncryptionSecret secretboxEncryptionSecret ca acceptedCAs "
    "aggregatorCA serviceAccount apiServer controllerManager proxy scheduler discovery etcd coreDNS externalCloudProvider "
    "extraManifests extraManifestHeaders inlineManifests adminKubeconfig allowSchedulingOnMasters allowSchedulingOnControlPlanes",
    controlPlane=_struct("endpoint localAPIServerPort"),
    network=_struct("cni dnsDomain podSubnets serviceSubnets", cni=_struct("name urls flannel")),
    ca=_struct("crt key"), aggregatorCA=_struct("crt key"), serviceAccount=_struct("key"),
    apiServer=_struct(
        "image extraArgs extraVolumes env certSANs disablePodSecurityPolicy admissionControl auditPolicy resources "
        "authorizationConfig",
        extraArgs=SORTED_MAP, auditPolicy=UNSTRUCTURED,
        admissionControl=_list(_struct("name configuration", configuration=UNSTRUCTURED)),
    ),
    controllerManager=_struct("image extraArgs extraVolumes env resources", extraArgs=SORTED_MAP),
    proxy=_struct("disabled image mode extraArgs", extraArgs=SORTED_MAP),
    scheduler=_struct("image extraArgs extraVolumes env resources config", extraArgs=SORTED_MAP, config=UNSTRUCTURED),
    discovery=_struct(
        "enabled registries",
        registries=_struct("kubernetes service", kubernetes=_struct("disabled"), service=_struct("disabled endpoint")),
    ),
    etcd=_struct("image ca extraArgs subnet advertisedSubnets listenSubnets", ca=_struct("crt key"), extraArgs=SORTED_MAP),
)
V1ALPHA1 = _struct("version debug persist machine cluster", machine=_MACHINE, cluster=_CLUSTER)
DOCUMENTS = {
    "KubeletConfig": _struct(
        "apiVersion kind image config extraArgs clusterDNS defaultRuntimeSeccompProfileEnabled",
        config=UNSTRUCTURED, extraArgs=SORTED_MAP,
    ),
}


def _reorder(value, schema):
    if schema is None:
        return value
    if schema[0] == "unstructured":
        if isinstance(value, dict):
            return yamlv3.sort_keys({key: _reorder(item, UNSTRUCTURED) for key, item in value.items()})
        if isinstance(value, list):
            return [_reorder(item, UNSTRUCTURED) for item in value]
        return value
    if schema[0] == "list":
        return [_reorder(item, schema[1]) for item in value] if isinstance(value, list) else value
    if not isinstance(value, dict):
        return value
    if schema[0] == "map":
        return yamlv3.sort_keys({key: _reorder(item, schema[1]) for key, item in value.items()})
    _, order, children = schema
    result = {key: _reorder(value[key], children.get(key)) for key in order if key in value}
    result.update((key, item) for key, item in value.items() if key not in result)
    return result


def reorder(document, contract=None):
    """A document with its keys in the order Talos encodes them (unknown keys keep their place last)."""
    if _identity(document) == ("v1alpha1",):
        return _reorder(document, V1ALPHA1)
    schema = DOCUMENTS.get(document.get("kind"))
    if schema:
        return _reorder(document, schema)
    head = {key: document[key] for key in ("apiVersion", "kind", "name") if key in document}
    head.update((key, value) for key, value in document.items() if key not in head)
    return head


def _unknown_keys(value, schema, path, problems):
    if schema is None or schema[0] in ("unstructured",):
        return
    if schema[0] == "list":
        for index, item in enumerate(value if isinstance(value, list) else []):
            _unknown_keys(item, schema[1], "%s[%d]" % (path, index), problems)
        return
    if not isinstance(value, dict):
        return
    if schema[0] == "map":
        for key, item in value.items():
            _unknown_keys(item, schema[1], "%s.%s" % (path, key), problems)
        return
    _, order, children = schema
    for key, item in value.items():
        if key not in order:
            problems.append("unknown field %s.%s" % (path, key) if path else "unknown field %s" % key)
        else:
            _unknown_keys(item, children.get(key), "%s.%s" % (path, key) if path else key, problems)


# ---------------------------------------------------------------------------------------------
# The checks Talos applies that a patch can break


def validate(documents, role, install_required=True):
    """Raise PatchError listing what Talos would reject in this config."""
    problems = []
    v1 = next((d for d in documents if _identity(d) == ("v1alpha1",)), None)
    if v1 is None:
        raise PatchError("the v1alpha1 document is missing")
    _unknown_keys(v1, V1ALPHA1, "", problems)
    if v1.get("persist") is False:
        problems.append("persist: false is not supported")
    machine = v1.get("machine") or {}
    cluster = v1.get("cluster") or {}
    if not machine:
        problems.append("machine is required")
    if machine.get("type") != role:
        problems.append("machine.type is %r, the node's role is %r" % (machine.get("type"), role))
    machine_ca = machine.get("ca") or {}
    if not machine_ca.get("crt") and not machine.get("acceptedCAs"):
        problems.append("machine.ca.crt is required")
    if role == "controlplane" and not machine_ca.get("key"):
        problems.append("machine.ca.key is required on a control plane")
    interfaces = ((machine.get("network") or {}).get("interfaces")) or []
    if role == "worker":
        if machine_ca.get("key"):
            problems.append("machine.ca.key must not be set on a worker")
        if (cluster.get("ca") or {}).get("key"):
            problems.append("cluster.ca.key must not be set on a worker")
        if cluster.get("etcd"):
            problems.append("cluster.etcd must not be set on a worker")
        if any(isinstance(i, dict) and i.get("vip") for i in interfaces) or any(d.get("kind") == "Layer2VIPConfig" for d in documents):
            problems.append("a VIP is not allowed on a worker")
    kube_cluster = next((d for d in documents if d.get("kind") == "KubeClusterConfig"), None)
    endpoint = (cluster.get("controlPlane") or {}).get("endpoint") or (kube_cluster or {}).get("endpoint")
    try:
        url = urlsplit(endpoint) if isinstance(endpoint, str) else None
    except ValueError:
        url = None
    if not url or not url.scheme or not url.hostname:
        problems.append("the cluster endpoint %r is not a valid URL" % (endpoint,))
    network = cluster.get("network") or {}
    cni = (network.get("cni") or {}).get("name")
    if cni is not None and cni not in ("flannel", "custom", "none"):
        problems.append("cluster.network.cni.name %r is not one of flannel, custom, none" % (cni,))
    domain = network.get("dnsDomain")
    if domain is not None and not re.match(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z", str(domain)):
        problems.append("cluster.network.dnsDomain %r is not a valid DNS name" % (domain,))
    if install_required:
        install = machine.get("install") or {}
        unattended = next((d for d in documents if d.get("kind") == "UnattendedInstallConfig"), None)
        selected = ((unattended or {}).get("provisioning") or {}).get("diskSelector") or {}
        if not (install.get("disk") or install.get("diskSelector") or selected.get("match")):
            problems.append("an install disk or disk selector is required")
        if unattended and machine.get("install"):
            problems.append("UnattendedInstallConfig config is incompatible with v1alpha1 config (.machine.install)")
    for document in documents:
        if document is not v1 and (not document.get("apiVersion") or not document.get("kind")):
            problems.append("a document without apiVersion and kind: %s" % ", ".join(sorted(document)))
    if problems:
        raise PatchError("; ".join(problems))
