"""The talos_cluster role end to end on three Talos node doubles and the kube-API double (127.0.6.x)."""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "talos_node"
sys.path.insert(0, str(FIXTURES))

import doubles  # noqa: E402

NODES = [
    {"name": "cp1", "role": "controlplane", "ip": "127.0.6.11"},
    {"name": "w1", "role": "worker", "ip": "127.0.6.12"},
    {"name": "w2", "role": "worker", "ip": "127.0.6.13"},
]


@pytest.fixture
def cluster(tmp_path):
    made = doubles.Cluster(tmp_path, NODES)
    yield made
    made.stop()


def role_play(cluster, **variables):
    variables = dict(dict(talos_cluster_name=cluster.name, talos_cluster_dir=str(cluster.dir), talos_cluster_nodes=NODES,
                          talos_cluster_wait_timeout=60, talos_cluster_ready_timeout=30), **variables)
    return [{"name": "cluster", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "roles": [{"role": "netboot.talos.talos_cluster", "vars": variables}]}]


def when(condition, action, timeout=120):
    """Run action() in a thread once condition() holds; returns a dict that gets the time it ran."""
    done = {}

    def run():
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        action()
        done["at"] = time.time()

    done["thread"] = threading.Thread(target=run)
    done["thread"].start()
    return done


def state(double):
    try:
        return double.state
    except (OSError, ValueError):
        return {}


def probed(double):
    """The wait has polled this node double (a Version or Disks call reached it)."""
    calls = state(double).get("calls", {})
    return calls.get("Version", 0) + calls.get("Disks", 0) > 0


def printed(run, task, title):
    """The lines print_text showed for a task: from the title to the next blank line."""
    section = run.stdout.split("TASK [netboot.talos.talos_cluster : %s]" % task)[1]
    lines = section.split("\n" + title + "\n", 1)[1].split("\nok: [", 1)[0].split("\n\n", 1)[0].splitlines()
    print("\n" + title + "\n" + "\n".join(lines))
    return lines


def live_lines(run):
    """The progress lines the waits printed (two-space indented, ending in seconds)."""
    lines = [line for line in run.stdout.splitlines() if re.match(r"^  \S.* \d+\.\d s$|^  waiting \d+ s: ", line)]
    print("\n" + "\n".join(lines))
    return lines


def check_table(run):
    table = printed(run, "Show the nodes", "Kubernetes nodes")
    assert table[0].split()[:7] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert sorted(rows) == ["cp1", "w1", "w2"]
    assert {row[1] for row in rows.values()} == {"Ready"}
    assert rows["cp1"][2] == "control-plane" and rows["w2"][5] == "127.0.6.13"


@pytest.mark.parametrize("delivery", ["http", "api"])
def test_role_brings_the_cluster_up_once(cluster, run_playbook, delivery):
    maintenance = delivery == "api"
    doubles = cluster.doubles
    cluster.start("w1", maintenance=maintenance)
    cp1 = when(lambda: probed(doubles["w1"]), lambda: (time.sleep(1), cluster.start("cp1", maintenance=maintenance)))
    # w2 only boots once etcd is bootstrapped: the role must not wait for every node first.
    w2 = when(lambda: state(doubles["cp1"]).get("bootstrapped"), lambda: cluster.start("w2", maintenance=maintenance))
    cluster.start_kube()
    first = run_playbook(role_play(cluster, talos_cluster_config_delivery=delivery))
    cp1["thread"].join()
    w2["thread"].join()
    assert first.rc == 0, first.stdout
    lines = live_lines(first)
    check_table(first)
    printed(first, "Show each node's stage", "Talos nodes")

    cp1_state = doubles["cp1"].state
    api_up = [period for period in cp1_state["served"] if period["stage"] == "configured"][-1]["since"]
    wait = first.task("Wait until the first control plane is up and bootstrap etcd on it at once")["result"]
    print("cp1's API up -> its bootstrap reached it: %.2fs" % (cp1_state["bootstrapped_at"] - api_up))
    assert api_up < cp1_state["bootstrapped_at"] < w2["at"]
    assert doubles["cp1"].calls("Bootstrap") == 1 and (cluster.dir / "kubeconfig").stat().st_mode & 0o777 == 0o600
    # One line per node per stage change, by name, as it happened: w2 came up after the bootstrap.
    up = {name: next(i for i, line in enumerate(lines) if re.match(r"  %s +(.* -> )?configured and up +\d+\.\d s$" % name, line))
          for name in ("cp1", "w1", "w2")}
    stdout = first.stdout
    assert stdout.index(lines[up["cp1"]]) < stdout.index("  cp1  etcd: bootstrapped") < stdout.index(lines[up["w2"]])
    assert wait["changed"] and wait["bootstrap"] == {"node": "cp1", "changed": True, "reason": "bootstrapped", "attempts": 1}
    assert re.match(r"  cp1 +(no answer|maintenance) -> ", lines[up["cp1"]])  # seen coming up while the wait ran
    assert all(any(re.match(r"  %s +(.* -> )?Ready +\d+\.\d s$" % n["name"], line) for line in lines) for n in NODES)
    if maintenance:
        assert [doubles[n["name"]].state.get("applied") for n in NODES] == [1, 1, 1]
        assert all(any(re.match(r"  %s +config applied in maintenance mode" % n["name"], line) for line in lines) for n in NODES)

    second = run_playbook(role_play(cluster, talos_cluster_config_delivery=delivery))
    assert second.rc == 0 and second.changed == 0, second.stdout
    print("second run recap:", second.stdout.strip().splitlines()[-1])
    check_table(second)
    assert doubles["cp1"].calls("Bootstrap") == 1
    if maintenance:
        assert [doubles[n["name"]].state.get("applied") for n in NODES] == [1, 1, 1]


def test_role_fails_per_node_with_its_stage(cluster, run_playbook):
    cluster.start("cp1")
    cluster.start("w1", maintenance=True)  # http delivery but no config: stuck in maintenance
    run = run_playbook(role_play(cluster, talos_cluster_wait_timeout=3, talos_cluster_progress_every=1))
    assert run.rc != 0
    assert "w1 (127.0.6.12): maintenance mode (no config yet) after 3" in run.stdout
    assert "w2 (127.0.6.13): no answer after 3" in run.stdout
    assert "ok: [localhost] => (item=cp1)" in run.stdout and "failed: [localhost] (item=cp1)" not in run.stdout
    assert "failed: [localhost] (item=w1)" in run.stdout and "failed: [localhost] (item=w2)" in run.stdout
    # The first control plane is up: etcd is bootstrapped although the workers never make it.
    assert cluster.doubles["cp1"].calls("Bootstrap") == 1
    assert re.search(r"^  waiting \d+ s: 1 of 3 up; w1: maintenance; w2: no answer$", run.stdout, re.M), live_lines(run)
    summary = printed(run, "Show each node's stage", "Talos nodes")
    assert summary[0].startswith("cp1 (127.0.6.11): configured and up v1.11.5 after ")
    assert summary[1:] == ["w1 (127.0.6.12): maintenance mode (no config yet)", "w2 (127.0.6.13): no answer"]


def test_role_without_its_first_control_plane_bootstraps_nothing(cluster, run_playbook):
    cluster.start("w1")
    run = run_playbook(role_play(cluster, talos_cluster_wait_timeout=2))
    assert run.rc != 0
    assert "not up after 2.0s: cp1 (127.0.6.11) is no answer" in run.stdout
    assert "etcd:" not in run.stdout and "TASK [netboot.talos.talos_cluster : Fetch the kubeconfig]" not in run.stdout


def reprovision_play(cluster, names, **variables):
    play = role_play(cluster, talos_cluster_reprovision=names, **variables)
    role = play[0].pop("roles")[0]
    play[0]["tasks"] = [{"name": "reprovision", "ansible.builtin.include_role": {"name": role["role"], "tasks_from": "reprovision"},
                         "vars": role["vars"]}]
    return play


def test_reprovision_resets_a_node_and_brings_it_back(cluster, run_playbook):
    for node in NODES:
        cluster.start(node["name"], maintenance=True)
    cluster.start_kube()
    assert run_playbook(role_play(cluster, talos_cluster_config_delivery="api")).rc == 0

    unknown = run_playbook(reprovision_play(cluster, ["w9"], talos_cluster_config_delivery="api"))
    assert unknown.rc != 0 and "w9" in unknown.stdout
    assert cluster.doubles["w1"].state["resets"] == []

    run = run_playbook(reprovision_play(cluster, ["w1"], talos_cluster_config_delivery="api"))
    assert run.rc == 0, run.stdout
    check_table(run)
    assert [len(cluster.doubles[n["name"]].state["resets"]) for n in NODES] == [0, 1, 0]
    assert [cluster.doubles[n["name"]].state["applied"] for n in NODES] == [1, 2, 1]
    assert cluster.doubles["cp1"].calls("Bootstrap") == 1
