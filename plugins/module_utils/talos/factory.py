# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Image Factory facts in one place: schematic IDs, asset URLs, installer images, kernel command lines.

Everything here is computed offline, exactly as Image Factory (siderolabs/image-factory) and the
Talos imager (siderolabs/talos pkg/imager) compute it, so no node ever needs the factory's API:

* A schematic ID is the sha256 of the schematic's canonical YAML: Go yaml ``Marshal`` of the
  ``Schematic`` struct (4-space indentation, struct field order, empty fields omitted,
  ``customization: {}`` always present).
* The PXE kernel command line is the imager's ``buildCmdline`` for the ``metal`` platform: platform
  and console arguments, the version's default arguments, then the schematic's extra kernel
  arguments with the imager's override rules (``console``/``talos.platform`` replace the default,
  ``-name`` removes an argument).

Standard library only: this file also runs on the boot server inside modules.
"""

from __future__ import annotations

import hashlib
import re

from ansible_collections.netboot.talos.plugins.module_utils.talos import versions, yamlv3

FACTORY_IMAGE_URL = "https://factory.talos.dev/image"
FACTORY_REGISTRY = "factory.talos.dev"
VANILLA_SCHEMATIC = versions.VANILLA_SCHEMATIC
ARCHES = ("amd64", "arm64")
SCHEMATIC_ID = re.compile(r"^[0-9a-f]{64}$")

# Console arguments of the metal platform for Talos 1.8 and newer (imager test vectors).
_CONSOLE_ARGS = {"amd64": ["console=tty0"], "arm64": ["console=ttyAMA0", "console=tty0"]}
# kernel.DefaultArgs(quirks) in the order the imager appends them, with the first and last
# Talos minor version (inclusive, None = open) that carries each argument.
_DEFAULT_ARGS = (
    ("init_on_alloc=1", None, None),
    ("slab_nomerge", None, None),
    ("pti=on", None, None),
    ("consoleblank=0", None, None),
    ("nvme_core.io_timeout=4294967295", None, None),
    ("printk.devkmsg=on", None, None),
    ("ima_template=ima-ng", None, (1, 10)),
    ("ima_appraise=fix", None, (1, 10)),
    ("ima_hash=sha512", None, (1, 10)),
    ("selinux=1", (1, 10), None),
    ("module.sig_enforce=1", (1, 12), None),
    ("proc_mem.force_override=never", (1, 13), None),
)
# Image Factory's default installer repository changes with 1.14 (talos.md §5.3).
_METAL_INSTALLER_SINCE = (1, 14)
# Customization fields we can marshal canonically, in the Go struct's field order.
_CUSTOMIZATION_FIELDS = ("extraKernelArgs", "meta", "systemExtensions")


class FactoryError(ValueError):
    """A value Image Factory would not accept, or one we cannot reproduce offline."""


def customization(extensions=(), extra_kernel_args=(), meta=()):
    """The ``customization`` mapping of a schematic from its usual parts (empty parts are left out)."""
    result = {}
    if extra_kernel_args:
        result["extraKernelArgs"] = list(extra_kernel_args)
    if meta:
        result["meta"] = [dict(item) for item in meta]
    if extensions:
        result["systemExtensions"] = {"officialExtensions": list(extensions)}
    return result


def canonical_schematic(customization_):
    """The YAML text whose sha256 is the schematic ID (Go yaml Marshal of the Schematic struct)."""
    if not isinstance(customization_, dict):
        raise FactoryError("customization must be a mapping, got %r" % (customization_,))
    unknown = sorted(set(customization_) - set(_CUSTOMIZATION_FIELDS))
    if unknown:
        raise FactoryError(
            "customization.%s cannot be turned into a schematic ID offline (supported: %s); "
            "create the schematic at Image Factory and give its ID instead" % (unknown[0], ", ".join(_CUSTOMIZATION_FIELDS))
        )
    ordered = {}
    args = _string_list(customization_.get("extraKernelArgs") or [], "customization.extraKernelArgs")
    if args:
        ordered["extraKernelArgs"] = args
    meta = customization_.get("meta") or []
    for index, item in enumerate(meta):
        field = "customization.meta[%d]" % index
        if not isinstance(item, dict) or set(item) != {"key", "value"}:
            raise FactoryError("%s must be a mapping with exactly key and value" % field)
        key = item["key"]
        if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key <= 255:
            raise FactoryError("%s.key must be an integer from 0 to 255, got %r" % (field, key))
        if not isinstance(item["value"], str):
            raise FactoryError("%s.value: %r is not a string" % (field, item["value"]))
    if meta:
        ordered["meta"] = [{"key": item["key"], "value": item["value"]} for item in meta]
    extensions = customization_.get("systemExtensions") or {}
    if not isinstance(extensions, dict) or set(extensions) - {"officialExtensions"}:
        raise FactoryError("customization.systemExtensions supports only officialExtensions")
    official = _string_list(extensions.get("officialExtensions") or [], "customization.systemExtensions.officialExtensions")
    if official:
        ordered["systemExtensions"] = {"officialExtensions": official}
    return yamlv3.dump({"customization": ordered})


def schematic_id(customization_):
    """Image Factory's ID of the schematic with this customization (offline, content-addressed)."""
    return hashlib.sha256(canonical_schematic(customization_).encode("utf-8")).hexdigest()


def check_schematic(value, field="schematic"):
    if not isinstance(value, str) or not SCHEMATIC_ID.match(value):
        raise FactoryError("%s: %r is not an Image Factory schematic ID (64 lower-case hex digits)" % (field, value))
    return value


def check_arch(value, field="arch"):
    if value not in ARCHES:
        raise FactoryError("%s: %r is not one of %s" % (field, value, ", ".join(ARCHES)))
    return value


def kernel_file(arch):
    return "kernel-%s" % check_arch(arch)


def initramfs_file(arch):
    return "initramfs-%s.xz" % check_arch(arch)


def asset_files(arch):
    """The two PXE boot files of one architecture, kernel first."""
    return [kernel_file(arch), initramfs_file(arch)]


def tag(version):
    """A supported Talos version as its release tag (``1.9.4`` -> ``v1.9.4``), the form every URL and path uses."""
    versions.contract(version)
    return versions.normalize(version)


def asset_url(schematic, version, name, base_url=FACTORY_IMAGE_URL):
    """URL of one boot asset at Image Factory (or a mirror with its layout <schematic>/<version>/<name>)."""
    check_schematic(schematic)
    return "%s/%s/%s/%s" % (base_url.rstrip("/"), schematic, tag(version), name)


def installer_image(version, schematic=VANILLA_SCHEMATIC):
    """Image Factory's installer image for this schematic and version (metal-installer from 1.14)."""
    check_schematic(schematic)
    repository = "metal-installer" if versions.contract(version) >= _METAL_INSTALLER_SINCE else "installer"
    return "%s/%s/%s:%s" % (FACTORY_REGISTRY, repository, schematic, tag(version))


def kernel_args(version, arch, extra=()):
    """Image Factory's PXE kernel command line (list of arguments) for a metal node.

    ``extra`` is applied as the imager applies a schematic's extraKernelArgs: ``console=`` and
    ``talos.platform=`` replace the defaults, ``-name`` removes every ``name`` argument and
    ``-name=value`` only that value, anything else is added (after the defaults).
    """
    contract = versions.contract(version)
    check_arch(arch)
    defaults = [arg for arg, first, last in _DEFAULT_ARGS if (first is None or contract >= first) and (last is None or contract <= last)]
    cmdline = _Cmdline(["talos.platform=metal"] + _CONSOLE_ARGS[arch] + defaults)
    cmdline.apply(_string_list(extra, "extra kernel arguments"), overwrite=("console", "talos.platform"))
    return cmdline.arguments()


class _Cmdline:
    """go-procfs Cmdline: parameters keep their first position, a repeated key collects its values."""

    def __init__(self, arguments):
        self.parameters = []
        for key, value in _parse(arguments):
            self._append(key, value)

    def _find(self, key):
        for parameter in self.parameters:
            if parameter[0] == key:
                return parameter
        return None

    def _append(self, key, value):
        parameter = self._find(key)
        if parameter is None:
            self.parameters.append([key, [value]])
        else:
            parameter[1].append(value)

    def apply(self, arguments, overwrite):
        grouped = _Cmdline(arguments).parameters
        for key, values in grouped:
            if len(key) > 1 and key.startswith("-"):
                target = self._find(key[1:])
                if target is not None:
                    if values[0] == "":
                        self.parameters.remove(target)
                    else:
                        target[1] = [v for v in target[1] if v not in values]
            elif key in overwrite and self._find(key) is not None:
                self._find(key)[1] = list(values)
            elif key in overwrite:
                self.parameters.append([key, list(values)])
            else:
                for value in values:
                    self._append(key, value)

    def arguments(self):
        return [key if value == "" else "%s=%s" % (key, value) for key, values in self.parameters for value in values]


def _parse(arguments):
    for argument in " ".join(arguments).split():
        key, _unused, value = argument.partition("=")
        yield key, value


def _string_list(value, field):
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise FactoryError("%s must be a list of strings, got %r" % (field, value))
    for item in value:
        if not isinstance(item, str) or not item:
            raise FactoryError("%s: %r is not a non-empty string" % (field, item))
    return list(value)
