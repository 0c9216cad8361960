"""The talos_cluster role end to end on three Talos node doubles and the kube-API double (127.0.6.x)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "talos_node"
sys.path.insert(0, str(FIXTURES))

import doubles  # noqa: E402
from ansible_runner import wait_for_module  # noqa: E402

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


def start_late(cluster, name, workdir, **kwargs):
    """Start a node double once the wait is polling; returns a dict that gets the start time."""
    started = {}

    def run():
        wait_for_module("talos_info", workdir)
        time.sleep(1)
        cluster.start(name, **kwargs)
        started["at"] = time.time()

    thread = threading.Thread(target=run)
    thread.start()
    started["thread"] = thread
    return started


def check_table(run):
    table = run.task("Show the nodes")["result"]["msg"]
    print("\n" + "\n".join(table))
    assert table[0].split()[:7] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert sorted(rows) == ["cp1", "w1", "w2"]
    assert {row[1] for row in rows.values()} == {"Ready"}
    assert rows["cp1"][2] == "control-plane" and rows["w2"][5] == "127.0.6.13"


@pytest.mark.parametrize("delivery", ["http", "api"])
def test_role_brings_the_cluster_up_once(cluster, run_playbook, delivery, tmp_path):
    maintenance = delivery == "api"
    cluster.start("cp1", maintenance=maintenance)
    cluster.start("w1", maintenance=maintenance)
    late = start_late(cluster, "w2", tmp_path, maintenance=maintenance)
    cluster.start_kube()
    first = run_playbook(role_play(cluster, talos_cluster_config_delivery=delivery))
    late["thread"].join()
    assert first.rc == 0, first.stdout
    check_table(first)
    waited = first.task("Wait until every node is configured and up")["result"]["nodes"]["127.0.6.13"]
    if delivery == "http":
        print("detection latency (node double listening -> wait noticed it): %.2fs" % (waited["reached_at"] - late["at"]))
    else:
        answered = first.task("Wait until every node answers (maintenance mode or up)")["result"]["nodes"]["127.0.6.13"]
        print("detection latency (maintenance double listening -> wait noticed it): %.2fs" % (answered["reached_at"] - late["at"]))
        assert [cluster.doubles[n["name"]].state.get("applied") for n in NODES] == [1, 1, 1]
    bootstrap = first.task("Bootstrap etcd on the first control plane")["result"]
    print("bootstrap reached the node %.2fs after w2's API came up" % (cluster.doubles["cp1"].state["bootstrapped_at"] - late["at"]))
    assert bootstrap["changed"] and cluster.doubles["cp1"].calls("Bootstrap") == 1
    assert (cluster.dir / "kubeconfig").stat().st_mode & 0o777 == 0o600

    second = run_playbook(role_play(cluster, talos_cluster_config_delivery=delivery))
    assert second.rc == 0 and second.changed == 0, second.stdout
    print("second run recap:", second.stdout.strip().splitlines()[-1])
    check_table(second)
    assert cluster.doubles["cp1"].calls("Bootstrap") == 1
    if delivery == "api":
        assert [cluster.doubles[n["name"]].state.get("applied") for n in NODES] == [1, 1, 1]


def test_role_fails_per_node_with_its_stage(cluster, run_playbook):
    cluster.start("cp1")
    cluster.start("w1", maintenance=True)  # http delivery but no config: stuck in maintenance
    run = run_playbook(role_play(cluster, talos_cluster_wait_timeout=2))
    assert run.rc != 0
    assert "w1 (127.0.6.12): maintenance mode (no config yet) after 2" in run.stdout
    assert "w2 (127.0.6.13): no answer after 2" in run.stdout
    assert "ok: [localhost] => (item=cp1)" in run.stdout and "failed: [localhost] (item=cp1)" not in run.stdout
    assert "failed: [localhost] (item=w1)" in run.stdout and "failed: [localhost] (item=w2)" in run.stdout
    assert cluster.doubles["cp1"].calls("Bootstrap") == 0


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
