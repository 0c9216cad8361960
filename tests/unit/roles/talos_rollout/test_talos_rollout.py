"""Day 2 through the playbooks: configs.yml renders, cluster.yml brings node doubles up (127.77.0.x),
then an edited host_vars file is planned (`--check --diff`) and rolled out by converge.yml."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "talos_node"
sys.path.insert(0, str(FIXTURES))

import doubles  # noqa: E402
from ansible_runner import REPO  # noqa: E402

NET = "127.77.0."
CLUSTER = {"talos_cluster_name": "demo", "talos_cluster_endpoint": "https://%s11:6443" % NET, "talos_version": "v1.11.5",
           "talos_network": NET + "0/24", "talos_install_disk": "/dev/sda", "talos_matchbox_url": "http://127.0.0.1:8080",
           "talos_cluster_wait_timeout": 30, "talos_cluster_ready_timeout": 30, "talos_rollout_poll_interval": 0.2,
           "talos_rollout_reboot_timeout": 20, "talos_rollout_etcd_timeout": 5, "talos_rollout_ready_timeout": 20}
SYSCTL = {"talos_sysctls": {"net.ipv4.ip_forward": "1"}}
LABEL = {"talos_node_labels": {"tier": "edge"}}
# machine.env is not among the fields Talos changes live: it needs a reboot.
REBOOT_PATCH = {"talos_patches": [{"machine": {"env": {"HTTPS_PROXY": "http://proxy.example:3128"}}}]}


def node(name, role, last):
    return {"name": name, "role": role, "ip": NET + str(last), "mac": "52:54:00:77:00:%02x" % last}


class Lab:
    """An inventory, its rendered cluster and node doubles for each node, in one directory."""

    def __init__(self, root, run_playbook, nodes):
        self.root, self.run_playbook, self.nodes = Path(root), run_playbook, nodes
        self.inventory = self.root / "inventory"
        (self.inventory / "host_vars").mkdir(parents=True)
        self.dir = self.root / "clusters" / "demo"
        self.host_vars = {n["name"]: {"talos_mac": n["mac"], "talos_ip": n["ip"]} for n in nodes}
        self.group_vars = dict(CLUSTER)
        self.write_inventory()
        self.doubles = {}
        self.kube = None

    def write_inventory(self):
        groups = {"controlplane": {"hosts": {}}, "workers": {"hosts": {}}}
        for entry in self.nodes:
            groups["controlplane" if entry["role"] == "controlplane" else "workers"]["hosts"][entry["name"]] = None
        hosts = {"all": {"vars": self.group_vars, "children": {"talos": {"children": groups}}}}
        (self.inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
        for name, variables in self.host_vars.items():
            (self.inventory / "host_vars" / ("%s.yml" % name)).write_text(yaml.safe_dump(variables))

    def set_vars(self, name, **variables):
        self.host_vars[name].update(variables)
        self.write_inventory()

    def play(self, *names, **kwargs):
        plays = [{"name": name, "ansible.builtin.import_playbook": str(REPO / "playbooks" / ("%s.yml" % name))} for name in names]
        return self.run_playbook(plays, inventory=self.inventory, workdir=self.root, **kwargs)

    def bring_up(self, extra=None):
        """configs.yml, a node double per node with its rendered config, cluster.yml; then the doubles
        restarted with the extra flags per node. An inventory brought up before in this process is
        copied instead (doubles.BROUGHT_UP): the same files, fresh state."""
        key = doubles.BROUGHT_UP.key(self.root, self.inventory)
        if not doubles.BROUGHT_UP.restore(key, self.root):
            first = self.play("configs")
            assert first.rc == 0, first.stdout
            self.start_doubles()
            up = self.play("cluster")
            assert up.rc == 0, up.stdout
            self.stop()
            doubles.BROUGHT_UP.save(key, self.root)
        self.start_doubles(extra)
        return self

    def start_doubles(self, extra=None):
        self.secrets = yaml.safe_load((self.dir / "secrets.yaml").read_text())
        os_key = base64.b64decode(self.secrets["certs"]["os"]["key"])
        for entry in self.nodes:
            double = doubles.NodeDouble(entry["ip"], self.root / "node-state" / entry["name"], os_ca_key=os_key)
            self.doubles[entry["name"]] = double.start(
                config=self.dir / "nodes" / ("%s.yaml" % entry["name"]), extra=(extra or {}).get(entry["name"], ()))
        cp = next(n for n in self.nodes if n["role"] == "controlplane")
        self.kube = doubles.KubeDouble(cp["ip"], self.dir / "nodes" / ("%s.yaml" % cp["name"]), self.root / "node-state").start()

    def restart(self, name, extra=()):
        self.doubles[name].stop()
        self.doubles[name].start(extra=extra)

    def stop(self):
        for double in self.doubles.values():
            double.stop()
        if self.kube:
            self.kube.stop()

    def applies(self):
        """Per node the modes of the applies that were not dry runs."""
        return {name: [a["mode"] for a in double.state.get("applies", [])] for name, double in self.doubles.items()}

    def secret_values(self):
        b = self.secrets
        return [b["trustdinfo"]["token"], b["secrets"]["bootstraptoken"], b["cluster"]["secret"], b["certs"]["os"]["key"],
                b["certs"]["k8s"]["key"], b["certs"]["os"]["crt"]]


@pytest.fixture
def lab(tmp_path, run_playbook, request):
    nodes = getattr(request, "param", None) or [node("cp1", "controlplane", 11), node("w1", "worker", 21), node("w2", "worker", 22)]
    made = Lab(tmp_path, run_playbook, nodes)
    yield made
    made.stop()


def plan_lines(run):
    """The printed plan table (print_text writes it verbatim)."""
    lines = run.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Plan for cluster"))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].strip() or lines[i].startswith(("TASK", "PLAY")))
    return lines[start:end]


def rows(run):
    return {line.split()[0]: line for line in plan_lines(run)[2:]}


def test_check_diff_shows_one_nodes_change_redacted_then_apply_needs_no_reboot(lab):
    lab.bring_up()
    lab.set_vars("w1", **SYSCTL, **LABEL)
    check = lab.play("configs", "cluster", "converge", check=True, diff=True)
    print(check.stdout)
    assert check.rc == 0, check.stdout
    table = rows(check)
    assert "apply without a reboot" in table["w1"]
    assert "no change" in table["cp1"] and "no change" in table["w2"]
    diff = check.task("Roll the changes out")["result"]["diff"]
    assert len(diff) == 1 and diff[0]["prepared"].startswith("w1 (127.77.0.21): apply without a reboot\n--- a\n+++ b\n")
    changed = [line for line in diff[0]["prepared"].splitlines() if line[:1] in "+-" and line[:3] not in ("---", "+++")]
    assert sorted(changed) == ['+        net.ipv4.ip_forward: "1"', "+        tier: edge", "+    nodeLabels:", "+    sysctls:"], diff
    for value in lab.secret_values():
        assert value not in check.stdout
    assert lab.applies() == {"cp1": [], "w1": [], "w2": []}
    assert not (lab.dir / "staged.json").exists()

    run = lab.play("configs", "converge")
    print(run.stdout)
    assert run.rc == 0, run.stdout
    assert lab.applies() == {"cp1": [], "w1": ["no_reboot"], "w2": []}
    assert lab.doubles["w1"].state.get("reboots", 0) == 0
    record = run.task("Roll the changes out")["result"]["records"]
    assert [r["name"] for r in record] == ["w1"]
    assert [s["stage"] for s in record[0]["stages"]] == ["apply", "runs the new config", "kubernetes ready"]

    again = lab.play("configs", "converge")
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert lab.applies() == {"cp1": [], "w1": ["no_reboot"], "w2": []}
    assert "0 of 3 nodes change" in plan_lines(again)[0]


def test_a_change_that_needs_a_reboot_reboots_and_waits_no_reboot_mode_refuses_it(lab):
    lab.bring_up()
    lab.set_vars("w2", **REBOOT_PATCH)
    assert lab.play("configs").rc == 0

    lab.group_vars["talos_cluster_apply_mode"] = "no_reboot"
    lab.write_inventory()
    refused = lab.play("converge")
    assert refused.rc != 0
    message = refused.task("Roll the changes out")["result"]["msg"]
    assert message.startswith("nothing applied; the plan is refused for:\nw2 (127.77.0.22): needs a reboot"), message
    assert "+    env:" in message and "HTTPS_PROXY" in message and "sysctls" not in message
    assert lab.applies() == {"cp1": [], "w1": [], "w2": []}

    del lab.group_vars["talos_cluster_apply_mode"]
    lab.write_inventory()
    run = lab.play("converge")
    print(run.stdout)
    assert run.rc == 0, run.stdout
    assert "apply with a reboot" in rows(run)["w2"]
    assert lab.applies() == {"cp1": [], "w1": [], "w2": ["reboot"]}
    assert lab.doubles["w2"].state["reboots"] == 1
    stages = run.task("Roll the changes out")["result"]["records"][0]["stages"]
    assert [s["stage"] for s in stages] == [
        "apply", "reboot: going down", "reboot: coming back", "runs the new config", "kubernetes ready"]
    assert "HTTPS_PROXY" in (lab.doubles["w2"].state_dir / "config.yaml").read_text()

    again = lab.play("converge")
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert lab.doubles["w2"].state["reboots"] == 1


FIVE = [node("cp1", "controlplane", 11), node("cp2", "controlplane", 12), node("w1", "worker", 21), node("w2", "worker", 22),
        node("w3", "worker", 23)]


@pytest.mark.parametrize("lab", [FIVE], indirect=True)
def test_control_planes_one_at_a_time_workers_in_batches_first_failure_stops(lab):
    lab.bring_up(extra={"w2": ["--apply-fails", "failed to persist the config: disk full"]})
    lab.group_vars.update(talos_cluster_rolling_batch="50%", **SYSCTL)  # 50% of 3 workers: 1 at a time
    lab.write_inventory()
    run = lab.play("configs", "converge")
    print(run.stdout)
    assert run.rc != 0
    result = run.task("Roll the changes out")["result"]
    assert result["steps"] == [["cp1"], ["cp2"], ["w1"], ["w2"], ["w3"]]
    assert result["msg"].startswith("rollout stopped: w2 (127.77.0.22) failed at stage 'apply': ")
    assert "disk full" in result["msg"] and "applied: cp1, cp2, w1; not touched: w3" in result["msg"]
    assert [[s["stage"] for s in r["stages"]] for r in result["records"]][0] == [
        "etcd healthy before", "apply", "runs the new config", "etcd healthy after", "kubernetes ready"]
    assert lab.applies() == {"cp1": ["no_reboot"], "cp2": ["no_reboot"], "w1": ["no_reboot"], "w2": [], "w3": []}

    lab.restart("w2")
    lab.group_vars["talos_cluster_rolling_batch"] = 2
    lab.write_inventory()
    rerun = lab.play("converge")
    assert rerun.rc == 0, rerun.stdout
    assert rerun.task("Roll the changes out")["result"]["steps"] == [["w2", "w3"]]
    assert lab.applies() == {"cp1": ["no_reboot"], "cp2": ["no_reboot"], "w1": ["no_reboot"], "w2": ["no_reboot"],
                             "w3": ["no_reboot"]}
    assert lab.play("converge").changed == 0


@pytest.mark.parametrize("lab", [FIVE[:2] + FIVE[2:3]], indirect=True)
def test_unhealthy_etcd_stops_before_the_control_plane_is_touched(lab):
    lab.bring_up(extra={"cp2": ["--etcd-errors", "NOSPACE alarm"]})
    lab.group_vars.update(SYSCTL)
    lab.write_inventory()
    run = lab.play("configs", "converge")
    assert run.rc != 0
    message = run.task("Roll the changes out")["result"]["msg"]
    assert message.startswith("rollout stopped: cp1 (127.77.0.11) failed at stage 'etcd healthy before': etcd not healthy"), message
    assert "etcd not healthy after 5.0s: cp2: etcd reports NOSPACE alarm\n" in message and "not touched: cp2, w1" in message
    assert lab.applies() == {"cp1": [], "cp2": [], "w1": []}


def test_a_node_that_does_not_come_back_stops_the_rollout(lab):
    lab.bring_up(extra={"w1": ["--reboot-stays-down"]})
    lab.group_vars.update(REBOOT_PATCH, talos_rollout_reboot_timeout=3)
    lab.write_inventory()
    run = lab.play("configs", "converge")
    assert run.rc != 0
    message = run.task("Roll the changes out")["result"]["msg"]
    assert message.startswith("rollout stopped: w1 (127.77.0.21) failed at stage 'reboot: coming back': still no answer"), message
    assert "not touched: w2" in message
    assert lab.applies() == {"cp1": ["reboot"], "w1": ["reboot"], "w2": []}


def test_down_and_maintenance_nodes_are_listed_and_skipped(lab):
    lab.bring_up()
    lab.doubles["w1"].stop()
    lab.doubles["w2"].stop()
    lab.doubles["w2"].start(maintenance=True)
    run = lab.play("converge", check=True, diff=True)
    assert run.rc == 0, run.stdout
    table = rows(run)
    assert "down" in table["w1"].split() and "skipped: no answer" in table["w1"]
    assert "maintenance" in table["w2"].split() and "skipped: maintenance mode (no config yet)" in table["w2"]
    assert "no change" in table["cp1"]


# talos_cluster_apply_mode, the sysctl value it applies, what reaches the node, reboots, the value the node runs after.
MODES = [
    ("auto", "1", "no_reboot", 0, "1"),
    ("reboot", "2", "reboot", 1, "2"),
    ("staged", "3", "staged", 1, "2"),  # stored for the next boot; it keeps running "2"
    ("no_reboot", "4", "no_reboot", 1, "4"),
]


@pytest.mark.parametrize("lab", [FIVE[:1] + FIVE[2:3]], indirect=True)
def test_each_apply_mode_reaches_the_node_and_a_second_run_changes_nothing(lab):
    lab.bring_up()
    for mode, value, applied, reboots, running in MODES:
        lab.group_vars["talos_cluster_apply_mode"] = mode
        lab.set_vars("w1", talos_sysctls={"net.core.somaxconn": value})
        run = lab.play("configs", "converge")
        assert run.rc == 0, (mode, run.stdout)
        assert lab.applies()["w1"][-1] == applied, mode
        state = lab.doubles["w1"].state
        assert state.get("reboots", 0) == reboots, mode
        assert 'net.core.somaxconn: "%s"' % running in (lab.doubles["w1"].state_dir / "config.yaml").read_text(), mode
        again = lab.play("converge")
        assert again.rc == 0 and again.changed == 0, (mode, again.stdout)
        assert len(lab.applies()["w1"]) == MODES.index((mode, value, applied, reboots, running)) + 1
        assert ("staged, waits for the next reboot" in rows(again)["w1"]) == (mode == "staged"), again.stdout


def test_secrets_in_the_running_config_never_show(lab):
    lab.bring_up()
    running = lab.doubles["w1"].state_dir / "config.yaml"
    old_token = "oldtkn.0123456789abcdef"
    text = running.read_text().replace(lab.secrets["trustdinfo"]["token"], old_token, 1)
    running.write_text(text)
    run = lab.play("converge", check=True, diff=True)
    assert run.rc == 0, run.stdout
    print(run.stdout)
    assert "apply with a reboot" in rows(run)["w1"]  # machine.token cannot change live
    prepared = run.task("Roll the changes out")["result"]["diff"][0]["prepared"]
    assert "-    token: <redacted>\n+    token: <redacted>\n" in prepared
    for value in lab.secret_values() + [old_token]:
        assert value not in run.stdout
