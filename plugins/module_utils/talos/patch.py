# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Talos config patches: strategic merge and RFC 6902, with Talos's rules, plus the checks a patch can break.

A patch is YAML/JSON text, a mapping (one strategic-merge document), a list of RFC 6902 operations
(`{op, path, ...}`) or a list of strategic-merge documents. As Talos's configpatcher does, each
strategic-merge document is split into its `$patch: delete` selectors, applied first (a delete of
something absent fails with `lookup failed`), and the rest, merged into the document of the same
apiVersion/kind/name (the v1alpha1 document is the one with `version:`) or appended. The merge
follows Talos's merge package over the Go types: maps merge, lists append unless replaced or keyed,
zero scalars leave a value alone except on pointer fields, booleans always apply (field_facts).
"""

from __future__ import annotations

import copy
import json
import re
from urllib.parse import urlsplit

from ansible_collections.netboot.talos.plugins.module_utils import libraries

try:
    import yaml
except ImportError as exc:  # reported by the modules: see libraries.py
    libraries.missing(exc)

from ansible_collections.netboot.talos.plugins.module_utils.talos import validation, yamlv3

MULTIDOC_JSON6902 = "JSON6902 patches are not supported for multi-document machine configuration"
DELETE = "$patch"


class PatchError(ValueError):
    """A patch that cannot be applied, or a config that Talos would reject."""


# ---------------------------------------------------------------------------------------------
# Loading


def _is_json_patch(value):
    return isinstance(value, list) and value and all(isinstance(op, dict) and "op" in op and "path" in op for op in value)


def _document_lines(text):
    """(line of the document, line of its content) for each document of a YAML stream, as Talos's decoder numbers them."""
    lines, start = [], None
    try:
        for event in yaml.parse(text):
            if isinstance(event, yaml.DocumentStartEvent):
                start = event.start_mark.line + 1
            elif start is not None:
                lines.append((start, event.start_mark.line + 1))
                start = None
    except yaml.YAMLError:
        return []
    return lines


def load(patch, contract=None):
    """('json6902', [ops]) or ('strategic', [PatchDocument]) for one patch in any accepted form."""
    lines = []
    if isinstance(patch, str):
        try:
            every = list(yaml.safe_load_all(patch))
        except yaml.YAMLError as exc:
            raise PatchError("not valid YAML or JSON: %s" % str(exc).replace("\n", " ")) from None
        loaded = [document for document in every if document is not None]
        if len(loaded) == 1 and isinstance(loaded[0], list):
            patch = loaded[0]
        else:
            lines = [line for line, document in zip(_document_lines(patch), every) if document is not None]
            patch = loaded
    if isinstance(patch, dict):
        patch = [patch]
    if _is_json_patch(patch):
        return "json6902", patch
    if not (isinstance(patch, list) and patch and all(isinstance(document, dict) for document in patch)):
        raise PatchError("a patch must be a mapping, strategic-merge documents or a list of RFC 6902 operations")
    documents = [_patch_document(document, lines[index][0] if index < len(lines) else None, index) for index, document in enumerate(patch)]
    if contract is not None and contract < (1, 14):
        _refuse_duplicates(documents, lines)
    return "strategic", documents


def _refuse_duplicates(documents, lines):
    # Before 1.14 a patch is loaded as a machine config, where a document may appear only once.
    seen = set()
    for index, (_unused, document) in enumerate(documents):
        if document is None:
            continue
        identity = (document.get("apiVersion") or "", document.get("kind") or "v1alpha1", document.get("name") or "")
        if identity in seen:
            where = " (line %d)" % lines[index][1] if index < len(lines) else ""
            raise PatchError("duplicate document %s is not allowed%s" % ("/".join(identity), where))
        seen.add(identity)


def _patch_document(document, line, index):
    """(delete selectors, what is left to merge or None) of one patch document, as Talos's decoder splits it."""
    document = copy.deepcopy(document)
    selectors = []
    try:
        if _collect_deletes(document, [], False, document, selectors) or _only_identity(document):
            document = None
    except PatchError as exc:
        where = "at line %d" % line if line else "in document %d" % (index + 1)
        raise PatchError("error processing patch delete statements %s: %s" % (where, exc)) from None
    return selectors, document


def _only_identity(document):
    return all(key in ("version", "kind", "name") and not isinstance(value, (dict, list)) for key, value in document.items())


def _collect_deletes(node, path, in_list, root, selectors):
    """Talos's walk over a patch document: each `$patch: delete` becomes a selector, its mapping is removed,
    and containers emptied by removals are removed too. True when node itself is to be removed."""
    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            if key == DELETE and value == "delete":
                if not in_list and any(part.startswith("[") for part in path):
                    raise PatchError("cannot delete an inner key in '%s'" % ".".join(path))
                selectors.append(_selector(path, root, node if in_list else None))
                return True
            if _collect_deletes(value, path + [str(key)], False, root, selectors):
                del node[key]
                if not node:
                    return True
    elif isinstance(node, list):
        index = 0
        while index < len(node):
            if _collect_deletes(node[index], path + ["[%d]" % index], True, root, selectors):
                del node[index]
                if not node:
                    return True
            else:
                index += 1
    return False


def _scalar_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)


def _selector(path, root, item):
    api_version, kind = _scalar_text(root.get("apiVersion")), _scalar_text(root.get("kind"))
    if not path:
        for field, value in (("apiVersion", api_version), ("kind", kind)):
            if not value:
                raise PatchError("missing %s in document for which $patch: delete is used" % field)
    if not kind and not api_version:
        kind = "v1alpha1"
    elif not (kind and api_version):
        raise PatchError("kind and apiVersion must be both set for path %s" % ".".join(path))
    selector = {"path": list(path), "apiVersion": api_version, "kind": kind, "name": _scalar_text(root.get("name")), "key": "", "value": ""}
    if item is not None:
        first = next(((key, value) for key, value in item.items() if not (key == DELETE and value == "delete")), None)
        if first is None:
            raise PatchError("no key:val found in sequence node for path " + ".".join(path))
        selector["key"], selector["value"] = str(first[0]), _scalar_text(first[1])
    return selector


# ---------------------------------------------------------------------------------------------
# Field facts: which paths Talos replaces, merges by key, treats as pointers or as argument maps


def _identity(document):
    if "version" in document or ("apiVersion" not in document and "kind" not in document):
        return ("v1alpha1",)
    return (document.get("apiVersion"), document.get("kind"), document.get("name"))


def _talos_id(document):
    """Talos's document id: apiVersion/kind[/name]; the v1alpha1 document is `/v1alpha1`."""
    if _identity(document) == ("v1alpha1",):
        return "/v1alpha1"
    return "/".join(str(part) for part in _identity(document) if part is not None)


def _selector_id(selector):
    parts = [selector["apiVersion"], selector["kind"]] + ([selector["name"]] if selector["name"] else [])
    return "/".join(parts)


_V1 = "v1alpha1"
_K8S_REPLACE_114 = {
    "KubeAuditPolicyConfig": {("configuration",)}, "KubeAuthenticationConfig": {("configuration",)},
    "KubeCredentialProviderConfig": {("configuration",)}, "KubeNetworkConfig": {("podSubnets",), ("serviceSubnets",)},
    "KubeStaticPodConfig": {("pod",)}, "CRIBaseRuntimeSpecConfig": {("overrides",)},
    "BGPInstanceConfig": {("advertise",), ("importRoutes",), ("neighbors",)},
}
_LINK_KINDS_112 = ("LinkConfig", "BondConfig", "BridgeConfig", "DummyLinkConfig", "VLANConfig", "WireguardConfig")
_LINK_KINDS_114 = _LINK_KINDS_112 + ("VethConfig", "VRFConfig")
_BOND_NUMBERS = ("miimon updelay downdelay arpInterval adActorSysPrio adUserPortKey resendIGMP minLinks lpInterval "
                 "packetsPerSlave numPeerNotif tlbLogicalLb allSlavesActive peerNotifDelay missedMax").split()
_ETHERNET_NUMBERS = [("rings", name) for name in "rx tx rx-mini rx-jumbo rx-buf-len cqe-size tx-push-buf-len".split()] + [
    ("channels", name) for name in "rx tx other combined".split()]
_V1_ARGS = {("machine", "kubelet", "extraArgs"), ("cluster", "apiServer", "extraArgs"), ("cluster", "controllerManager", "extraArgs"),
            ("cluster", "proxy", "extraArgs"), ("cluster", "scheduler", "extraArgs"), ("cluster", "etcd", "extraArgs")}


def _no_facts():
    return {"replace": set(), "keyed": {}, "pointer": set(), "args": set(), "replace_items": {}}


def field_facts(contract):
    """{kind: {"replace": paths, "keyed": {path: keys}, "pointer": paths, "args": paths, "replace_items": {path: key}}}.

    Paths are tuples of keys with "*" for any list item. "replace" fields are Talos's `merge:"replace"` ones;
    "keyed" lists merge an item into the one with the same key; "replace_items" lists replace it whole;
    "pointer" fields are Go pointers to numbers, where an explicit 0 in a patch overrides; "args" are the
    1.13+ extraArgs maps whose entries a patch replaces whole.
    """
    contract = contract or (1, 14)
    facts = {}

    def add(kind, sort, *paths):
        facts.setdefault(kind, _no_facts())[sort].update(paths)

    def key(kind, sort, path, keys):
        facts.setdefault(kind, _no_facts())[sort][path] = keys

    add(_V1, "replace", ("cluster", "network", "podSubnets"), ("cluster", "network", "serviceSubnets"), ("cluster", "apiServer", "auditPolicy"))
    key(_V1, "keyed", ("machine", "network", "interfaces"), ("interface", "deviceSelector"))
    key(_V1, "keyed", ("machine", "network", "interfaces", "*", "vlans"), ("vlanId",))
    key(_V1, "keyed", ("cluster", "apiServer", "admissionControl"), ("name",))
    key("ExtensionServiceConfig", "keyed", ("configFiles",), ("mountPath",))
    add(_V1, "pointer", ("machine", "network", "kubespan", "mtu"))
    add("NetworkRuleConfig", "replace", ("ingress",), ("portSelector", "ports"))
    if contract >= (1, 10):
        add("EthernetConfig", "pointer", *_ETHERNET_NUMBERS)
    if contract >= (1, 11):
        add("ZswapConfig", "pointer", ("maxPoolPercent",))
    if contract >= (1, 12):
        add("BondConfig", "pointer", *[(name,) for name in _BOND_NUMBERS])
        for kind in _LINK_KINDS_114 if contract >= (1, 14) else _LINK_KINDS_112:
            add(kind, "pointer", ("addresses", "*", "routePriority"))
    if contract >= (1, 13):
        add(_V1, "args", *_V1_ARGS)
        add("KubeSpanConfig", "pointer", ("mtu",))
        key("ImageVerificationConfig", "replace_items", ("rules",), "image")
    if contract >= (1, 14):
        for kind, paths in _K8S_REPLACE_114.items():
            add(kind, "replace", *paths)
        for kind in ("KubeAPIServerConfig", "KubeControllerManagerConfig", "KubeletConfig", "KubeProxyConfig", "KubeSchedulerConfig"):
            add(kind, "args", ("extraArgs",))
        add("LVMLogicalVolumeConfig", "pointer", ("mirrors",), ("stripes",))
        add("ContainerConfig", "pointer", ("runAs", "uid"), ("runAs", "gid"))
    return facts


def _generic(path):
    return tuple("*" if part.isdigit() else part for part in path)


# ---------------------------------------------------------------------------------------------
# Strategic merge (Talos's merge package over the documents' fields)


def _is_zero(value):
    return value is None or (not isinstance(value, bool) and (value == "" or value == 0))


_GO_TYPES = {str: "string", bool: "bool", int: "int", float: "float64", dict: "map[string]interface {}", list: "[]interface {}"}


class _Merger:
    """Merges one document into another with Talos's rules for its kind and contract."""

    def __init__(self, kind, schema, facts):
        self.schema = schema
        self.facts = facts.get(kind) or _no_facts()

    def merge(self, left, right, path=(), schema=None):
        generic = _generic(path)
        if right is None:
            return left
        if generic in self.facts["replace"]:
            return copy.deepcopy(right)
        if generic in self.facts["args"] and isinstance(left, dict) and isinstance(right, dict):
            return dict(left, **copy.deepcopy(right))
        if isinstance(left, dict) and isinstance(right, dict):
            return self._merge_map(left, right, path, schema)
        if isinstance(left, list) and isinstance(right, list):
            return self._merge_list(left, right, path, schema)
        if left is not None and isinstance(left, (dict, list)) != isinstance(right, (dict, list)):
            raise PatchError("%s: cannot merge %s into %s" % (".".join(path) or "document", type(right).__name__, type(left).__name__))
        if schema == UNSTRUCTURED and left is not None and _GO_TYPES.get(type(left)) != _GO_TYPES.get(type(right)):
            raise PatchError("%s: merge type mismatch left %s right %s" % (".".join(path), _GO_TYPES.get(type(left)), _GO_TYPES.get(type(right))))
        if isinstance(right, bool) or not _is_zero(right) or generic in self.facts["pointer"]:
            return copy.deepcopy(right)
        return left

    def _merge_map(self, left, right, path, schema):
        # Talos adds a new key of a Go map even with an empty value; a struct field left empty stays unset.
        is_map = schema is not None and schema[0] in ("map", "unstructured")
        result = dict(left)
        for key, value in right.items():
            child = _child_schema(schema, key)
            where = path + (key,)
            if key in result and result[key] is not None:
                result[key] = self.merge(result[key], value, where, child)
            elif value == {} and child is not None and child[0] == "map":
                continue  # an empty Go map field is encoded with omitempty: still unset
            elif value is not None and (is_map or isinstance(value, bool) or not _is_zero(value) or _generic(where) in self.facts["pointer"]):
                result[key] = copy.deepcopy(value)
        return result

    def _merge_list(self, left, right, path, schema):
        generic = _generic(path)
        item_schema = schema[1] if schema and schema[0] == "list" else (UNSTRUCTURED if schema == UNSTRUCTURED else None)
        keys = self.facts["keyed"].get(generic)
        replace_key = self.facts["replace_items"].get(generic)
        result = list(left)
        for item in right:
            if keys and isinstance(item, dict):
                key = next((key for key in keys if item.get(key) not in (None, "")), None)
                match = next((index for index, kept in enumerate(result) if key and isinstance(kept, dict) and kept.get(key) == item[key]), None)
                if match is not None:
                    result[match] = self.merge(result[match], item, path + (str(match),), item_schema)
                    continue
            if replace_key and isinstance(item, dict):
                same = [index for index, kept in enumerate(result) if isinstance(kept, dict) and kept.get(replace_key) == item.get(replace_key)]
                match = same[0] if same else None
                if match is not None:
                    result[match] = copy.deepcopy(item)
                    continue
            result.append(copy.deepcopy(item))
        return result


def _child_schema(schema, key):
    if schema is None:
        return None
    if schema[0] == "unstructured":
        return UNSTRUCTURED
    if schema[0] == "map":
        return schema[1]
    if schema[0] == "struct":
        return schema[2].get(key)
    return None


def _schema_of(document):
    if _identity(document) == ("v1alpha1",):
        return V1ALPHA1
    return DOCUMENTS.get(document.get("kind"))


def _trim_inline_manifests(document):
    # Talos decodes cluster.inlineManifests with leading tabs and newlines (not spaces) trimmed from contents.
    manifests = (document.get("cluster") or {}).get("inlineManifests") if isinstance(document.get("cluster"), dict) else None
    for manifest in manifests if isinstance(manifests, list) else []:
        if isinstance(manifest, dict) and isinstance(manifest.get("contents"), str):
            manifest["contents"] = manifest["contents"].lstrip("\t\n\v\f\r")
    return document


def strategic_merge(documents, patch_documents, contract=None):
    """Talos's StrategicMerge: per patch document, its deletes first, then the rest merged or appended."""
    documents = list(documents)
    facts = field_facts(contract)
    for selectors, patch in patch_documents:
        for selector in selectors:
            documents = _apply_selector(documents, selector, contract)
        if patch is None:
            continue
        if _identity(patch) == ("v1alpha1",):
            patch = _trim_inline_manifests(copy.deepcopy(patch))
        index = next((i for i, document in enumerate(documents) if _identity(document) == _identity(patch)), None)
        if index is None:
            documents.append(copy.deepcopy(patch))
        else:
            kind = _V1 if _identity(patch) == ("v1alpha1",) else patch.get("kind")
            schema = _schema_of(patch)
            documents[index] = _Merger(kind, schema, facts).merge(documents[index], patch, (), schema)
    return documents


# ---------------------------------------------------------------------------------------------
# $patch: delete selectors applied to a document (Talos's deleteForPath)

_LOOKUP_FAILED = "lookup failed"
# Struct fields held by value (not pointers): a delete may walk through them while they are unset.
_VALUE_STRUCTS = {("cluster", "discovery", "registries"), ("cluster", "discovery", "registries", "kubernetes"),
                  ("cluster", "discovery", "registries", "service")}


def _apply_selector(documents, selector, contract=None):
    index = next((i for i, document in enumerate(documents) if _talos_id(document) == _selector_id(selector)), None)
    if index is None and contract is not None and contract < (1, 14):
        # Talos before 1.14 keeps such a delete as a document of its own, which it then writes out empty.
        raise PatchError("patch delete: document '%s' is not in the config (Talos before 1.14 would write an empty document "
                         "in its place)" % _selector_id(selector))
    if index is None:
        return documents  # from 1.14 a delete of a document that is not there is skipped
    document = documents[index]
    path = ".".join(selector["path"])
    if not selector["path"]:
        if selector["kind"] == _V1 and not selector["apiVersion"]:
            raise PatchError("patch delete: path '' in document '/v1alpha1': can't delete the root of the legacy document")
        return documents[:index] + documents[index + 1:]
    document = copy.deepcopy(document)
    try:
        _delete_path(document, selector["path"], selector, _schema_of(document), ())
    except PatchError as exc:
        failure = "failed to delete path '%s': %s" % (path, exc)
        if selector["name"]:
            raise PatchError("named patch delete: document %s/%s: %s" % (selector["apiVersion"], selector["kind"], failure)) from None
        label = "%s/%s" % (selector["apiVersion"], selector["kind"])
        raise PatchError("patch delete: path '%s' in document '%s': %s" % (path, label, failure)) from None
    documents = list(documents)
    documents[index] = document
    return documents


def _delete_path(node, path, selector, schema, walked):
    search, rest = path[0], path[1:]
    if isinstance(node, list):
        _delete_from_list(node, search, rest, selector, schema)
        return
    if not isinstance(node, dict):
        raise PatchError(_LOOKUP_FAILED)
    known = schema is not None and schema[0] == "struct" and search in schema[1]
    child = _child_schema(schema, search)
    if search in node and node[search] is not None:
        if not rest:
            del node[search]
            return
        _delete_path(node[search], rest, selector, child, walked + (search,))
        if node[search] in ({}, []) and child and child[0] in ("map", "list"):
            del node[search]  # Talos encodes its maps and lists with omitempty: emptied, they are gone
        return
    if known and not rest:
        node.pop(search, None)  # an unset struct field: Talos zeroes it without complaint
        return
    if known and walked + (search,) in _VALUE_STRUCTS:
        _delete_path({}, rest, selector, child, walked + (search,))
        return
    raise PatchError(_LOOKUP_FAILED)


def _delete_from_list(items, search, rest, selector, schema):
    if rest:
        raise PatchError("searching for complex paths in slices is not supported")
    if not search:
        raise PatchError("searching for '' in a slice is not supported")
    if not search.startswith("["):
        raise PatchError("searching for non-integer keys in slices is not supported")
    if not (schema == UNSTRUCTURED or (schema and schema[0] == "list" and schema[1] in (SORTED_MAP, UNSTRUCTURED))):
        # Talos compares the field as a Go string: only string fields can select a list item.
        for index, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get(selector["key"]), str) and item[selector["key"]] == selector["value"]:
                del items[index]
                return
    raise PatchError(_LOOKUP_FAILED)


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


def apply(documents, patch, contract=None):
    """One patch applied to the config documents of a contract (newest if None); returns the new document list."""
    kind, content = load(patch, contract)
    if kind == "json6902":
        if len(documents) != 1:
            raise PatchError(MULTIDOC_JSON6902)
        return [json_patch(documents[0], content)]
    return strategic_merge(documents, content, contract)


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
    _unused, order, children = schema
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
    _unused, order, children = schema
    for key, item in value.items():
        if key not in order:
            problems.append("unknown field %s.%s" % (path, key) if path else "unknown field %s" % key)
        else:
            _unknown_keys(item, children.get(key), "%s.%s" % (path, key) if path else key, problems)


# ---------------------------------------------------------------------------------------------
# The checks Talos applies that a patch can break


def validate(documents, role, install_required=True, contract=None):
    """Raise PatchError listing what Talos would reject in this config (every document kind of the contract)."""
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
    for document in documents:
        if document is not v1 and (not document.get("apiVersion") or not document.get("kind")):
            problems.append("a document without apiVersion and kind: %s" % ", ".join(sorted(document)))
    problems.extend(validation.validate(documents, contract or max(validation.KINDS), v1))
    if problems:
        raise PatchError("; ".join(problems))
