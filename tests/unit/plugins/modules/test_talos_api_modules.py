"""talos_info, talos_bootstrap, talos_kubeconfig, talos_apply_config, talos_reset and kubernetes_nodes,
through Ansible, against the Talos node doubles and the kube-API double on 127.0.6.x."""

from __future__ import annotations

import base64
import stat
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "talos_node"
sys.path.insert(0, str(FIXTURES))

import doubles  # noqa: E402
import testpki  # noqa: E402

from ansible_runner import local_play, wait_for_module  # noqa: E402

CP, W1, W2 = "127.0.6.1", "127.0.6.2", "127.0.6.3"
NODES = [
    {"name": "cp1", "role": "controlplane", "ip": CP},
    {"name": "w1", "role": "worker", "ip": W1},
    {"name": "w2", "role": "worker", "ip": W2},
]


@pytest.fixture
def cluster(tmp_path):
    made = doubles.Cluster(tmp_path, NODES)
    yield made
    made.stop()


def task(module, name=None, **args):
    return {"name": name or module, "netboot.talos.%s" % module: args}


def test_info_reports_each_stage(cluster, run_playbook):
    cluster.start("cp1")
    cluster.start("w1", maintenance=True)  # w2 never starts
    run = run_playbook(local_play([task("talos_info", talosconfig=str(cluster.talosconfig), nodes=[CP, W1, W2])]))
    assert run.rc == 0, run.stdout
    nodes = run.task("talos_info")["result"]["nodes"]
    assert nodes[CP]["stage"] == "up" and nodes[CP]["version"] == "v1.11.5"
    assert nodes[W1]["stage"] == "maintenance" and nodes[W1]["version"] is None
    assert nodes[W2]["stage"] == "down"
    assert run.changed == 0


def test_info_without_talosconfig_tells_maintenance_from_down(cluster, run_playbook):
    cluster.start("w1", maintenance=True)
    run = run_playbook(local_play([task("talos_info", nodes=[W1, W2])]))
    nodes = run.task("talos_info")["result"]["nodes"]
    assert (nodes[W1]["stage"], nodes[W2]["stage"]) == ("maintenance", "down")


def test_wait_notices_a_node_coming_up_and_fails_per_node_on_timeout(cluster, run_playbook, tmp_path):
    cluster.start("cp1")
    started = {}

    def late_start():
        wait_for_module("talos_info", tmp_path)
        time.sleep(1)
        cluster.start("w1")
        started["at"] = time.time()

    thread = threading.Thread(target=late_start)
    thread.start()
    run = run_playbook(local_play([task("talos_info", talosconfig=str(cluster.talosconfig), nodes=[CP, W1], wait_for="up", timeout=30)]))
    thread.join()
    assert run.rc == 0, run.stdout
    w1 = run.task("talos_info")["result"]["nodes"][W1]
    assert w1["reached"] and [stage for _, stage in w1["history"]] == ["down", "up"]
    print("\ndetection latency: node double listening -> wait noticed it: %.2fs" % (w1["reached_at"] - started["at"]))

    run = run_playbook(local_play([task("talos_info", talosconfig=str(cluster.talosconfig), nodes=[CP, W2], wait_for="up", timeout=2)]))
    result = run.task("talos_info")["result"]
    assert run.rc != 0 and result["failed_nodes"] == [W2]
    assert "%s is no answer" % W2 in result["msg"] and CP not in result["msg"].split(":", 1)[1]


def test_bootstrap_retries_then_is_done_once(cluster, run_playbook):
    cluster.start("cp1", extra=["--bootstrap-refusals", "2"])
    play = local_play([task("talos_bootstrap", talosconfig=str(cluster.talosconfig), node=CP, interval=0.2, timeout=30)])
    first = run_playbook(play)
    assert first.rc == 0, first.stdout
    result = first.task("talos_bootstrap")["result"]
    assert result["changed"] and result["attempts"] == 3  # twice FailedPrecondition, then done
    calls = cluster.doubles["cp1"].calls("Bootstrap")
    assert calls == 3

    second = run_playbook(play)
    assert second.rc == 0 and second.changed == 0
    assert cluster.doubles["cp1"].calls("Bootstrap") == calls  # no second Bootstrap reached the node
    assert "etcd already has members" in second.task("talos_bootstrap")["result"]["reason"]


def test_bootstrap_check_mode_sends_nothing(cluster, run_playbook):
    cluster.start("cp1")
    run = run_playbook(local_play([task("talos_bootstrap", talosconfig=str(cluster.talosconfig), node=CP)]), check=True)
    assert run.rc == 0 and run.changed == 1
    assert cluster.doubles["cp1"].calls("Bootstrap") == 0


def test_bootstrap_timeout_reports_the_node_reason(cluster, run_playbook):
    cluster.start("w1")
    run = run_playbook(local_play([task("talos_bootstrap", talosconfig=str(cluster.talosconfig), node=W1, interval=0.5, timeout=1)]))
    result = run.task("talos_bootstrap")["result"]
    assert run.rc != 0 and result["error"] == "FailedPrecondition"
    assert "bootstrap can only be performed on a control plane node" in result["msg"]


def test_kubeconfig_is_private_and_kept_while_valid(cluster, run_playbook, tmp_path):
    cluster.start("cp1")
    dest = tmp_path / "kubeconfig"
    play = local_play([task("talos_kubeconfig", talosconfig=str(cluster.talosconfig), node=CP, dest=str(dest))])

    check = run_playbook(play, check=True)
    assert check.changed == 1 and not dest.exists()

    first = run_playbook(play, diff=True)
    assert first.rc == 0 and first.changed == 1, first.stdout
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    content = dest.read_bytes()
    config = yaml.safe_load(content)
    assert config["clusters"][0]["cluster"]["server"] == "https://%s:6443" % CP
    assert base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]) == cluster.secrets["k8s"][0]
    key = config["users"][0]["user"]["client-key-data"]
    assert key not in first.stdout and key not in str(first.results)

    second = run_playbook(play)
    assert second.rc == 0 and second.changed == 0
    assert dest.read_bytes() == content
    assert cluster.doubles["cp1"].calls("Kubeconfig") == 3  # fetched every run, kept when it matters not

    # A kubeconfig of another cluster at dest is replaced.
    other = testpki.new_secrets()
    config["clusters"][0]["cluster"]["certificate-authority-data"] = testpki.b64(other["k8s"][0])
    dest.write_text(yaml.safe_dump(config))
    third = run_playbook(play)
    assert third.changed == 1 and dest.read_bytes() != content
    assert base64.b64decode(yaml.safe_load(dest.read_bytes())["clusters"][0]["cluster"]["certificate-authority-data"]) == cluster.secrets["k8s"][0]


def test_apply_in_maintenance_then_node_is_up_with_mtls(cluster, run_playbook):
    cluster.start("w1", maintenance=True)
    apply = task("talos_apply_config", talosconfig=str(cluster.talosconfig), node=W1, src=str(cluster.config("w1")))
    dry = run_playbook(local_play([dict(apply, **{"netboot.talos.talos_apply_config": dict(apply["netboot.talos.talos_apply_config"], dry_run=True)})]))
    assert dry.rc == 0 and dry.changed == 1
    assert cluster.doubles["w1"].state["stage"] == "maintenance" and not cluster.doubles["w1"].state.get("applied")

    first = run_playbook(local_play([apply, task("talos_info", talosconfig=str(cluster.talosconfig), nodes=[W1], wait_for="up", timeout=20)]))
    assert first.rc == 0, first.stdout
    assert first.task("talos_apply_config")["result"]["connection"] == "maintenance"
    assert first.task("talos_info")["result"]["nodes"][W1]["stage"] == "up"
    assert cluster.doubles["w1"].state["applied"] == 1

    second = run_playbook(local_play([apply]))
    result = second.task("talos_apply_config")["result"]
    assert second.rc == 0 and second.changed == 0 and result["connection"] == "secure"
    assert cluster.doubles["w1"].state["applied"] == 1


def test_apply_with_pinned_fingerprint(cluster, run_playbook):
    cluster.start("w1", maintenance=True)
    pin = (cluster.doubles["w1"].state_dir / "fingerprint").read_text().strip()
    base = dict(node=W1, src=str(cluster.config("w1")), connection="maintenance", dry_run=True)
    wrong = run_playbook(local_play([task("talos_apply_config", fingerprint="x" + pin[1:], **base)]))
    assert wrong.rc != 0 and "does not match the pinned" in wrong.task("talos_apply_config")["result"]["msg"]
    right = run_playbook(local_play([task("talos_apply_config", fingerprint=pin, **base)]))
    assert right.rc == 0, right.stdout


def test_apply_rejects_invalid_config(cluster, run_playbook, tmp_path):
    cluster.start("w1", maintenance=True)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v1alpha1\nmachine: {}\n")
    run = run_playbook(local_play([task("talos_apply_config", node=W1, src=str(bad))]))
    result = run.task("talos_apply_config")["result"]
    assert run.rc != 0 and result["error"] == "InvalidArgument"


def test_reset_wipes_and_returns_to_maintenance(cluster, run_playbook):
    cluster.start("w1")
    play = local_play([task("talos_reset", talosconfig=str(cluster.talosconfig), node=W1, timeout=20)])
    check = run_playbook(play, check=True)
    assert check.changed == 1 and cluster.doubles["w1"].state["resets"] == []

    first = run_playbook(play)
    assert first.rc == 0 and first.changed == 1, first.stdout
    assert cluster.doubles["w1"].state["resets"] == [{"graceful": True, "reboot": True, "wipe": ["STATE", "EPHEMERAL"]}]
    assert first.task("talos_reset")["result"]["stage_after"] in ("down", "maintenance")

    doubles.wait_port(W1, 50000)
    second = run_playbook(play)
    assert second.rc == 0 and second.changed == 0
    assert len(cluster.doubles["w1"].state["resets"]) == 1


def _talosconfig(tmp_path, secrets, cluster, **kwargs):
    path = tmp_path / "other-talosconfig"
    path.write_text(testpki.talosconfig(secrets, cluster.name, **kwargs))
    return str(path)


def test_client_certificate_from_another_ca_is_a_clear_error(cluster, run_playbook, tmp_path):
    cluster.start("cp1")
    # The node's CA is trusted, but the client certificate comes from a foreign OS CA.
    talosconfig = _talosconfig(tmp_path, testpki.new_secrets(), cluster, ca=cluster.secrets["os"][0])
    run = run_playbook(local_play([task("talos_bootstrap", talosconfig=talosconfig, node=CP, timeout=1)]))
    result = run.task("talos_bootstrap")["result"]
    assert run.rc != 0 and result["error"] == "TlsError"
    assert "rejected the client certificate" in result["msg"] and CP in result["msg"]
    assert cluster.doubles["cp1"].calls("Bootstrap") == 0


def test_node_from_another_cluster_is_a_clear_error(cluster, run_playbook, tmp_path):
    cluster.start("cp1")
    talosconfig = _talosconfig(tmp_path, testpki.new_secrets(), cluster)
    run = run_playbook(local_play([task("talos_info", talosconfig=talosconfig, nodes=[CP])]))
    node = run.task("talos_info")["result"]["nodes"][CP]
    assert node["stage"] == "error" and "not issued by the talosconfig's OS CA" in node["error"]


def test_reader_role_is_denied_admin_calls(cluster, run_playbook, tmp_path):
    cluster.start("cp1")
    talosconfig = _talosconfig(tmp_path, cluster.secrets, cluster, organizations=("os:reader",))
    info = run_playbook(local_play([task("talos_info", talosconfig=talosconfig, nodes=[CP])]))
    assert info.task("talos_info")["result"]["nodes"][CP]["stage"] == "up"  # Version is allowed to readers
    run = run_playbook(local_play([task("talos_bootstrap", talosconfig=talosconfig, node=CP, timeout=1)]))
    result = run.task("talos_bootstrap")["result"]
    assert run.rc != 0 and result["error"] == "PermissionDenied" and "os:admin" in result["msg"]
    assert cluster.doubles["cp1"].state["bootstrapped"] is False


def test_kubernetes_nodes_waits_for_ready_and_prints_the_table(cluster, run_playbook, tmp_path):
    for node in NODES:
        cluster.start(node["name"])
    cluster.start_kube()
    dest = tmp_path / "kubeconfig"
    run = run_playbook(local_play([
        task("talos_kubeconfig", talosconfig=str(cluster.talosconfig), node=CP, dest=str(dest)),
        task("kubernetes_nodes", "not ready yet", kubeconfig=str(dest), names=["cp1"], timeout=1),
    ]))
    assert "cp1 registered (NotReady)" in run.task("not ready yet")["result"]["msg"]

    def bootstrap_later():
        time.sleep(1.5)
        run_playbook(local_play([task("talos_bootstrap", talosconfig=str(cluster.talosconfig), node=CP)]), workdir=tmp_path / "b")

    thread = threading.Thread(target=bootstrap_later)
    thread.start()
    run = run_playbook(local_play([task("kubernetes_nodes", kubeconfig=str(dest), names=["cp1", "w1", "w2"], timeout=30)]))
    thread.join()
    assert run.rc == 0, run.stdout
    result = run.task("kubernetes_nodes")["result"]
    assert result["table"][0].split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    rows = {row["name"]: row for row in result["nodes"]}
    assert rows["cp1"]["roles"] == "control-plane" and rows["w1"]["roles"] == "<none>"
    assert {row["status"] for row in rows.values()} == {"Ready"}
    assert rows["w2"]["internal_ip"] == W2 and rows["w2"]["os_image"] == "Talos (v1.11.5)"


def test_kubernetes_nodes_rejects_a_foreign_api_server(cluster, run_playbook, tmp_path):
    cluster.start("cp1")
    cluster.start_kube()
    dest = tmp_path / "kubeconfig"
    run_playbook(local_play([task("talos_kubeconfig", talosconfig=str(cluster.talosconfig), node=CP, dest=str(dest))]))
    config = yaml.safe_load(dest.read_text())
    config["clusters"][0]["cluster"]["certificate-authority-data"] = testpki.b64(testpki.new_secrets()["k8s"][0])
    dest.write_text(yaml.safe_dump(config))
    run = run_playbook(local_play([task("kubernetes_nodes", kubeconfig=str(dest), timeout=1)]))
    assert run.rc != 0 and "SSLError" in run.task("kubernetes_nodes")["result"]["msg"]
