"""The collection as people get it: the built tarball, installed into an empty collections path and
run by name from a directory outside the checkout, on an inventory made here.

Nothing of the checkout is reachable from these runs: no PYTHONPATH, no ansible.cfg (ANSIBLE_CONFIG
names an empty file), ANSIBLE_COLLECTIONS_PATH is the fresh install only, and the working directory
is a temporary one. The virtualenv's Python stands in for the user's controller (requirements.txt).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
PLAYBOOKS = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))

NODES = {
    "cp1": {"talos_mac": "52:54:00:09:00:10", "talos_ip": "10.9.0.10"},
    "w1": {"talos_mac": "52:54:00:09:00:20", "talos_ip": "10.9.0.20"},
}
BOOT_SERVER_IP = "10.9.0.2"
INVENTORY = """\
all:
  vars:
    talos_cluster_name: fresh
    talos_cluster_endpoint: https://10.9.0.10:6443
    talos_version: v1.11.5
    talos_network: 10.9.0.0/24
    talos_gateway: 10.9.0.1
    talos_nameservers: [10.9.0.1]
    talos_install_disk: /dev/sda
    talos_matchbox_url: http://{boot}:8080
  children:
    boot_server:
      hosts:
        boot: {{ansible_host: {boot}}}
    talos:
      children:
        controlplane:
          hosts:
            cp1: {{talos_mac: "{cp1[talos_mac]}", talos_ip: {cp1[talos_ip]}}}
        workers:
          hosts:
            w1: {{talos_mac: "{w1[talos_mac]}", talos_ip: {w1[talos_ip]}}}
""".format(boot=BOOT_SERVER_IP, **NODES)


class Installed:
    def __init__(self, root: Path):
        self.root = root
        self.collections = root / "collections"
        self.path = self.collections / "ansible_collections" / "netboot" / "talos"
        self.work = root / "work"
        self.config = root / "ansible.cfg"
        self.tarball = None

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
        env.update(
            ANSIBLE_CONFIG=str(self.config),
            ANSIBLE_COLLECTIONS_PATH=str(self.collections),
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCALHOST_WARNING="0",
            PATH="%s:%s" % (BIN, env.get("PATH", "")),
        )
        return env

    def run(self, *command, cwd=None):
        return subprocess.run(
            [str(BIN / command[0]), *command[1:]],
            cwd=str(cwd or self.work),
            env=self.env(),
            capture_output=True,
            check=False,
            text=True,
        )

    def playbook(self, name, *args):
        return self.run("ansible-playbook", "-i", "inventory/hosts.yml", "netboot.talos." + name, *args)

    def files(self):
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*"))


def recap(proc):
    """(changed, failed) summed over the play recap."""
    counts = [(int(m.group(3)), int(m.group(5))) for m in RECAP.finditer(proc.stdout)]
    assert counts, "no play recap:\n%s\n%s" % (proc.stdout, proc.stderr)
    return sum(c for c, _unused1 in counts), sum(f for _unused2, f in counts)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    box = Installed(tmp_path_factory.mktemp("installed"))
    box.config.write_text("")
    box.work.mkdir()
    (box.work / "inventory").mkdir()
    (box.work / "inventory" / "hosts.yml").write_text(INVENTORY)
    dist = box.root / "dist"
    built = box.run("ansible-galaxy", "collection", "build", "--output-path", str(dist), str(REPO), cwd=box.root)
    assert built.returncode == 0, built.stdout + built.stderr
    (box.tarball,) = dist.glob("netboot-talos-*.tar.gz")
    done = box.run("ansible-galaxy", "collection", "install", "--no-deps", "-p", str(box.collections), str(box.tarball), cwd=box.root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (box.path / "MANIFEST.json").is_file(), done.stdout + done.stderr
    return box


@pytest.mark.parametrize(
    "member, shipped",
    [
        ("playbooks/site.yml", True),
        ("playbooks/templates/dhcp_settings.txt.j2", True),
        ("roles/tftp/tasks/main.yml", True),
        ("plugins/modules/talos_inventory.py", True),
        ("meta/runtime.yml", True),
        ("inventory/example/hosts.yml", True),
        ("changelogs/changelog.yaml", True),
        ("README.md", True),
        ("LICENSE", True),
        ("tests/fixtures/standin/build.sh", False),
        ("tests/unit", False),
        ("molecule/boot_server/molecule.yml", False),
        ("inventory/lab/hosts.yml", False),
        ("Makefile", False),
        ("ansible.cfg", False),
        ("collections", False),
        ("requirements-test.txt", False),
    ],
)
def test_the_tarball_holds_the_collection_and_none_of_the_checkouts_tooling(installed, member, shipped):
    with tarfile.open(installed.tarball) as tar:
        names = tar.getnames()
    present = any(name == member or name.startswith(member + "/") for name in names)
    assert present == shipped, "%s %s the tarball" % (member, "missing from" if shipped else "found in")


def test_the_only_netboot_talos_is_the_installed_one(installed):
    listed = installed.run("ansible-galaxy", "collection", "list", "netboot.talos")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    paths = re.findall(r"^# (/\S+)$", listed.stdout, re.M)
    assert paths == [str(installed.collections / "ansible_collections")], listed.stdout


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_every_playbook_is_found_by_name(installed, name):
    checked = installed.playbook(name, "--syntax-check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert str(installed.path / "playbooks" / (name + ".yml")) in checked.stdout


def test_configs_and_dhcp_settings_run_from_the_installed_collection(installed):
    before = installed.files()
    first = installed.playbook("configs")
    assert first.returncode == 0, first.stdout + first.stderr
    cluster = installed.work / "clusters" / "fresh"
    for path in ["secrets.yaml", "talosconfig", "nodes/cp1.yaml", "nodes/w1.yaml"]:
        assert (cluster / path).stat().st_size > 0, path
    again = installed.playbook("configs")
    assert again.returncode == 0, again.stdout + again.stderr
    assert recap(again) == (0, 0), again.stdout

    settings = installed.playbook("dhcp_settings")
    assert settings.returncode == 0, settings.stdout + settings.stderr
    assert "http://%s:8080/boot.ipxe" % BOOT_SERVER_IP in settings.stdout
    for name, node in NODES.items():
        assert re.search(r"dhcp-host=%s,%s,%s\b" % (node["talos_mac"], node["talos_ip"], name), settings.stdout), settings.stdout
    assert installed.files() == before, "a run wrote into the installed collection"


@pytest.mark.parametrize("name", ["lab", "lab_down"])
def test_the_lab_says_it_needs_a_checkout_and_does_nothing(installed, name):
    before = installed.files()
    lab = installed.playbook(name)
    assert lab.returncode != 0
    assert "The virtual lab needs a checkout of netboot.talos" in lab.stdout, lab.stdout + lab.stderr
    assert recap(lab) == (0, 1), lab.stdout
    assert installed.files() == before
