"""Talos's published JSON schemas (../shared/talos-schema): validate rendered configs document by document."""

from __future__ import annotations

import json

import jsonschema


def load(shared_dir, version):
    """The schema of a Talos version like v1.11.5 (by its minor release)."""
    minor = ".".join(version.lstrip("v").split(".")[:2])
    return json.loads((shared_dir / "talos-schema" / ("v%s.schema.json" % minor)).read_text())


def known_gap(version, error):
    """README's known gaps only: `persist`, 1.12/1.13 machine.install.extraKernelArgs."""
    if error.validator != "additionalProperties":
        return False
    extra = set(error.instance) - set(error.schema.get("properties", {}))
    path = list(error.absolute_path)
    if path == [] and extra == {"persist"}:
        return True
    return version[:5] in ("v1.12", "v1.13") and path == ["machine", "install"] and extra == {"extraKernelArgs"}


def definition(schema, document):
    """The schema definition of one document kind (None for the 1.14 UnattendedInstallConfig gap)."""
    if "version" in document:
        return "v1alpha1.Config"
    for name, entry in schema["$defs"].items():
        if entry.get("properties", {}).get("kind", {}).get("enum") == [document["kind"]]:
            return name
    return None


def errors(schema, version, document):
    """(definition name, [(path, message)]) for one document, known gaps left out."""
    name = definition(schema, document)
    if name is None:
        return None, []
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/" + name, "$defs": schema["$defs"]})
    return name, [(list(e.absolute_path), e.message[:200]) for e in validator.iter_errors(document) if not known_gap(version, e)]
