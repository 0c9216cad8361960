"""End to end: QEMU machines network-boot through the boot server roles in the lab namespace.

Runs playbooks/lab.yml against inventory/lab (BIOS control plane, UEFI worker, and a stranger whose
MAC is in no host_vars), then checks the report it wrote against the inventory. The lab is torn
down by playbooks/lab_down.yml whatever happens; serial consoles are kept under tests/output/ when
a test fails. Needs root (namespaces, taps) and `make deps`.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory" / "lab"
LAB_DIR = REPO / ".lab"
OUTPUT = REPO / "tests" / "output" / "e2e"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the PXE lab needs root (network namespaces, taps)")


def playbook(name, *extra):
    env = dict(os.environ,
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               CONTAINERS_CONF=str(REPO / "tests" / "podman" / "containers.conf"),
               PYTHONPATH=str(REPO / "collections"))
    command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(INVENTORY),
               str(REPO / "playbooks" / name), *extra]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)


def inventory_nodes():
    """Every Talos node of the lab inventory: name -> (mac, firmware, machine type)."""
    hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())["all"]["children"]["talos"]["children"]
    nodes = {}
    for group, machine_type in (("controlplane", "controlplane"), ("workers", "worker")):
        for name in (hosts[group].get("hosts") or {}):
            host_vars = yaml.safe_load((INVENTORY / "host_vars" / ("%s.yml" % name)).read_text())
            nodes[name] = {"mac": host_vars["talos_mac"].lower(), "firmware": host_vars["lab_firmware"],
                           "machine_type": machine_type, "hostname": host_vars.get("talos_hostname", name)}
    return nodes


@pytest.fixture(scope="module")
def lab(request):
    started = time.monotonic()
    run = playbook("lab.yml", "-e", "lab_check=false")
    elapsed = time.monotonic() - started

    def tear_down():
        failed = request.session.testsfailed > 0 or run.returncode != 0
        if failed:
            OUTPUT.mkdir(parents=True, exist_ok=True)
            (OUTPUT / "lab.log").write_text(run.stdout + run.stderr)
            for serial in (LAB_DIR / "machines").glob("*/serial.log"):
                shutil.copy(serial, OUTPUT / ("%s.serial.log" % serial.parent.name))
            for log in (LAB_DIR / "logs").glob("*.log"):
                shutil.copy(log, OUTPUT / log.name)
        down = playbook("lab_down.yml")
        assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]

    request.addfinalizer(tear_down)
    assert run.returncode == 0, "playbooks/lab.yml failed:\n" + (run.stdout + run.stderr)[-6000:]
    reports = {report["name"]: report for report in json.loads((LAB_DIR / "report.json").read_text())["machines"]}
    print("\nlab play: %.0f s" % elapsed)
    for report in reports.values():
        print("%-13s %-4s %5.1f s  DHCP %d  TFTP %d  HTTP %d  (%s)" % (
            report["name"], report["firmware"], report["boot_seconds"], report["requests"]["dhcp"],
            report["requests"]["tftp"], report["requests"]["http"], report["ending"]))
    return reports


@pytest.mark.parametrize("name", sorted(inventory_nodes()))
def test_node_boots_and_fetches_exactly_its_own_config(lab, name):
    node = inventory_nodes()[name]
    report = lab[name]
    assert report["firmware"] == node["firmware"]
    assert report["ending"] == "power-off", "%s did not finish its boot: %s" % (name, report["serial_log"])
    assert report["lease"] is not None and report["os_lease"] == report["lease"]
    assert report["config"] is not None, "%s fetched no config (%s)" % (name, report["serial_log"])
    assert report["config"]["hostname"] == node["hostname"]
    assert report["config"]["machine_type"] == node["machine_type"]
    own_file = node["mac"].replace(":", "-") + ".yaml"
    assert report["config_requests"] and all(path.endswith("/" + own_file) for path in report["config_requests"])
    assert report["kernel"] and report["initrd"]


def test_uefi_machine_loads_ipxe_efi_over_tftp(lab):
    uefi = [name for name, node in inventory_nodes().items() if node["firmware"] == "uefi"]
    assert uefi, "the lab inventory needs a UEFI machine"
    for name in uefi:
        assert "ipxe.efi" in lab[name]["tftp_files"]


def test_machine_not_in_inventory_gets_no_config(lab):
    known = {node["mac"] for node in inventory_nodes().values()}
    strangers = [report for report in lab.values() if not report["expect_config"]]
    assert strangers, "the lab inventory needs a stranger (lab_strangers)"
    for report in strangers:
        assert report["mac"] not in known
        assert report["refused"], "matchbox did not answer 404 to %s's /ipxe" % report["name"]
        assert any(path.startswith("/ipxe?") for path in report["ipxe_scripts"])
        assert report["config"] is None and report["config_requests"] == []
        assert report["kernel"] is None
