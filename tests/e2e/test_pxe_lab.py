"""End to end: QEMU machines network-boot through the boot server roles in the lab namespace, are
"installed" as Talos node doubles, and playbooks/cluster.yml brings the cluster up to the node table.

Starts from a known state: playbooks/lab_down.yml first removes whatever an earlier `make lab` or
e2e run left (supervisor, QEMU, node doubles, kube-API double, dnsmasq, tftpd, the matchbox
container, the namespace), and the test checks nothing is left. Then runs playbooks/lab.yml against
inventory/lab (BIOS control plane, UEFI worker, and a stranger whose MAC is in no host_vars) with
http delivery, checks the report it wrote against the inventory, runs site.yml again (nothing
changes, no second Bootstrap), reprovisions the worker through PXE, then runs the lab a second time
in a row with api delivery (lab.yml tears its earlier run down itself). The lab is torn down by
playbooks/lab_down.yml whatever happens; serial consoles, the lab's logs and the node doubles' logs
and states are kept under tests/output/e2e/ when a test fails. Needs root (namespaces, taps) and
`make deps`. Timings are printed as the tests go.
"""

import hashlib
import json
import os
import re
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
CLUSTER_DIR = REPO / "clusters" / "lab"
OUTPUT = REPO / "tests" / "output" / "e2e"
NAMESPACE = "nbt-lab"
MATCHBOX_CONTAINER = "netboot-lab-matchbox"
ENV = dict(os.environ,
           ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
           CONTAINERS_CONF=str(REPO / "tests" / "podman" / "containers.conf"),
           PYTHONPATH=str(REPO / "collections"))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the PXE lab needs root (network namespaces, taps)")


def say(request, text):
    """Print now, whatever pytest captures (timings for the lead's notes)."""
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        request.config.pluginmanager.getplugin("terminalreporter").write_line(text)


def inventory_nodes():
    """Every Talos node of the lab inventory: name -> (mac, ip, firmware, machine type, hostname)."""
    hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())["all"]["children"]["talos"]["children"]
    nodes = {}
    for group, machine_type in (("controlplane", "controlplane"), ("workers", "worker")):
        for name in (hosts[group].get("hosts") or {}):
            host_vars = yaml.safe_load((INVENTORY / "host_vars" / ("%s.yml" % name)).read_text())
            nodes[name] = {"mac": host_vars["talos_mac"].lower(), "ip": host_vars["talos_ip"],
                           "firmware": host_vars["lab_firmware"], "machine_type": machine_type,
                           "hostname": host_vars.get("talos_hostname", name)}
    return nodes


def double_state(name):
    return json.loads((LAB_DIR / "nodes" / name / "state.json").read_text())


def served_record():
    """The controller's record of what each node was served and when it was seen running it."""
    return json.loads((CLUSTER_DIR / "served.json").read_text())


def recap(stdout):
    """PLAY RECAP lines: host -> {ok, changed, failed, ...}."""
    lines = stdout.split("PLAY RECAP", 1)[-1].splitlines()
    return {match.group(1): {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
            for match in (re.match(r"^(\S+)\s+:\s+(.*)$", line) for line in lines) if match}


def config_status(node):
    """HTTP status matchbox gives for the node's config URL, asked from inside the lab."""
    url = "http://10.250.50.1:8080/assets/talos/configs/%s.yaml" % node["mac"].replace(":", "-")
    answer = subprocess.run(["ip", "netns", "exec", NAMESPACE, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                             "--noproxy", "*", url], capture_output=True, text=True, check=False)
    return answer.stdout


def cluster_files():
    """Every file of the cluster dir: relative path (posix) -> bytes."""
    return {p.relative_to(CLUSTER_DIR).as_posix(): p.read_bytes() for p in sorted(CLUSTER_DIR.rglob("*")) if p.is_file()}


def table_rows(lines):
    """Rows of a `kubectl get nodes -o wide` table: name -> {column: value}."""
    header = lines[0].split()
    return {row.split()[0]: dict(zip(header, row.split())) for row in lines[1:] if row.strip()}


def printed_lines(stdout, task):
    """The plain lines a playbook task printed with netboot.talos.print_text (up to its ok: line)."""
    section = stdout.split("TASK [%s]" % task)[-1].split("\n", 1)[-1]
    return section.split("\nok: [", 1)[0].splitlines()


def printed_table(stdout, task):
    """The node table a playbook task printed: plain text (print_text), or a debug msg's JSON list."""
    match = re.search(r'"msg": (\[.*?\n    \])', stdout.split("TASK [%s]" % task)[-1].split("\nTASK [", 1)[0], re.S)
    lines = json.loads(match.group(1)) if match else printed_lines(stdout, task)
    header = next((index for index, line in enumerate(lines) if line.startswith("NAME ")), None)
    assert header is not None, "no node table printed by %r" % task
    return table_rows(lines[header:])


def leftovers():
    """What of a lab is still there: namespace, matchbox container, directories, processes."""
    found = []
    if NAMESPACE in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split():
        found.append("namespace " + NAMESPACE)
    containers = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], env=ENV,
                                capture_output=True, text=True, check=False).stdout.split()
    if MATCHBOX_CONTAINER in containers:
        found.append("container " + MATCHBOX_CONTAINER)
    found.extend(path for path in ("/srv/netboot-lab", "/var/lib/netboot-lab", "/etc/netboot-lab",
                                   str(LAB_DIR / "nodes"), str(LAB_DIR / "machines.pid")) if os.path.exists(path))
    # QEMU, node doubles, kube-API double, syslogd (under .lab); the supervisor; tftpd, dnsmasq, conmon
    for pattern in (str(LAB_DIR), "roles/lab/files/lab_machines.py", "netboot-lab"):
        processes = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False).stdout
        found.extend(processes.splitlines())
    return found


class Lab:
    """Runs the lab's playbooks, keeps their output, and tears the lab down at the end."""

    def __init__(self, request):
        self.request = request
        self.runs = []  # (label, CompletedProcess)

    def playbook(self, label, path, *extra):
        command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(INVENTORY), str(REPO / path), *extra]
        started = time.monotonic()
        run = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, check=False)
        run.seconds = time.monotonic() - started
        self.runs.append((label, run))
        say(self.request, "\n%s: %.0f s (rc %d)" % (label, run.seconds, run.returncode))
        return run

    def boot(self, delivery):
        """playbooks/lab.yml with this delivery; returns its per-machine report."""
        run = self.playbook("lab-%s" % delivery, "playbooks/lab.yml", "-e", "lab_check=false",
                            "-e", "talos_config_delivery=%s" % delivery)
        assert run.returncode == 0, "playbooks/lab.yml (%s) failed:\n%s" % (delivery, (run.stdout + run.stderr)[-6000:])
        report = json.loads((LAB_DIR / "report.json").read_text())
        for machine in report["machines"]:
            say(self.request, "  %-13s %-4s %5.1f s  DHCP %d  TFTP %d  HTTP %d  (%s)" % (
                machine["name"], machine["firmware"], machine["boot_seconds"], machine["requests"]["dhcp"],
                machine["requests"]["tftp"], machine["requests"]["http"], machine["ending"]))
        for line in (LAB_DIR / "report.txt").read_text().split("== API times", 1)[-1].splitlines()[1:]:
            say(self.request, "  " + line)
        return {"run": run, "machines": {m["name"]: m for m in report["machines"]},
                "table": table_rows((LAB_DIR / "nodes.txt").read_text().splitlines())}

    def keep_artefacts(self):
        OUTPUT.mkdir(parents=True, exist_ok=True)
        for label, run in self.runs:
            (OUTPUT / ("%s.log" % label)).write_text(run.stdout + run.stderr)
        for serial in (LAB_DIR / "machines").glob("*/serial*.log"):
            shutil.copy(serial, OUTPUT / ("%s.%s" % (serial.parent.name, serial.name)))
        for log in list((LAB_DIR / "logs").glob("*.log")) + [LAB_DIR / "report.txt", LAB_DIR / "nodes.txt"]:
            if log.exists():
                shutil.copy(log, OUTPUT / log.name)
        # the doubles' logs and states; not fetched.yaml or os-ca.key (secrets)
        for path in list((LAB_DIR / "nodes").glob("*/log")) + list((LAB_DIR / "nodes").glob("*/state.json")):
            shutil.copy(path, OUTPUT / ("double.%s.%s" % (path.parent.name, path.name)))
        if (LAB_DIR / "nodes" / "kube-api.log").exists():
            shutil.copy(LAB_DIR / "nodes" / "kube-api.log", OUTPUT / "double.kube-api.log")

    def down(self):
        return self.playbook("lab-down", "playbooks/lab_down.yml")


@pytest.fixture(scope="module")
def lab_runs(request):
    started = time.monotonic()
    lab = Lab(request)
    OVERLAY.unlink(missing_ok=True)
    UPGRADES.unlink(missing_ok=True)
    # A known state: whatever an earlier `make lab` or e2e run left goes first.
    earlier = lab.playbook("lab-down-before", "playbooks/lab_down.yml")
    assert earlier.returncode == 0, (earlier.stdout + earlier.stderr)[-3000:]
    assert leftovers() == [], "lab-down left these from an earlier lab"

    def tear_down():
        if request.session.testsfailed > 0 or any(run.returncode for _unused, run in lab.runs):
            lab.keep_artefacts()
        down = lab.down()
        say(request, "e2e total: %.0f s" % (time.monotonic() - started))
        assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]

    request.addfinalizer(tear_down)
    return lab


@pytest.fixture(scope="module")
def lab(lab_runs):
    return lab_runs.boot("http")


@pytest.fixture(scope="module")
def api_lab(lab_runs, lab):
    # The second lab run in a row (no lab-down in between), now with api delivery.
    return lab_runs.boot("api")


# ------------------------------------------------------------------------------------- http delivery

@pytest.mark.parametrize("name", sorted(inventory_nodes()))
def test_node_boots_and_fetches_exactly_its_own_config(lab, name):
    node = inventory_nodes()[name]
    report = lab["machines"][name]
    assert report["firmware"] == node["firmware"]
    assert report["ending"] == "power-off", "%s did not finish its boot: %s" % (name, report["serial_log"])
    assert report["lease"] == node["ip"] and report["os_lease"] == report["lease"]
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
        assert "ipxe.efi" in lab["machines"][name]["tftp_files"]


def tftp_requests(ip):
    """tftpd's RRQ lines for one client since this lab's supervisor started (the syslog file outlives
    lab runs), in the log's order."""
    since = (LAB_DIR / "settings.json").stat().st_mtime - 1
    year = time.localtime().tm_year
    return [line for line in (LAB_DIR / "logs" / "syslog.log").read_text().splitlines()
            if "in.tftpd" in line and re.search(r"RRQ from (::ffff:)?%s filename " % re.escape(ip), line)
            and time.mktime(time.strptime("%d %s" % (year, line[:15]), "%Y %b %d %H:%M:%S")) >= since]


def test_bios_pxe_machine_loads_undionly_kpxe_then_the_chain_script(lab_runs, lab):
    # The office PC's path: plain PXE ROM -> undionly.kpxe over TFTP -> iPXE -> the chain script.
    # Both clients are iPXE builds; the ROM's exchange is the one with the stand-in's own user class.
    machines = [report for report in lab["machines"].values() if report["firmware"] == "bios-pxe"]
    assert machines, "the lab needs a bios-pxe machine (lab_strangers)"
    chain_scripts = {report["tftp_files"][-1] for report in lab["machines"].values() if report["firmware"] == "bios"}
    assert len(chain_scripts) == 1, chain_scripts
    for report in machines:
        lines = tftp_requests(report["lease"])
        say(lab_runs.request, "  %s DHCP user class per exchange: %s\n  tftpd:\n    %s" % (
            report["name"], ", ".join(report["dhcp_user_classes"]), "\n    ".join(lines)))
        files = [line.rsplit(" filename ", 1)[1].strip() for line in lines]
        assert files == ["undionly.kpxe"] + sorted(chain_scripts) == report["tftp_files"], lines
        clients = [name for index, name in enumerate(report["dhcp_user_classes"])
                   if not index or report["dhcp_user_classes"][index - 1] != name]
        assert clients == ["NBT-PXE-ROM", "iPXE"], report["dhcp_user_classes"]
        tftp_times = [event["t"] for event in report["events"] if event["source"] == "tftp"]
        ipxe_dhcp = [event["t"] for event in report["events"] if event["event"] == "user class: iPXE"]
        assert tftp_times[0] <= ipxe_dhcp[0] <= tftp_times[1], report["events"]  # iPXE asked only after undionly.kpxe came
        # /boot.ipxe then /ipxe (404), once more if the chain script's one retry ran before the stop
        asked = [path.split("?", 1)[0] for path in report["ipxe_scripts"]]
        assert asked in (["/boot.ipxe", "/ipxe"], ["/boot.ipxe", "/ipxe"] * 2), report["ipxe_scripts"]
        assert report["refused"], "matchbox did not answer 404 to %s's /ipxe" % report["name"]
    # the supervisor's own judgement of the path (pxe_rom_problems) agrees
    problems = json.loads((LAB_DIR / "report.json").read_text())["problems"]
    assert not [line for line in problems if line.startswith(tuple(report["name"] + ":" for report in machines))], problems


def test_machine_not_in_inventory_gets_no_config(lab):
    known = {node["mac"] for node in inventory_nodes().values()}
    strangers = [report for report in lab["machines"].values() if report["expect"] == "refused"]
    assert strangers, "the lab inventory needs a stranger (lab_strangers)"
    for report in strangers:
        assert report["mac"] not in known
        assert report["refused"], "matchbox did not answer 404 to %s's /ipxe" % report["name"]
        assert any(path.startswith("/ipxe?") for path in report["ipxe_scripts"])
        assert report["config"] is None and report["config_requests"] == []
        assert report["kernel"] is None
        assert report["install"] is None


@pytest.mark.parametrize("name", sorted(inventory_nodes()))
def test_node_double_runs_the_config_the_machine_fetched(lab, name):
    report = lab["machines"][name]
    assert report["install"]["double"] == "configured", report["install"]["text"]
    state = double_state(name)
    assert state["stage"] == "configured" and state["hostname"] == inventory_nodes()[name]["hostname"]
    served = (LAB_DIR / "nodes" / name / "config.yaml").read_bytes()
    assert hashlib.sha256(served).hexdigest() == report["config"]["sha256"]  # what the stand-in got
    assert served == (CLUSTER_DIR / "nodes" / ("%s.yaml" % name)).read_bytes()  # what configs.yml rendered
    assert [entry["stage"] for entry in state["served"]] == ["configured"]
    assert "first_call" in state["served"][0], "the cluster play never called %s" % name


def test_node_table_lists_every_inventory_node_ready(lab):
    table = lab["table"]
    assert set(table) == set(inventory_nodes())
    for name, node in inventory_nodes().items():
        assert table[name]["STATUS"] == "Ready"
        assert table[name]["INTERNAL-IP"] == node["ip"]
    assert printed_table(lab["run"].stdout, "netboot.talos.lab : Show the node table") == table


def test_configs_are_withdrawn_once_every_node_runs_its_own(lab):
    # inventory/lab sets talos_config_withdraw: cluster.yml removed them after the node table
    assert {name: config_status(node) for name, node in inventory_nodes().items()} == {name: "404" for name in inventory_nodes()}
    # each withheld only once seen running the config served in this run (the controller's record)
    record = served_record()
    assert set(record) == set(inventory_nodes())
    assert all(entry["seen_running_at"] and entry["seen_running_at"] >= entry["served_at"] for entry in record.values()), record


def test_site_second_run_changes_nothing_and_bootstraps_once(lab_runs, lab):
    controlplane = next(name for name, node in inventory_nodes().items() if node["machine_type"] == "controlplane")
    assert double_state(controlplane)["calls"].get("Bootstrap") == 1
    run = lab_runs.playbook("site-second-run", "site.yml")
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    hosts = recap(run.stdout)
    say(lab_runs.request, "  " + "; ".join("%s changed=%d" % (host, counts["changed"]) for host, counts in hosts.items()))
    assert {"localhost", "lab-bootserver"} <= set(hosts)
    assert all(counts["changed"] == 0 and counts["failed"] == 0 for counts in hosts.values()), hosts
    assert double_state(controlplane)["calls"].get("Bootstrap") == 1


def test_reprovision_brings_the_worker_back_through_pxe(lab_runs, lab):
    worker = "lab-worker1"
    node = inventory_nodes()[worker]
    resets_before = len(double_state(worker)["resets"])
    record_before = served_record()[worker]
    run = lab_runs.playbook("reprovision-%s" % worker, "playbooks/reprovision.yml", "-e", "nodes=%s" % worker)
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    state = double_state(worker)
    assert len(state["resets"]) == resets_before + 1
    assert set(state["resets"][-1]["wipe"]) == {"STATE", "EPHEMERAL"}
    reboots = json.loads((LAB_DIR / "machines" / worker / "reboots.json").read_text())
    assert len(reboots) == 1
    boot = reboots[0]
    say(lab_runs.request, "  %s boot %d through PXE: %.1f s (%s)" % (worker, boot["boot"], boot["boot_seconds"], boot["ending"]))
    assert boot["boot"] == 2 and boot["ending"] == "power-off" and boot["problems"] == []
    assert boot["lease"] == node["ip"] and boot["kernel"] and boot["initrd"]
    assert boot["config"]["hostname"] == node["hostname"] and boot["config"]["machine_type"] == "worker"
    assert Path(boot["serial_log"]).name == "serial-2.log" and Path(boot["serial_log"]).exists()
    assert boot["install"]["double"] == "configured"
    # configured again: a second serving period, noticed by the wait of reprovision.yml
    assert [entry["stage"] for entry in state["served"]] == ["configured", "configured"]
    assert state["stage"] == "configured" and "first_call" in state["served"][-1]
    table = printed_table(run.stdout, "netboot.talos.talos_cluster : Show the nodes")
    assert table[worker]["STATUS"] == "Ready" and set(table) == set(inventory_nodes())
    # served again for the new boot (the double above runs what it fetched), withdrawn once back
    assert config_status(node) == "404"
    record = served_record()[worker]
    assert record["served_at"] > record_before["seen_running_at"] and record["seen_running_at"] >= record["served_at"]


# ---- diagnose faults (issue 11)
# On the lab as http delivery left it (configs withdrawn, every node Ready): diagnose on the healthy
# lab, then faults injected in three batches (faults on different links or nodes, so that none hides
# another's verdict), each undone (tests/e2e/lab_faults.py), and diagnose on the healthy lab again.

DIAGNOSE_TASK = "netboot.talos.diagnose : Say which link broke, node by node"
WRONG_UEFI_FILE = "bootx64.efi"


def diagnose(lab_runs, label, report, *extra):
    """playbooks/diagnose.yml: its run, the verdict text as printed (lines), and the JSON report."""
    report.unlink(missing_ok=True)
    run = lab_runs.playbook(label, "playbooks/diagnose.yml", "-e", "diagnose_report=%s" % report, *extra)
    section = task_output(run.stdout, DIAGNOSE_TASK)
    lines = section.split("\nfatal: [", 1)[0].split("\nok: [", 1)[0].splitlines()
    lines = lines[:next((index + 1 for index, line in enumerate(lines) if line.startswith("diagnose: ")), len(lines))]
    assert report.exists(), (run.stdout + run.stderr)[-6000:]
    say(lab_runs.request, "  " + "\n  ".join(lines))
    return run, lines, json.loads(report.read_text())


def printed_blocks(lines):
    """The printed verdicts by block: node name (or 'Boot server') -> (heading, [verdict lines])."""
    blocks, current = {}, None
    for line in lines:
        if line and not line.startswith(" "):
            current = "Boot server" if line.startswith("Boot server") else line.split()[0]
            blocks[current] = (line, [])
        elif current and line.strip():
            blocks[current][1].append(line)
    return blocks


class Verdicts:
    """One diagnose run's verdicts, printed and reported; what is not there is collected in misses
    (every fault's verdict is checked, the test fails at the end naming all that were missing)."""

    def __init__(self, lines, report, misses):
        self.blocks, self.report, self.misses = printed_blocks(lines), report, misses

    def line(self, where, status, title, *words):
        """The one printed line of this block, status and link that holds every word."""
        printed = self.blocks.get(where, ("", []))[1]
        found = [line for line in printed if line.split()[:1] == [status] and line.split(None, 1)[1].startswith(title)
                 and all(word in line for word in words)]
        if not found:
            self.misses.append("no %s %s line with %s under %s:\n%s" % (status, title, words, where, "\n".join(printed)))
        return found[0].strip() if found else "(missing)"

    def reported(self, where, status, link, *words):
        """The JSON report holds a verdict of this node (or a finding of the boot server) with these words."""
        entries = self.report["findings"] if where == "Boot server" else self.report["nodes"].get(where, [])
        if not any(entry["status"] == status and entry["link"] == link and all(word in entry["seen"] + entry["action"] for word in words)
                   for entry in entries):
            self.misses.append("no %s %s verdict with %s for %s in the report: %s" % (status, link, words, where, entries))


def healthy(lab_runs, label, report):
    run, lines, result = diagnose(lab_runs, label, report)
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    assert lines[-1] == "diagnose: 2 node(s) checked, every link ok", lines
    blocks = printed_blocks(lines)
    for name, node in inventory_nodes().items():
        assert blocks[name][0] == "%s (%s, %s): every link ok" % (name, node["ip"], node["mac"]), blocks[name]
        assert all(line.split()[0] == "ok" for line in blocks[name][1]), blocks[name]
        assert all(entry["status"] == "ok" for entry in result["nodes"][name]), result["nodes"][name]
        # http delivery withdrew the configs once each node ran its own: on purpose, and said so
        config = [line for line in blocks[name][1] if line.split()[1:3] == ["config", "URL"]]
        assert len(config) == 1 and "withdrawn on purpose" in config[0] and node["mac"].replace(":", "-") + ".yaml" in config[0], config
    assert result["broken"] == [] and all(entry["status"] != "broken" for entry in result["findings"]), result["findings"]
    return run


def test_diagnose_names_the_broken_link_of_each_injected_fault(lab_runs, lab, tmp_path):
    from lab_faults import Faults  # tests/e2e is on sys.path (pytest's rootdir-relative import)

    cp1, worker = "lab-cp1", "lab-worker1"
    nodes = inventory_nodes()
    report, table, misses = tmp_path / "diagnose.json", [], []
    started = time.monotonic()
    faults = Faults(ENV, LAB_DIR)
    try:
        first = healthy(lab_runs, "diagnose-healthy", report)
        say(lab_runs.request, "  diagnose of the 2-node lab: %.1f s" % first.seconds)

        # tftpd stopped; lab-cp1's group file cut in half and its Talos down; the worker in maintenance mode
        faults.stop_tftpd()
        faults.corrupt_group(cp1)
        faults.double(cp1, "down")
        faults.double(worker, "maintenance")
        run, lines, result = diagnose(lab_runs, "diagnose-faults-1", report)
        assert run.returncode != 0 and sorted(result["broken"]) == [cp1, worker]
        seen = Verdicts(lines, result, misses)
        table += [("tftpd stopped", seen.line(cp1, "BROKEN", "TFTP", "tftp://10.250.50.1/"))]
        seen.line(worker, "BROKEN", "TFTP", "tftp://10.250.50.1/")
        seen.reported(cp1, "broken", "tftp", "tftp://10.250.50.1/")
        table += [("corrupt group file (lab-cp1)", seen.line("Boot server", "BROKEN", "matchbox", "groups/%s.json does not load" % cp1)),
                  ("  ... at lab-cp1's /ipxe", seen.line(cp1, "BROKEN", "matchbox", "mac=52-54-00-50-00-11", "404"))]
        seen.reported("Boot server", "broken", "matchbox", "groups/%s.json does not load" % cp1)
        table += [("node down (lab-cp1)", seen.line(cp1, "BROKEN", "Talos API", "no answer from %s:50000" % nodes[cp1]["ip"]))]
        seen.reported(cp1, "broken", "talos_api", "no answer")
        table += [("node in maintenance mode (lab-worker1)",
                   seen.line(worker, "BROKEN", "Talos API", "%s:50000 answers in maintenance mode" % nodes[worker]["ip"])),
                  ("config withdrawn, node in maintenance", seen.line(worker, "BROKEN", "config URL", "withdrawn, but the node does not run its config"))]
        seen.line(worker, "do:", "run playbooks/reprovision.yml -e nodes=%s" % worker)
        seen.reported(worker, "broken", "talos_api", "maintenance mode")
        seen.reported(worker, "broken", "config", "withdrawn", "reprovision.yml -e nodes=%s" % worker)
        faults.undo()

        # matchbox stopped; UEFI clients handed a wrong boot file; a second DHCP server on the bridge
        faults.stop_matchbox(MATCHBOX_CONTAINER)
        right_file = faults.uefi_boot_file(WRONG_UEFI_FILE)
        rogue = faults.second_dhcp_server()
        run, lines, result = diagnose(lab_runs, "diagnose-faults-2", report)
        assert run.returncode != 0 and sorted(result["broken"]) == [cp1, worker]
        seen = Verdicts(lines, result, misses)
        table += [("matchbox stopped", seen.line("Boot server", "BROKEN", "matchbox", "http://10.250.50.1:8080/", "no answer"))]
        seen.line(cp1, "BROKEN", "matchbox", "no answer")
        seen.reported("Boot server", "broken", "matchbox", "no answer")
        for name in (cp1, worker):
            line = seen.line(name, "BROKEN", "DHCP", "UEFI x64 PXE (arch 7)", "10.250.50.1 offers boot file %s" % WRONG_UEFI_FILE)
            seen.line(name, "BROKEN", "DHCP", "UEFI x64 PXE (arch 9)", WRONG_UEFI_FILE)
            seen.reported(name, "broken", "dhcp", WRONG_UEFI_FILE)
            assert right_file not in line
        table += [("wrong UEFI boot file in DHCP", line)]
        table += [("second DHCP server", seen.line("Boot server", "BROKEN", "DHCP", "2 DHCP servers offer addresses", rogue))]
        seen.reported("Boot server", "broken", "dhcp", rogue)
        faults.undo()

        # lab-worker1's MAC mistyped in host_vars (an inventory overlay) while the machine booted with
        # its real one; the kernel lab-cp1 boots cut in half
        real, typo = nodes[worker]["mac"], nodes[worker]["mac"][:-4] + "1:21"  # 52:54:00:50:01:21: one digit off
        overlay_dir = tmp_path / "inventory"
        (overlay_dir / "host_vars").mkdir(parents=True)
        (overlay_dir / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {worker: None}}}))
        (overlay_dir / "host_vars" / ("%s.yml" % worker)).write_text(yaml.safe_dump({"talos_mac": typo}))
        profile = json.loads((MATCHBOX_DATA / "groups" / ("%s.json" % cp1)).read_text())["profile"]
        kernel = json.loads((MATCHBOX_DATA / "profiles" / ("%s.json" % profile)).read_text())["boot"]["kernel"]
        faults.truncate(kernel.split("/assets/", 1)[1])
        run, lines, result = diagnose(lab_runs, "diagnose-faults-3", report, "-i", str(overlay_dir))
        assert run.returncode != 0 and sorted(result["broken"]) == [cp1, worker]
        seen = Verdicts(lines, result, misses)
        table += [("mistyped MAC (lab-worker1 %s as %s)" % (real, typo),
                   seen.line(worker, "BROKEN", "matchbox", typo.replace(":", "-"), "groups/%s.json selects %s (1 hex digit off)" % (worker, real))),
                  ("  ... the real MAC's requests", seen.line(worker, "WARN", "last seen", "a MAC close to it booted: %s (1 hex digit off)" % real))]
        seen.reported(worker, "warning", "logs", real, "talos_mac is mistyped")
        seen.reported("Boot server", "warning", "logs", real, "closest node %s" % worker, "set talos_mac: %s" % real)
        table += [("truncated kernel", seen.line(cp1, "BROKEN", "kernel+initrd", kernel.rsplit("/", 1)[1]))]
        seen.reported(cp1, "broken", "assets", kernel.rsplit("/", 1)[1])
        faults.undo()

        healthy(lab_runs, "diagnose-healthy-again", report)
    finally:
        faults.undo()
        say(lab_runs.request, "\n  fault table:\n" + "\n".join("    %-40s %s" % row for row in table))
    assert misses == [], "\n\n".join(misses)
    # the lab as found: every node configured and Ready, configs still withdrawn
    assert all(double_state(name)["stage"] == "configured" for name in nodes)
    assert {name: config_status(node) for name, node in nodes.items()} == {name: "404" for name in nodes}
    say(lab_runs.request, "  diagnose faults section: %.0f s" % (time.monotonic() - started))


# ---- vault (issue 15)
# Before day 2: the lab runs what its inventory says (the day-2 test leaves its last change applied).

VAULT_HEADER = b"$ANSIBLE_VAULT;1.2;AES256;lab\n"
VAULT_SECRET_FILES = ("secrets.yaml", "talosconfig", "kubeconfig")  # and nodes/*.yaml, backups/*.db


def is_secret_file(relative):
    return relative in VAULT_SECRET_FILES or relative.startswith(("nodes/", "backups/"))


def test_vault_encrypted_cluster_dir_runs_unchanged_and_refuses_a_wrong_password(lab_runs, lab, tmp_path):
    started = time.monotonic()
    (tmp_path / "vault-pass").write_text("lab vault password\n")
    (tmp_path / "wrong-pass").write_text("not the lab's\n")
    right, wrong = ["--vault-id", "lab@%s" % (tmp_path / "vault-pass")], ["--vault-id", "lab@%s" % (tmp_path / "wrong-pass")]
    clear = cluster_files()
    assert all(not content.startswith(b"$ANSIBLE_VAULT") for content in clear.values())
    try:
        encrypt = lab_runs.playbook("vault-encrypt", "playbooks/vault_encrypt.yml", *right)
        assert encrypt.returncode == 0, (encrypt.stdout + encrypt.stderr)[-6000:]
        encrypted = cluster_files()
        assert set(encrypted) == set(clear)
        secret = sorted(r for r in encrypted if is_secret_file(r))
        assert {"secrets.yaml", "talosconfig", "kubeconfig"} <= set(secret) and any(r.startswith("nodes/") for r in secret)
        assert all(encrypted[r].startswith(VAULT_HEADER) for r in secret), secret
        assert all(encrypted[r] == clear[r] for r in encrypted if r not in secret)
        say(lab_runs.request, "  encrypted: %s; clear: %s" % (", ".join(secret), ", ".join(sorted(set(encrypted) - set(secret)))))

        # site.yml over the lab with the password, a run after the lab's own (lab.yml): nothing changes,
        # the encrypted bytes stay. One run: a second one repeats these checks for ~2 more minutes.
        run = lab_runs.playbook("vault-site", "site.yml", *right)
        assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
        hosts = recap(run.stdout)
        say(lab_runs.request, "  " + "; ".join("%s changed=%d" % (host, counts["changed"]) for host, counts in hosts.items()))
        assert {"localhost", "lab-bootserver"} <= set(hosts)
        assert all(counts["changed"] == 0 and counts["failed"] == 0 for counts in hosts.values()), hosts
        assert cluster_files() == encrypted
        assert "lab vault password" not in run.stdout + run.stderr

        # a wrong password, and none: refused before anything changes, on the controller or the nodes
        states = {name: double_state(name) for name in inventory_nodes()}
        for label, args, expected in (("vault-wrong-password", wrong, "no vault secret given opens it"),
                                      ("vault-no-password", [], "vault-encrypted files")):
            refused = lab_runs.playbook(label, "site.yml", *args)
            assert refused.returncode != 0
            assert expected in refused.stdout and "Validate every node" in refused.stdout.split(expected)[0], refused.stdout[-3000:]
            assert cluster_files() == encrypted
            assert {name: double_state(name) for name in inventory_nodes()} == states
    finally:
        decrypt = lab_runs.playbook("vault-decrypt", "playbooks/vault_encrypt.yml", *right, "-e", "vault_decrypt=true")
    assert decrypt.returncode == 0, (decrypt.stdout + decrypt.stderr)[-6000:]
    assert cluster_files() == clear
    say(lab_runs.request, "  vault section: %.0f s" % (time.monotonic() - started))


# ------------------------------------------------------------------------------ day 2 (issue 9)

OVERLAY = INVENTORY / "e2e-day2.yml"  # host vars for one node, for the day-2 test only (removed after it)
SYSCTL = {"net.ipv4.ip_forward": "1"}
LABEL = {"lab.netboot.talos/tier": "edge"}
# machine.env is among the fields Talos cannot change live (the AUTO rule): the node reboots.
REBOOT_PATCH = [{"machine": {"env": {"HTTPS_PROXY": "http://proxy.lab.invalid:3128"}}}]


def overlay(name, **variables):
    OVERLAY.write_text(yaml.safe_dump({"all": {"hosts": {name: variables}}}))


def task_output(stdout, task):
    """Everything a task printed, up to the next task."""
    return stdout.split("TASK [%s]" % task, 1)[-1].split("\n", 1)[-1].split("\nTASK [", 1)[0]


def plan_rows(stdout):
    lines = task_output(stdout, "netboot.talos.talos_rollout : Show the plan").splitlines()
    return {line.split()[0]: line for line in lines if line.split() and line.split()[0] in inventory_nodes()}


def secret_values():
    bundle = yaml.safe_load((CLUSTER_DIR / "secrets.yaml").read_text())
    return [bundle["trustdinfo"]["token"], bundle["secrets"]["bootstraptoken"], bundle["cluster"]["secret"],
            bundle["certs"]["os"]["key"], bundle["certs"]["k8s"]["key"]]


def rollout_seconds(stdout):
    """Per node the seconds from apply to Ready again, from the rollout's report."""
    report = task_output(stdout, "netboot.talos.talos_rollout : Show what was applied")
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) \(\S+\): .* in ([\d.]+)s - ", report, re.M)}


def test_day2_a_sysctl_and_a_label_then_a_change_that_needs_a_reboot(lab_runs, lab):
    worker, rollout = "lab-worker1", "netboot.talos.talos_rollout : Roll the changes out"
    before = double_state(worker)
    applies, reboots = len(before.get("applies", [])), before.get("reboots", 0)
    rendered = (CLUSTER_DIR / "nodes" / ("%s.yaml" % worker)).read_bytes()
    try:
        overlay(worker, talos_sysctls=SYSCTL, talos_node_labels=LABEL)
        check = lab_runs.playbook("day2-check-diff", "site.yml", "--check", "--diff")
        assert check.returncode == 0, (check.stdout + check.stderr)[-6000:]
        shown = task_output(check.stdout, rollout)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "day2-check-diff.txt").write_text(shown)
        say(lab_runs.request, "  --check --diff of the rollout:\n" + shown.rstrip())
        rows = plan_rows(check.stdout)
        assert "apply without a reboot" in rows[worker] and all("no change" in row for name, row in rows.items() if name != worker), rows
        changed = sorted(line for line in shown.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
        assert changed == ['+        lab.netboot.talos/tier: edge', '+        net.ipv4.ip_forward: "1"', "+    nodeLabels:",
                           "+    sysctls:"], shown
        assert shown.count("--- a") == 1 and worker in shown.split("--- a")[0]
        assert not any(value in check.stdout for value in secret_values())
        assert len(double_state(worker).get("applies", [])) == applies
        assert (CLUSTER_DIR / "nodes" / ("%s.yaml" % worker)).read_bytes() == rendered

        run = lab_runs.playbook("day2-sysctl-label", "site.yml")
        assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
        state = double_state(worker)
        assert [a["mode"] for a in state["applies"][applies:]] == ["no_reboot"] and state.get("reboots", 0) == reboots
        assert "net.ipv4.ip_forward" in (LAB_DIR / "nodes" / worker / "config.yaml").read_text()
        assert "  %s  apply ..." % worker in run.stdout  # the live lines
        live = [line for line in task_output(run.stdout, rollout).splitlines() if line.startswith("  ")]
        say(lab_runs.request, "  live lines:\n" + "\n".join(live))
        say(lab_runs.request, "  apply -> Ready (no reboot): %s" % rollout_seconds(run.stdout))

        overlay(worker, talos_sysctls=SYSCTL, talos_node_labels=LABEL, talos_patches=REBOOT_PATCH)
        reboot = lab_runs.playbook("day2-reboot", "site.yml")
        assert reboot.returncode == 0, (reboot.stdout + reboot.stderr)[-6000:]
        assert "apply with a reboot" in plan_rows(reboot.stdout)[worker]
        state = double_state(worker)
        assert [a["mode"] for a in state["applies"][applies:]] == ["no_reboot", "reboot"] and state["reboots"] == reboots + 1
        seconds = rollout_seconds(reboot.stdout)
        say(lab_runs.request, "  apply -> Ready (reboot): %s" % seconds)
        assert list(seconds) == [worker]
        assert "kubernetes ready done" in task_output(reboot.stdout, rollout)

        again = lab_runs.playbook("day2-again", "site.yml")
        assert again.returncode == 0, (again.stdout + again.stderr)[-6000:]
        hosts = recap(again.stdout)
        assert all(counts["changed"] == 0 and counts["failed"] == 0 for counts in hosts.values()), hosts
        assert len(double_state(worker)["applies"]) == applies + 2
    finally:
        OVERLAY.unlink(missing_ok=True)


# ---- removal, backup and restore (issue 9)

HOSTS = INVENTORY / "hosts.yml"
SUPERVISOR = REPO / "roles" / "lab" / "files" / "lab_machines.py"
MATCHBOX_DATA = Path("/var/lib/netboot-lab/matchbox")  # inventory/lab group_vars/boot_server.yml matchbox_data_dir
DNSMASQ_CONF = Path("/etc/netboot-lab/dnsmasq.conf")
LAB_NODES = inventory_nodes()  # read before a test takes a node out of hosts.yml


def kube_record():
    """The kube-API double's own record: registered nodes, cordons, deletions."""
    return json.loads((LAB_DIR / "nodes" / "kube-api.json").read_text())


def boot_server_holds(name):
    """What the boot server keeps for a node: its matchbox group, its served config, its DHCP reservation."""
    node = LAB_NODES[name]
    return {"group": (MATCHBOX_DATA / "groups" / ("%s.json" % name)).exists(), "config": config_status(node) == "200",
            "dhcp": "dhcp-host=%s," % node["mac"] in DNSMASQ_CONF.read_text()}


def reboots(name):
    path = LAB_DIR / "machines" / name / "reboots.json"
    return json.loads(path.read_text()) if path.exists() else []


def wait_until(what, condition, timeout, interval=1.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "%s: not after %ss" % (what, timeout)
        time.sleep(interval)


def assert_pxe_boot(boot, name):
    """A boot of the lab machine through PXE that fetched its own config and was installed configured."""
    node = LAB_NODES[name]
    assert boot["ending"] == "power-off" and boot["problems"] == [], boot["report_lines"]
    assert boot["lease"] == node["ip"] and boot["kernel"] and boot["initrd"]
    assert boot["config"]["hostname"] == node["hostname"] and boot["config"]["machine_type"] == node["machine_type"]
    assert boot["install"]["double"] == "configured"


def test_backup_is_what_the_node_served_and_restore_recovers_it_through_pxe(lab_runs, lab):
    backups = CLUSTER_DIR / "backups"
    had_backups = backups.exists()
    before = set(backups.glob("etcd-*.db")) if had_backups else set()
    try:
        backup_then_restore(lab_runs, backups, before)
    finally:  # the cluster dir as it was
        for path in set(backups.glob("etcd-*.db")) - before if backups.exists() else ():
            path.unlink()
        if not had_backups and backups.exists() and not any(backups.iterdir()):
            backups.rmdir()


def backup_then_restore(lab_runs, backups, before):
    controlplane = next(name for name, node in LAB_NODES.items() if node["machine_type"] == "controlplane")
    run = lab_runs.playbook("backup", "playbooks/backup.yml")
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    written = sorted(set(backups.glob("etcd-*.db")) - before)
    assert len(written) == 1 and re.match(r"^etcd-\d{8}T\d{6}Z\.db$", written[0].name), written
    snapshot = written[0]
    assert snapshot.stat().st_mode & 0o777 == 0o600
    served = (LAB_DIR / "nodes" / controlplane / "etcd-snapshot-served.db").read_bytes()
    assert served and snapshot.read_bytes() == served
    say(lab_runs.request, "  %s: %d bytes, the bytes %s served" % (snapshot.relative_to(REPO), len(served), controlplane))

    # A key written after the backup: the restore must take the cluster back to before it.
    data_path = LAB_DIR / "nodes" / controlplane / "etcd" / "data.json"
    data = json.loads(data_path.read_text())
    backed_up = dict(data["keys"])
    data["keys"]["/registry/configmaps/default/after-the-backup"] = "lost in the restore"
    data_path.write_text(json.dumps(data))

    boots = len(reboots(controlplane))
    reset = lab_runs.playbook("restore-pxe-reset-%s" % controlplane, "tests/e2e/pxe_reset.yml", "-e", "nodes=%s" % controlplane)
    assert reset.returncode == 0, (reset.stdout + reset.stderr)[-6000:]
    started = time.monotonic()
    wait_until("%s back through PXE" % controlplane, lambda: len(reboots(controlplane)) > boots, 300)
    boot = reboots(controlplane)[-1]
    assert_pxe_boot(boot, controlplane)
    state = double_state(controlplane)
    assert state["resets"][-1] == {"graceful": False, "reboot": True, "wipe": ["EPHEMERAL"]}
    assert state["stage"] == "configured" and not state["bootstrapped"]
    say(lab_runs.request, "  %s reset -> back through PXE (boot %d): %.0f s" % (controlplane, boot["boot"], reset.seconds + time.monotonic() - started))

    bootstraps = state["calls"].get("Bootstrap", 0)
    restore = lab_runs.playbook("restore", "playbooks/restore.yml", "-e", "snapshot=%s" % snapshot)
    assert restore.returncode == 0, (restore.stdout + restore.stderr)[-6000:]
    say(lab_runs.request, "  " + "\n  ".join(printed_lines(restore.stdout, "Show the recovery")))
    state = double_state(controlplane)
    assert state["recover_uploads"][-1]["size"] == len(served)
    assert state["recovered"]["sha256"] == hashlib.sha256(served).hexdigest() and not state["recovered"]["skip_hash_check"]
    assert state["calls"]["Bootstrap"] == bootstraps + 1 and state["bootstrapped"]
    assert json.loads(data_path.read_text())["keys"] == backed_up  # the key written after the backup is gone
    nodes = kube_record()["nodes"]
    assert set(nodes) == set(LAB_NODES), nodes


def test_a_node_taken_out_of_the_inventory_stops_site_then_is_removed_then_comes_back_through_pxe(lab_runs, lab):
    worker = next(name for name, node in LAB_NODES.items() if node["machine_type"] == "worker")
    original = HOSTS.read_bytes()
    hosts = yaml.safe_load(original)
    del hosts["all"]["children"]["talos"]["children"]["workers"]["hosts"][worker]
    resets, boots = len(double_state(worker)["resets"]), len(reboots(worker))
    assert boot_server_holds(worker) == {"group": True, "config": False, "dhcp": True}  # config withdrawn, node runs it
    try:
        HOSTS.write_text(yaml.safe_dump(hosts, sort_keys=False))
        stopped = lab_runs.playbook("remove-absent-refused", "site.yml")
        assert stopped.returncode != 0
        assert "cluster member %s (%s; Kubernetes node) is not in the inventory" % (worker, LAB_NODES[worker]["ip"]) in stopped.stdout
        assert "talos_cluster_remove_absent: true" in stopped.stdout
        assert len(double_state(worker)["resets"]) == resets and double_state(worker)["stage"] == "configured"
        assert boot_server_holds(worker) == {"group": True, "config": False, "dhcp": True}
        assert worker in kube_record()["nodes"] and not kube_record()["unschedulable"].get(worker)

        removed = lab_runs.playbook("remove-absent", "site.yml", "-e", "talos_cluster_remove_absent=true")
        assert removed.returncode == 0, (removed.stdout + removed.stderr)[-6000:]
        shown = task_output(removed.stdout, "netboot.talos.talos_rollout : Show what was removed")  # the first: site.yml's check
        say(lab_runs.request, "  " + "\n  ".join(shown.split("\nok: [", 1)[0].strip().splitlines()))
        state = double_state(worker)
        assert state["resets"][resets:] == [{"graceful": True, "reboot": False, "wipe": ["STATE", "EPHEMERAL"]}]
        kube = kube_record()
        assert [patch["node"] for patch in kube["patches"] if patch["unschedulable"]][-1:] == [worker]  # cordoned
        assert kube["deletions"][-1]["node"] == worker and worker not in kube["nodes"]  # the DELETE found it
        table = printed_table(removed.stdout, "netboot.talos.talos_cluster : Show the nodes")
        assert set(table) == set(LAB_NODES) - {worker} and all(row["STATUS"] == "Ready" for row in table.values()), table
        assert boot_server_holds(worker) == {"group": False, "config": False, "dhcp": False}
        # powered off: it stays off (no PXE boot) until its power button is pressed
        assert (LAB_DIR / "machines" / worker / "powered-off").exists() and len(reboots(worker)) == boots
    finally:
        HOSTS.write_bytes(original)

    # Put back: site.yml serves it again; the machine is powered on once its config is served.
    started = time.monotonic()
    back = subprocess.Popen([str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(INVENTORY), str(REPO / "site.yml")],
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until("%s's config served again" % worker, lambda: back.poll() is not None or boot_server_holds(worker)["config"], 300)
        assert back.poll() is None, "site.yml ended before serving %s's config:\n%s" % (worker, back.stdout.read()[-6000:])
        assert boot_server_holds(worker) == {"group": True, "config": True, "dhcp": True}
        served_after = time.monotonic() - started
        power = subprocess.run([sys.executable, str(SUPERVISOR), "power-on", str(LAB_DIR), worker],
                               capture_output=True, text=True, check=False)
        assert power.returncode == 0, power.stdout + power.stderr
        output, _unused = back.communicate(timeout=900)
    finally:
        if back.poll() is None:
            back.kill()
            back.wait()
    seconds = time.monotonic() - started
    lab_runs.runs.append(("put-back", subprocess.CompletedProcess(back.args, back.returncode, output, "")))
    say(lab_runs.request, "\nput-back: %.0f s (rc %d; config served after %.0f s)" % (seconds, back.returncode, served_after))
    assert back.returncode == 0, output[-6000:]
    assert not (LAB_DIR / "machines" / worker / "powered-off").exists()
    assert len(reboots(worker)) == boots + 1
    boot = reboots(worker)[-1]
    assert_pxe_boot(boot, worker)
    say(lab_runs.request, "  %s boot %d through PXE: %.1f s" % (worker, boot["boot"], boot["boot_seconds"]))
    state = double_state(worker)
    assert state["stage"] == "configured" and state["served"][-1]["stage"] == "configured" and "first_call" in state["served"][-1]
    table = printed_table(output, "netboot.talos.talos_cluster : Show the nodes")
    assert set(table) == set(LAB_NODES) and all(row["STATUS"] == "Ready" for row in table.values()), table
    assert kube_record()["nodes"][worker]["registered_at"] > kube_record()["deletions"][-1]["at"]  # registered again
    # the lab as found: the config withdrawn again, every reservation and group back
    assert {name: boot_server_holds(name) for name in LAB_NODES} == {
        name: {"group": True, "config": False, "dhcp": True} for name in LAB_NODES}
    assert HOSTS.read_bytes() == original and inventory_nodes() == LAB_NODES


# -------------------------------------------------------------------------------------- api delivery

@pytest.mark.parametrize("name", sorted(inventory_nodes()))
def test_api_delivery_serves_no_config(api_lab, name):
    node = inventory_nodes()[name]
    report = api_lab["machines"][name]
    assert report["ending"] == "power-off" and report["kernel"] and report["initrd"]
    assert report["config_missing"], "the stand-in did not report a missing talos.config= (%s)" % report["serial_log"]
    assert report["config"] is None and report["config_requests"] == [] and report["config_url"] is None
    assert config_status(node) == "404"


@pytest.mark.parametrize("name", sorted(inventory_nodes()))
def test_api_delivery_applies_each_config_in_maintenance_mode(api_lab, name):
    assert api_lab["machines"][name]["install"]["double"] == "maintenance"
    state = double_state(name)
    assert state["calls"].get("ApplyConfiguration", 0) >= 1 and state["applied"] == 1
    assert [entry["stage"] for entry in state["served"]] == ["maintenance", "configured"]
    assert state["stage"] == "configured"
    applied = (LAB_DIR / "nodes" / name / "config.yaml").read_bytes()
    assert applied == (CLUSTER_DIR / "nodes" / ("%s.yaml" % name)).read_bytes()


def test_api_delivery_node_table_lists_every_node_ready(api_lab):
    table = api_lab["table"]
    assert set(table) == set(inventory_nodes())
    assert all(row["STATUS"] == "Ready" for row in table.values())
    controlplane = next(name for name, node in inventory_nodes().items() if node["machine_type"] == "controlplane")
    assert double_state(controlplane)["calls"].get("Bootstrap") == 1


# ---- upgrades (issue 10)
# On the lab as api delivery left it (v1.11.5, the Kubernetes version recorded at creation): the
# Talos upgrade to UPGRADE_TO, the refusals, a one-minor Kubernetes bump, a run that changes nothing,
# then a node that never comes back from an upgrade to NEVER_BACK_TO (it comes back once the test lets
# it, and the rollout resumes). The overlay and the cluster dir are put back whatever happens.

UPGRADES = INVENTORY / "e2e-upgrades.yml"  # talos_version / talos_kubernetes_version for this section only
UPGRADE_TO, NEVER_BACK_TO = "v1.12.0", "v1.12.1"  # both among inventory/lab's lab_upgrade_versions
UPGRADE_TIMEOUT = 12  # talos_cluster_upgrade_timeout for the node that never comes back (seconds)
UPGRADE_REPORT = "netboot.talos.talos_rollout : Show what was upgraded"


def upgrades_overlay(talos_version=None, kubernetes_version=None, upgrade_timeout=120):
    # api delivery, as the lab was booted last (lab.yml -e talos_config_delivery=api)
    per_node = {key: value for key, value in (("talos_version", talos_version), ("talos_kubernetes_version", kubernetes_version),
                                              ("talos_config_delivery", "api")) if value}
    hosts = {name: dict(per_node) for name in inventory_nodes()}
    hosts["localhost"] = {"talos_cluster_upgrade_timeout": upgrade_timeout}
    UPGRADES.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))


def restore_cluster_files(saved):
    for path in CLUSTER_DIR.rglob("*"):
        if path.is_file() and path.relative_to(CLUSTER_DIR).as_posix() not in saved:
            path.unlink()
    for relative, content in saved.items():
        (CLUSTER_DIR / relative).parent.mkdir(parents=True, exist_ok=True)
        (CLUSTER_DIR / relative).write_bytes(content)


def upgrade_records(name):
    return double_state(name).get("upgrades", [])


def next_minor(version, minors):
    major, minor, _unused = (int(part) for part in version.lstrip("v").split("-")[0].split("."))
    return "%d.%d.0" % (major, minor + minors)


def refused_before_any_change(lab_runs, label, **overlay_vars):
    """A site.yml run that must fail naming talos_kubernetes_version, with nothing changed."""
    files, applies = cluster_files(), {name: len(double_state(name).get("applies", [])) for name in inventory_nodes()}
    upgrades_overlay(**overlay_vars)
    run = lab_runs.playbook(label, "site.yml")
    output = run.stdout + run.stderr
    assert run.returncode != 0 and "talos_kubernetes_version" in output, output[-4000:]
    assert cluster_files() == files
    assert {name: len(double_state(name).get("applies", [])) for name in inventory_nodes()} == applies
    say(lab_runs.request, "  refused: " + next(line.strip() for line in output.splitlines() if "talos_kubernetes_version" in line)[:300])
    return run


def uncordon_and_list(name):
    """Uncordon one Kubernetes node of the lab; every node's (Ready, unschedulable)."""
    sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.netboot.talos.plugins.module_utils.talos.api import kubernetes
    from ansible_collections.netboot.talos.plugins.module_utils.talos.day2 import drain

    api = kubernetes.KubeClient((CLUSTER_DIR / "kubeconfig").read_bytes())
    try:
        drain.uncordon(api, name)
        items = api.get("/api/v1/nodes")["items"]
    finally:
        api.close()
    return {item["metadata"]["name"]: (kubernetes.summarize(item)["status"] == "Ready", bool((item.get("spec") or {}).get("unschedulable")))
            for item in items}


def wait_every_node_up(timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(double_state(name)["stage"] == "configured" for name in inventory_nodes()):
            return
        time.sleep(0.5)
    raise AssertionError("not every node double is up again: %s" % {n: double_state(n)["stage"] for n in inventory_nodes()})


def node_rows(stdout, task):
    """The raw lines of a printed node table, by node name (OS-IMAGE holds a space)."""
    section = task_output(stdout, task)
    return {line.split()[0]: line for line in section.splitlines() if line.split() and line.split()[0] in inventory_nodes()}


def upgraded_order(stdout):
    return [line.split()[0] for line in printed_lines(stdout, UPGRADE_REPORT) if line.split() and line.split()[0] in inventory_nodes()]


def test_upgrades_talos_and_kubernetes_then_a_node_that_never_comes_back(lab_runs, api_lab):
    controlplane, worker = "lab-cp1", "lab-worker1"
    saved = cluster_files()
    recorded = json.loads(saved["contract.json"])["kubernetes_version"]
    bump = next_minor(recorded, 1)
    started = time.monotonic()
    try:
        # refused before any change, naming talos_kubernetes_version: a version the Talos does not run, two minors at once
        refused_before_any_change(lab_runs, "upgrades-kubernetes-unsupported", kubernetes_version=bump)
        refused_before_any_change(lab_runs, "upgrades-kubernetes-two-minors", talos_version=UPGRADE_TO,
                                  kubernetes_version=next_minor(recorded, 2))

        # --check lists each node's upgrade and changes nothing
        upgrades_overlay(talos_version=UPGRADE_TO)
        check = lab_runs.playbook("upgrades-talos-check", "site.yml", "--check")
        assert check.returncode == 0, (check.stdout + check.stderr)[-6000:]
        plan = {line.split()[0]: line for line in check.stdout.splitlines() if line.split() and line.split()[0] in inventory_nodes()
                and "upgrade v1.11.5 -> %s" % UPGRADE_TO in line}
        assert set(plan) == set(inventory_nodes()), check.stdout[-6000:]
        say(lab_runs.request, "  --check:\n    " + "\n    ".join(plan[name] for name in sorted(plan)))
        assert all(upgrade_records(name) == [] and "Upgrade" not in double_state(name)["calls"] for name in inventory_nodes())
        assert cluster_files() == saved

        # the real run: Talos node by node, the control plane first, then Kubernetes one minor up
        upgrades_overlay(talos_version=UPGRADE_TO, kubernetes_version=bump)
        run = lab_runs.playbook("upgrades-talos-kubernetes", "site.yml")
        assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
        report = [line for line in printed_lines(run.stdout, UPGRADE_REPORT) if line.split() and line.split()[0] in inventory_nodes()]
        say(lab_runs.request, "  upgrade report:\n    " + "\n    ".join(report))
        records = {name: upgrade_records(name) for name in inventory_nodes()}
        assert all(len(entries) == 1 and entries[0]["image"].endswith(":" + UPGRADE_TO) for entries in records.values()), records
        first, second = records[controlplane][0], records[worker][0]
        # one at a time: the worker was asked only once lab-cp1 was back
        assert first["requested_at"] < first["up_at"] < second["requested_at"] < second["up_at"], records
        say(lab_runs.request, "  order: %s (asked -> back %.1f s), then %s (%.1f s)" % (
            controlplane, first["up_at"] - first["requested_at"], worker, second["up_at"] - second["requested_at"]))
        assert upgraded_order(run.stdout) == [controlplane, worker]
        assert all(double_state(name)["version"] == UPGRADE_TO for name in inventory_nodes())
        rows = node_rows(run.stdout, "netboot.talos.talos_rollout : Show the Kubernetes nodes")
        say(lab_runs.request, "  after the Kubernetes upgrade:\n    " + "\n    ".join(rows[name] for name in sorted(rows)))
        assert set(rows) == set(inventory_nodes()) and all(row.split()[4] == "v" + bump for row in rows.values()), rows

        # the boot server follows in the same run: every node runs v1.12.0, so its profiles now serve that kernel
        profiles = " ".join(path.read_text() for path in Path(MATCHBOX_DATA, "profiles").glob("*.json"))
        assert "/%s/" % UPGRADE_TO in profiles, profiles

        # the next run changes nothing; its node table shows the new OS image and Kubernetes version on both
        again = lab_runs.playbook("upgrades-again", "site.yml")
        assert again.returncode == 0, (again.stdout + again.stderr)[-6000:]
        hosts = recap(again.stdout)
        say(lab_runs.request, "  " + "; ".join("%s changed=%d" % (host, counts["changed"]) for host, counts in hosts.items()))
        assert all(counts["changed"] == 0 and counts["failed"] == 0 for counts in hosts.values()), hosts
        rows = node_rows(again.stdout, "netboot.talos.talos_cluster : Show the nodes")
        assert set(rows) == set(inventory_nodes()), rows
        assert all(row.split()[4] == "v" + bump and "Talos (%s)" % UPGRADE_TO in row for row in rows.values()), rows
        assert {name: len(upgrade_records(name)) for name in inventory_nodes()} == {name: 1 for name in inventory_nodes()}

        # a node that never comes back: the rollout stops after the timeout, naming it; the worker is untouched
        flag = LAB_DIR / "nodes" / controlplane / "upgrade-stays-down"
        flag.touch()
        upgrades_overlay(talos_version=NEVER_BACK_TO, kubernetes_version=bump, upgrade_timeout=UPGRADE_TIMEOUT)
        stuck = lab_runs.playbook("upgrades-never-back", "playbooks/converge.yml")
        output = stuck.stdout + stuck.stderr
        assert stuck.returncode != 0, output[-6000:]
        message = next(line for line in output.splitlines() if "upgrade stopped" in line)
        say(lab_runs.request, "  " + message.strip()[:600])
        assert re.search(r"lab-cp1 \(%s\) failed at stage 'coming back': still no answer after %d(\.0)?s; left cordoned"
                         % (re.escape(inventory_nodes()[controlplane]["ip"]), UPGRADE_TIMEOUT), output), output[-4000:]
        assert "not touched: %s" % worker in output, output[-4000:]
        assert len(upgrade_records(controlplane)) == 2 and len(upgrade_records(worker)) == 1
        assert double_state(worker)["calls"].get("Upgrade") == 1 and double_state(worker)["version"] == UPGRADE_TO

        # undo the fault: lab-cp1 comes back on the new version, and a re-run resumes with the worker
        flag.unlink()
        wait_every_node_up()
        resumed = lab_runs.playbook("upgrades-resumed", "playbooks/converge.yml")
        assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-6000:]
        assert upgraded_order(resumed.stdout) == [worker]
        assert all(double_state(name)["version"] == NEVER_BACK_TO for name in inventory_nodes())
        # lab-cp1 stayed cordoned (its upgrade failed after it started): the operator uncordons it
        kube_nodes = uncordon_and_list(controlplane)
        assert kube_nodes == {name: (True, False) for name in inventory_nodes()}, kube_nodes
        say(lab_runs.request, "  upgrades section: %.0f s" % (time.monotonic() - started))
    finally:
        (LAB_DIR / "nodes" / controlplane / "upgrade-stays-down").unlink(missing_ok=True)
        UPGRADES.unlink(missing_ok=True)
        restore_cluster_files(saved)


# ------------------------------------------------------------------------------------------ teardown

def test_lab_down_leaves_nothing(lab_runs, api_lab):
    run = lab_runs.down()
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert leftovers() == []
    again = lab_runs.down()  # safe when nothing is up
    assert again.returncode == 0 and recap(again.stdout)["localhost"]["changed"] == 0, again.stdout[-3000:]
