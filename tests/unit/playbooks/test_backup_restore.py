"""etcd backups and restore through the playbooks: configs.yml renders, cluster.yml brings node doubles up
(127.12.0.x), backup.yml saves what a control plane's EtcdSnapshot streams, restore.yml recovers reset
control planes from it (EtcdRecover, Bootstrap recover_etcd) and converge.yml saves one before a
control plane changes.

One cluster serves the whole module (bringing it up is the slow part); the tests run in file order,
the restore last but one, as it resets every control plane.
"""

from __future__ import annotations

import base64
import json
import math
import re
import stat
import sys
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "talos_node"
sys.path.insert(0, str(FIXTURES))

import doubles  # noqa: E402
import node as talos_node  # noqa: E402
from ansible_runner import REPO, ansible_playbook  # noqa: E402

NET = "127.12.0."
NODES = [("cp1", "controlplane", 11), ("cp2", "controlplane", 12), ("w1", "worker", 21)]
GROUP_VARS = {"talos_cluster_name": "demo", "talos_cluster_endpoint": "https://%s11:6443" % NET, "talos_version": "v1.11.5",
              "talos_network": NET + "0/24", "talos_install_disk": "/dev/sda", "talos_matchbox_url": "http://%s1:8080" % NET,
              "talos_cluster_wait_timeout": 30, "talos_cluster_ready_timeout": 30, "talos_rollout_poll_interval": 0.2,
              "talos_rollout_reboot_timeout": 20, "talos_rollout_etcd_timeout": 5, "talos_rollout_ready_timeout": 20}
SNAPSHOT = re.compile(r"^etcd-\d{8}T\d{6}Z\.db$")


class Cluster:
    def __init__(self, root):
        self.root = Path(root)
        self.inventory = self.root / "inventory"
        self.dir = self.root / "clusters" / "demo"
        self.backups = self.dir / "backups"
        self.host_vars = {name: {"talos_mac": "52:54:00:12:00:%02x" % last, "talos_ip": NET + str(last)} for name, _r, last in NODES}
        self.doubles, self.kube = {}, None
        self.write_inventory()

    def write_inventory(self):
        groups = {"controlplane": {"hosts": {}}, "workers": {"hosts": {}}}
        for name, role, _last in NODES:
            groups["controlplane" if role == "controlplane" else "workers"]["hosts"][name] = None
        (self.inventory / "host_vars").mkdir(parents=True, exist_ok=True)
        document = {"all": {"vars": GROUP_VARS, "children": {"talos": {"children": groups}}}}
        (self.inventory / "hosts.yml").write_text(yaml.safe_dump(document))
        for name, variables in self.host_vars.items():
            (self.inventory / "host_vars" / ("%s.yml" % name)).write_text(yaml.safe_dump(variables))

    def play(self, *names, **kwargs):
        plays = [{"name": name, "ansible.builtin.import_playbook": str(REPO / "playbooks" / ("%s.yml" % name))} for name in names]
        return ansible_playbook(plays, self.root, inventory=self.inventory, **kwargs)

    def config(self, name):
        return self.dir / "nodes" / ("%s.yaml" % name)

    def bring_up(self):
        assert self.play("configs").rc == 0
        os_key = base64.b64decode(yaml.safe_load((self.dir / "secrets.yaml").read_text())["certs"]["os"]["key"])
        for name, _role, last in NODES:
            double = doubles.NodeDouble(NET + str(last), self.root / "node-state" / name, os_ca_key=os_key)
            self.doubles[name] = double.start(config=self.config(name))
        self.kube = doubles.KubeDouble(NET + "11", self.config("cp1"), self.root / "node-state").start()
        up = self.play("cluster")
        assert up.rc == 0, up.stdout

    def restart(self, name, maintenance=False, config=False, extra=()):
        self.doubles[name].stop()
        self.doubles[name].start(config=self.config(name) if config else None, maintenance=maintenance, extra=extra)

    def stop(self):
        for double in self.doubles.values():
            double.stop()
        if self.kube:
            self.kube.stop()

    def etcd_data(self, name):
        return json.loads((self.doubles[name].state_dir / "etcd" / "data.json").read_text())

    def write_etcd(self, name, **keys):
        path = self.doubles[name].state_dir / "etcd" / "data.json"
        data = json.loads(path.read_text())
        data["keys"].update(keys)
        path.write_text(json.dumps(data))

    def saved(self):
        return sorted(p.name for p in self.backups.iterdir()) if self.backups.exists() else []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    made = Cluster(tmp_path_factory.mktemp("backup"))
    made.bring_up()
    made.write_etcd("cp1", **{"/registry/configmaps/default/marker": "kept by the backup"})
    yield made
    made.stop()


def backup_result(run):
    return run.task("Save an etcd snapshot")["result"]


def test_backup_is_what_the_node_served_0600_and_each_run_is_a_new_file(cluster):
    first = cluster.play("backup")
    assert first.rc == 0 and first.changed == 1, first.stdout
    [name] = cluster.saved()
    assert SNAPSHOT.match(name)
    path = cluster.backups / name
    assert path.read_bytes() == (cluster.doubles["cp1"].state_dir / "etcd-snapshot-served.db").read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert talos_node.read_snapshot(path.read_bytes())["keys"]["/registry/configmaps/default/marker"] == "kept by the backup"
    result = backup_result(first)
    assert result["node"] == "cp1" and result["size"] == path.stat().st_size and result["pruned"] == []
    assert "saved %s from cp1 (%d bytes, sha256 %s)" % (path, result["size"], result["sha256"]) in first.stdout

    second = cluster.play("backup")
    assert second.rc == 0 and second.changed == 1, second.stdout
    assert len(cluster.saved()) == 2 and name in cluster.saved()


def test_check_mode_writes_nothing(cluster):
    before = cluster.saved()
    run = cluster.play("backup", check=True)
    assert run.rc == 0, run.stdout
    result = backup_result(run)
    assert SNAPSHOT.match(Path(result["path"]).name) and "size" not in result
    assert "would save %s from cp1" % result["path"] in run.stdout
    assert cluster.saved() == before


def test_keep_the_newest_n(cluster):
    old = ["etcd-20250101T000000Z.db", "etcd-20250102T000000Z.db", "etcd-20250103T000000Z.db"]
    for name in old:
        (cluster.backups / name).write_bytes(b"old")
    (cluster.backups / "notes.txt").write_text("not a snapshot: never pruned")
    current = [n for n in cluster.saved() if SNAPSHOT.match(n) and n not in old]
    run = cluster.play("backup", extra_vars={"talos_cluster_backup_keep": 3})
    assert run.rc == 0, run.stdout
    new = backup_result(run)["path"].rsplit("/", 1)[1]
    assert cluster.saved() == sorted(current + [new, "notes.txt"])
    assert backup_result(run)["pruned"] == old
    assert "removed etcd-20250101T000000Z.db" in run.stdout

    refused = cluster.play("backup", extra_vars={"talos_cluster_backup_keep": 0})
    assert refused.rc != 0
    assert "talos_cluster_backup_keep: must be a whole number of at least 1, got 0" in refused.stdout
    assert cluster.saved() == sorted(current + [new, "notes.txt"])


@pytest.mark.parametrize("fault, words", [
    ("cut", "failed reading etcd snapshot: unexpected EOF"),
    ("truncate", "sha256 checksum not found (size"),
    ("empty", "the etcd snapshot stream was empty: nothing saved"),
])
def test_a_broken_stream_leaves_no_file(cluster, fault, words):
    before = cluster.saved()
    cluster.restart("cp1", extra=("--snapshot-fault", fault))
    try:
        run = cluster.play("backup")
    finally:
        cluster.restart("cp1")
    assert run.rc != 0
    assert words in backup_result(run)["msg"], run.stdout
    assert cluster.saved() == before  # neither the snapshot nor a temporary file


@pytest.mark.parametrize("content, words", [
    (None, "snapshot: name the snapshot file"),
    (b"", "is empty"),
    (b"\0" * 16 + b"not a bbolt database", "is not an etcd snapshot (no bbolt database header)"),
])
def test_restore_refuses_a_file_that_is_no_snapshot(cluster, tmp_path, content, words):
    extra = {}
    if content is not None:
        (tmp_path / "file.db").write_bytes(content)
        extra["snapshot"] = str(tmp_path / "file.db")
    run = cluster.play("restore", extra_vars=extra)
    assert run.rc != 0 and words in run.stdout, run.stdout
    assert cluster.doubles["cp1"].calls("EtcdRecover") == 0


def test_restore_refuses_on_a_running_cluster_naming_every_node(cluster):
    snapshot = cluster.backups / cluster.saved()[-2]
    run = cluster.play("restore", extra_vars={"snapshot": str(snapshot)})
    assert run.rc != 0
    message = run.task("Recover etcd from the snapshot")["result"]["msg"]
    assert message.startswith("restore refused, nothing changed:\n"), message
    for name, _role, last in NODES[:2]:
        assert "%s (talos_ip %s%d): etcd is running (members: cp1, cp2); restore.yml recovers only control planes " \
               "that were reset" % (name, NET, last) in message
    assert "w1" not in message
    assert all(cluster.doubles[n].calls("EtcdRecover") == 0 for n in ("cp1", "cp2"))


def test_restore_after_the_control_planes_were_reset(cluster):
    snapshot = cluster.backups / [n for n in cluster.saved() if SNAPSHOT.match(n)][-1]
    served = talos_node.read_snapshot(snapshot.read_bytes())
    cluster.write_etcd("cp1", **{"/registry/configmaps/default/later": "written after the backup"})
    # cp1 reprovisioned through PXE, still in maintenance mode; cp2 reset and running its config, etcd not bootstrapped.
    cluster.restart("cp1", maintenance=True)
    cluster.restart("cp2", maintenance=True)
    cluster.restart("cp2", config=True)
    assert not (cluster.doubles["cp1"].state_dir / "etcd").exists()

    check = cluster.play("restore", extra_vars={"snapshot": str(snapshot)}, check=True)
    assert check.rc == 0, check.stdout
    assert check.task("Recover etcd from the snapshot")["result"]["states"] == {"cp1": "maintenance", "cp2": "configured"}
    assert cluster.doubles["cp1"].state["stage"] == "maintenance" and cluster.doubles["cp1"].calls("EtcdRecover") == 0

    run = cluster.play("restore", extra_vars={"snapshot": str(snapshot)})
    print(run.stdout)
    assert run.rc == 0, run.stdout
    result = run.task("Recover etcd from the snapshot")["result"]
    assert [s["stage"] for s in result["stages"]] == ["snapshot uploaded (EtcdRecover)", "bootstrap recover_etcd", "etcd healthy",
                                                      "kubernetes ready"]
    state = cluster.doubles["cp1"].state
    assert state["recover_uploads"] == [{"chunks": math.ceil(snapshot.stat().st_size / 4096), "size": snapshot.stat().st_size}]
    assert state["recovered"]["sha256"] == result["sha256"] and not state["recovered"]["skip_hash_check"]
    assert cluster.etcd_data("cp1") == served  # the data is back, and only what the snapshot held
    assert "/registry/configmaps/default/later" not in cluster.etcd_data("cp1")["keys"]
    assert cluster.doubles["cp2"].calls("EtcdRecover") == 0 and not cluster.doubles["cp2"].state["bootstrapped"]

    again = cluster.play("restore", extra_vars={"snapshot": str(snapshot)})
    assert again.rc != 0 and "cp1 (talos_ip 127.12.0.11): etcd is running" in again.stdout
    assert len(cluster.doubles["cp1"].state["recover_uploads"]) == 1

    after = cluster.play("backup")
    assert after.rc == 0, after.stdout
    assert talos_node.read_snapshot(Path(backup_result(after)["path"]).read_bytes()) == served


def test_converge_saves_a_snapshot_before_a_control_plane_changes(cluster):
    before = cluster.saved()
    cases = [("w1", {}, ["w1"]), ("cp1", {"talos_cluster_backup_before_changes": False}, ["cp1", "w1"])]
    for name, extra, changing in cases:  # a worker's change, and the setting off: no snapshot (check mode shows it)
        cluster.host_vars[name]["talos_sysctls"] = {"net.ipv4.ip_forward": "1"}
        cluster.write_inventory()
        check = cluster.play("converge", extra_vars=extra, check=True)
        assert check.rc == 0, check.stdout
        assert check.task("Roll the changes out")["result"]["changing"] == changing
        assert "would save" not in check.stdout

    run = cluster.play("configs", "converge")
    assert run.rc == 0, run.stdout
    assert run.task("Roll the changes out")["result"]["applied"] == ["cp1", "w1"]
    [new] = sorted(set(cluster.saved()) - set(before))
    assert run.stdout.index("saved %s from cp1" % (cluster.backups / new)) < run.stdout.index("Roll the changes out]")
