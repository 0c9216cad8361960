"""talos_info, talos_bootstrap, talos_kubeconfig, talos_apply_config, talos_reset and kubernetes_nodes,
through Ansible, against the Talos node doubles and the kube-API double on 127.0.6.x."""

from __future__ import annotations

import base64
import re
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
    assert w1["reached"] and [stage for _unused, stage in w1["history"]] == ["down", "up"]
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


# ------------------------------------------------------------------ Talos API edge cases (through an endpoint)

def test_info_through_an_endpoint_reports_what_apid_relayed(cluster, run_playbook, tmp_path):
    cluster.start("cp1")
    cluster.start("w1")  # w2 is not running: the endpoint's apid cannot dial it
    info = task("talos_info", talosconfig=str(cluster.talosconfig), endpoint=CP, nodes=[W1, W2], fail_on_timeout=False)
    run = run_playbook(local_play([info]))
    assert run.rc == 0, run.stdout
    nodes = run.task("talos_info")["result"]["nodes"]
    assert nodes[W1]["stage"] == "up" and nodes[W1]["version"] == "v1.11.5"  # relayed by cp1's apid
    assert nodes[W2]["stage"] == "error", nodes[W2]
    assert nodes[W2]["stage_text"] == (
        'error: node %s (through endpoint %s:50000): rpc error: code = Unavailable desc = connection error: desc = '
        '"transport: Error while dialing: dial tcp %s:50000: connect: connection refused"' % (W2, CP, W2))

    # Not final: through the endpoint a node that cannot be reached yet is waited for.
    late = {}

    def start_w2():
        wait_for_module("talos_info", tmp_path / "wait")
        time.sleep(1)
        cluster.start("w2")
        late["at"] = time.time()

    thread = threading.Thread(target=start_w2)
    thread.start()
    wait = dict(info, **{"netboot.talos.talos_info": dict(info["netboot.talos.talos_info"], nodes=[W2], wait_for="up", timeout=30, fail_on_timeout=True)})
    run = run_playbook(local_play([wait]), workdir=tmp_path / "wait")
    thread.join()
    assert run.rc == 0, run.stdout
    assert [stage for _unused, stage in run.task("talos_info")["result"]["nodes"][W2]["history"]] == ["error", "up"]


@pytest.mark.parametrize("mode, words", [("staged", "staged"), ("no_reboot", "no-reboot")])
def test_maintenance_mode_refusal_is_reported_in_talos_words(cluster, run_playbook, mode, words):
    cluster.start("w1", maintenance=True)
    run = run_playbook(local_play([task("talos_apply_config", node=W1, src=str(cluster.config("w1")), connection="maintenance", mode=mode)]))
    result = run.task("talos_apply_config")["result"]
    assert run.rc != 0 and result["error"] == "MaintenanceMode" and result["grpc_code"] == 12
    assert result["msg"] == "node %s: apply configuration --mode='%s' is not supported in maintenance mode" % (W1, words)
    assert cluster.doubles["w1"].state["stage"] == "maintenance" and not cluster.doubles["w1"].state.get("applied")


# ------------------------------------------------------------------ talos_wait (action plugin, live lines)

def test_wait_refuses_bad_arguments_all_at_once(run_playbook, tmp_path):
    run = run_playbook(local_play([task("talos_wait", nodes=[{"name": "a", "ip": CP}, {"name": "a", "ip": W1}, {"name": "b"}],
                                        wait_for="up", interval=2, return_after=["c"], configs_dir=str(tmp_path))]))
    assert run.rc != 0
    msg = run.task("talos_wait")["result"]["msg"]
    for part in ("nodes: names must be unique (a)", "return_after, bootstrap: c not in nodes", "nodes: b without ip",
                 "interval: must be more than 0 and at most 1 second", "configs_dir: no config for a, b in %s" % tmp_path):
        assert part in msg, msg
    ready = run_playbook(local_play([task("talos_wait", nodes=[{"name": "a"}], wait_for="ready")]))
    assert ready.rc != 0 and "kubeconfig: required with wait_for=ready" in ready.task("talos_wait")["result"]["msg"]


@pytest.mark.parametrize("callback", ["ansible.builtin.default", "ansible.builtin.minimal", "ansible.builtin.oneline"])
def test_wait_prints_each_change_by_name_with_any_callback(cluster, run_playbook, tmp_path, callback):
    cluster.start("w1", maintenance=True)  # w2 never answers
    nodes = [{"name": "lab-worker1", "ip": W1}, {"name": "lab-worker2", "ip": W2}]
    run = run_playbook(local_play([task("talos_wait", nodes=nodes, wait_for="answering", timeout=2.5, progress_every=1,
                                        fail_on_timeout=False)]), env={"ANSIBLE_STDOUT_CALLBACK": callback})
    assert run.rc == 0, run.stdout
    print(run.stdout)
    assert re.search(r"^  lab-worker1  maintenance   0\.\d s$", run.stdout, re.M)
    assert re.search(r"^  lab-worker2  no answer   0\.\d s$", run.stdout, re.M)
    assert re.search(r"^  waiting [12] s: 1 of 2 answering; lab-worker2: no answer$", run.stdout, re.M)
    result = run.task("talos_wait")["result"]
    assert result["failed_nodes"] == ["lab-worker2"] and result["changed"] is False
    assert result["summary"][1] == "lab-worker2 (%s): no answer" % W2
    assert result["reason"] == "not answering after 2.5s: lab-worker2 (%s) is no answer" % W2


def test_wait_for_ready_prints_registered_then_ready(cluster, run_playbook, tmp_path):
    for node in NODES:
        cluster.start(node["name"])
    cluster.start_kube()
    dest = tmp_path / "kubeconfig"
    assert run_playbook(local_play([task("talos_kubeconfig", talosconfig=str(cluster.talosconfig), node=CP, dest=str(dest))])).rc == 0

    def bootstrap_later():
        time.sleep(2.5)
        run_playbook(local_play([task("talos_bootstrap", talosconfig=str(cluster.talosconfig), node=CP)]), workdir=tmp_path / "b")

    thread = threading.Thread(target=bootstrap_later)
    thread.start()
    run = run_playbook(local_play([task("talos_wait", kubeconfig=str(dest), nodes=NODES, wait_for="ready", timeout=30, progress_every=1)]))
    thread.join()
    assert run.rc == 0, run.stdout
    print(run.stdout)
    for name in ("cp1", "w1", "w2"):
        assert re.search(r"^  %s +registered   0\.\d s$" % name, run.stdout, re.M)
        assert re.search(r"^  %s +registered -> Ready   \d+\.\d s$" % name, run.stdout, re.M)
    assert re.search(r"^  waiting \d s: 0 of 3 Ready; cp1: registered; w1: registered; w2: registered$", run.stdout, re.M)
    result = run.task("talos_wait")["result"]
    assert result["table"][0].split()[:2] == ["NAME", "STATUS"] and result["failed_nodes"] == []
