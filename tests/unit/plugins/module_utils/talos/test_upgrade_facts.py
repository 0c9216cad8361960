"""Per-version upgrade facts (versions.py) and the oneof presence the upgrade streams rely on (wire.py)."""

from __future__ import annotations

import pytest

from ansible_collections.netboot.talos.plugins.module_utils.talos import versions
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import messages as m


@pytest.mark.parametrize("running, target, words", [
    ("v1.11.5", "v1.12.1", None),
    ("v1.11.5", "v1.13.1", None),
    ("v1.12.3", "v1.12.3", None),
    ("v1.10.7", "v1.13.1", "host version v1.10.7 is too old to upgrade to Talos v1.13.1 (Talos 1.13 installs over 1.11.0"),
    ("v1.11.5", "v1.14.0", "host version v1.11.5 is too old to upgrade to Talos v1.14.0 (Talos 1.14 installs over 1.12.0"),
    ("v1.13.2", "v1.11.5", "host version v1.13.2 is too new to downgrade to Talos v1.11.5 (Talos 1.11 installs over 1.9.0 "
                           "up to, not including, 1.13.0"),
    ("v1.12.0-beta.1", "v1.14.0", None),
])
def test_upgrade_path(running, target, words):
    problem = versions.upgrade_path_problem(running, target)
    assert (problem is None) if words is None else problem.startswith(words), problem


def test_upgrade_path_to_an_unsupported_version_is_a_version_error():
    with pytest.raises(versions.VersionError, match="not supported"):
        versions.upgrade_path_problem("v1.11.5", "v1.8.3")


@pytest.mark.parametrize("running, lifecycle", [
    ("v1.11.5", False), ("v1.12.9", False), ("v1.13.0-alpha.2", False), ("v1.13.0-beta.0", True),
    ("v1.13.0", True), ("v1.14.0-rc.1", True), ("v2.0.0", False),
])
def test_lifecycle_api_from_1_13(running, lifecycle):
    assert versions.has_lifecycle_upgrade(running) is lifecycle


@pytest.mark.parametrize("progress, wire", [
    ({"exit_code": 0}, b"\n\x02\x10\x00"),  # 0 is sent: it is a oneof member
    ({"exit_code": 3}, b"\n\x02\x10\x03"),
    ({"message": "writing"}, b"\n\t\n\x07writing"),
])
def test_install_progress_oneof_keeps_presence(progress, wire):
    encoded = m.LifecycleServiceUpgradeResponse.encode({"progress": progress})
    assert encoded == wire
    decoded = m.LifecycleServiceUpgradeResponse.decode(encoded)["progress"]
    assert decoded == dict({"message": None, "exit_code": None}, **progress)
