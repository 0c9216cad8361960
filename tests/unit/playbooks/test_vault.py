"""clusters/<name>/ kept vault-encrypted: configs.yml and vault_encrypt.yml through ansible-playbook,
checked against ansible-vault itself."""

from __future__ import annotations

import base64
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_runner import REPO, ansible_env, ansible_playbook

VAULT_HEADER = b"$ANSIBLE_VAULT;1.2;AES256;lab\n"
SECRET_FILES = ["nodes/kube01.yaml", "nodes/kube02.yaml", "nodes/kube03.yaml", "secrets.yaml", "talosconfig"]
CLEAR_FILES = ["contract.json", "staged.json"]  # no secret in them: they stay clear


def ansible_vault(*args, cwd):
    command = [str(Path(sys.executable).parent / "ansible-vault"), *args]
    proc = subprocess.run(command, cwd=str(cwd), env=ansible_env(), capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def passwords(tmp_path):
    right, wrong = tmp_path / "vault-pass", tmp_path / "wrong-pass"
    right.write_text("correct horse battery staple\n")
    wrong.write_text("not it\n")
    return {"right": ["--vault-id", "lab@%s" % right], "wrong": ["--vault-id", "lab@%s" % wrong], "file": right}


def configs(run_playbook, *args, **kwargs):
    return run_playbook(str(REPO / "playbooks" / "configs.yml"), inventory=REPO / "inventory" / "example",
                        extra_vars={"talos_vault_id": "lab"} if args else None, args=args, **kwargs)


def snapshot(cluster):
    return {p.relative_to(cluster).as_posix(): p.read_bytes() for p in sorted(cluster.rglob("*")) if p.is_file()}


def test_written_encrypted_from_the_start_read_back_and_kept_byte_for_byte(run_playbook, tmp_path, passwords):
    first = configs(run_playbook, *passwords["right"])
    assert first.rc == 0, first.stdout + first.stderr
    cluster = tmp_path / "clusters" / "homecluster"
    files = snapshot(cluster)
    assert sorted(files) == sorted(SECRET_FILES + ["contract.json"])
    assert not files["contract.json"].startswith(b"$ANSIBLE_VAULT")
    for relative, content in ((r, files[r]) for r in SECRET_FILES):
        assert content.startswith(VAULT_HEADER), relative
        assert stat.S_IMODE((cluster / relative).stat().st_mode) == 0o600
    # ansible-vault opens them, and they are what the clear-text run writes
    bundle = yaml.safe_load(ansible_vault("view", "--vault-id", "lab@%s" % passwords["file"], "secrets.yaml", cwd=cluster))
    kube02 = yaml.safe_load(ansible_vault("view", "--vault-id", "lab@%s" % passwords["file"], "nodes/kube02.yaml", cwd=cluster))
    assert kube02["machine"]["token"] == bundle["trustdinfo"]["token"]

    second = configs(run_playbook, *passwords["right"], diff=True)
    assert second.rc == 0, second.stdout + second.stderr
    assert second.changed == 0, second.stdout
    assert snapshot(cluster) == files
    for secret in (bundle["trustdinfo"]["token"], bundle["secrets"]["bootstraptoken"], bundle["certs"]["os"]["key"],
                   "correct horse battery staple"):
        assert secret not in first.stdout + first.stderr + second.stdout + second.stderr


@pytest.mark.parametrize("password, expected", [
    ("wrong", "no vault secret given opens it"),
    (None, "vault-encrypted files"),
])
def test_wrong_or_missing_password_refused_before_anything_changes(run_playbook, tmp_path, passwords, password, expected):
    assert configs(run_playbook, *passwords["right"]).rc == 0
    cluster = tmp_path / "clusters" / "homecluster"
    (cluster / "nodes" / "kube03.yaml").unlink()  # a change the run would make if it went on
    before = snapshot(cluster)
    run = configs(run_playbook, *passwords[password]) if password else configs(run_playbook)
    assert run.rc != 0
    assert expected in run.stdout, run.stdout
    assert "secrets.yaml" in run.stdout or "talosconfig" in run.stdout
    assert snapshot(cluster) == before


def test_mixed_dir_a_file_ansible_vault_encrypted_is_kept_and_the_clear_ones_are_encrypted(run_playbook, tmp_path, passwords):
    assert configs(run_playbook).rc == 0
    cluster = tmp_path / "clusters" / "homecluster"
    ansible_vault("encrypt", "--vault-id", "lab@%s" % passwords["file"], "secrets.yaml", cwd=cluster)
    before = snapshot(cluster)
    run = configs(run_playbook, *passwords["right"])
    assert run.rc == 0, run.stdout + run.stderr
    assert run.changed > 0  # the clear secret files were encrypted: a change, reported
    after = snapshot(cluster)
    assert after["secrets.yaml"] == before["secrets.yaml"]  # ansible-vault's own envelope, read and kept
    for relative in SECRET_FILES:
        assert after[relative].startswith(VAULT_HEADER), relative
    again = configs(run_playbook, *passwords["right"])
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert snapshot(cluster) == after


def test_vault_encrypt_playbook_both_ways_byte_checked(run_playbook, tmp_path, passwords):
    assert configs(run_playbook).rc == 0
    cluster = tmp_path / "clusters" / "homecluster"
    (cluster / "kubeconfig").write_bytes(b"apiVersion: v1\nkind: Config\n")
    (cluster / "kubeconfig").chmod(0o600)
    (cluster / "backups").mkdir()
    (cluster / "backups" / "etcd-20261201T120000Z.db").write_bytes(bytes(range(256)) * 3)
    (cluster / "staged.json").write_text("{}\n")
    clear = snapshot(cluster)
    playbook = str(REPO / "playbooks" / "vault_encrypt.yml")
    inventory = REPO / "inventory" / "example"
    vault_id = {"talos_vault_id": "lab"}

    check = run_playbook(playbook, inventory=inventory, extra_vars=vault_id, check=True, args=passwords["right"])
    assert check.rc == 0 and check.changed == 1, check.stdout
    assert snapshot(cluster) == clear

    encrypt = run_playbook(playbook, inventory=inventory, extra_vars=vault_id, args=passwords["right"])
    assert encrypt.rc == 0, encrypt.stdout + encrypt.stderr
    encrypted = snapshot(cluster)
    for relative in CLEAR_FILES:
        assert encrypted[relative] == clear[relative]
    for relative in set(clear) - set(CLEAR_FILES):
        assert encrypted[relative].startswith(VAULT_HEADER), relative
        opened = tmp_path / "opened"
        ansible_vault("decrypt", "--vault-id", "lab@%s" % passwords["file"], "--output", str(opened), relative, cwd=cluster)
        assert opened.read_bytes() == clear[relative], relative
        opened.unlink()
    assert stat.S_IMODE((cluster / "backups" / "etcd-20261201T120000Z.db").stat().st_mode) == 0o644

    again = run_playbook(playbook, inventory=inventory, extra_vars=vault_id, args=passwords["right"])
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert snapshot(cluster) == encrypted
    configs_run = configs(run_playbook, *passwords["right"])
    assert configs_run.rc == 0 and configs_run.changed == 0, configs_run.stdout
    assert snapshot(cluster) == encrypted

    decrypt = run_playbook(playbook, inventory=inventory, extra_vars=dict(vault_id, vault_decrypt=True), args=passwords["right"])
    assert decrypt.rc == 0, decrypt.stdout + decrypt.stderr
    assert snapshot(cluster) == clear
    for secret in ("correct horse battery staple", yaml.safe_load(clear["secrets.yaml"])["trustdinfo"]["token"]):
        assert secret not in encrypt.stdout + decrypt.stdout + again.stdout


# ---- a cluster of node doubles (127.0.23.x) brought up and backed up from an encrypted cluster dir

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "talos_node"
NET = "127.0.23."
NODES = {"cp1": ("controlplane", 11), "w1": ("workers", 21)}


def doubles_module():
    sys.path.insert(0, str(FIXTURES))
    import doubles  # noqa: E402 pylint: disable=import-outside-toplevel
    return doubles


@pytest.fixture(scope="module")
def vault_cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("vault-cluster")
    password = root / "vault-pass"
    password.write_text("cluster vault password\n")
    group_vars = {"talos_cluster_name": "demo", "talos_cluster_endpoint": "https://%s11:6443" % NET, "talos_version": "v1.11.5",
                  "talos_network": NET + "0/24", "talos_install_disk": "/dev/sda", "talos_matchbox_url": "http://%s1:8080" % NET,
                  "talos_cluster_wait_timeout": 30, "talos_cluster_ready_timeout": 30, "talos_vault_id": "lab"}
    groups = {"controlplane": {"hosts": {}}, "workers": {"hosts": {}}}
    (root / "inventory" / "host_vars").mkdir(parents=True)
    for name, (group, last) in NODES.items():
        groups[group]["hosts"][name] = None
        (root / "inventory" / "host_vars" / ("%s.yml" % name)).write_text(
            yaml.safe_dump({"talos_mac": "52:54:00:23:00:%02x" % last, "talos_ip": NET + str(last)}))
    (root / "inventory" / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": group_vars, "children": {"talos": {"children": groups}}}}))

    def play(name, vault=True, **kwargs):
        args = ["--vault-id", "lab@%s" % password] if vault else []
        return ansible_playbook(str(REPO / "playbooks" / ("%s.yml" % name)), root, inventory=root / "inventory", args=args, **kwargs)

    def opened(path):
        target = root / "opened"
        ansible_vault("decrypt", "--vault-id", "lab@%s" % password, "--output", str(target), str(path), cwd=root)
        content = target.read_bytes()
        target.unlink()
        return content

    assert play("configs").rc == 0
    cluster = root / "clusters" / "demo"
    doubles = doubles_module()
    os_key = base64.b64decode(yaml.safe_load(opened(cluster / "secrets.yaml"))["certs"]["os"]["key"])
    running = []
    for name, (_group, last) in NODES.items():
        plain = root / ("%s.yaml" % name)  # what the node was served: clear, as matchbox serves it
        plain.write_bytes(opened(cluster / "nodes" / ("%s.yaml" % name)))
        running.append(doubles.NodeDouble(NET + str(last), root / "node-state" / name, os_ca_key=os_key).start(config=plain))
    running.append(doubles.KubeDouble(NET + "11", root / "cp1.yaml", root / "node-state").start())
    try:
        yield {"root": root, "dir": cluster, "play": play, "opened": opened, "password": "cluster vault password"}
    finally:
        for double in running:
            double.stop()


def test_cluster_and_backup_from_an_encrypted_cluster_dir(vault_cluster):
    play, cluster, opened = vault_cluster["play"], vault_cluster["dir"], vault_cluster["opened"]
    up = play("cluster")
    assert up.rc == 0, up.stdout + up.stderr
    kubeconfig = (cluster / "kubeconfig").read_bytes()
    assert kubeconfig.startswith(VAULT_HEADER) and b"clusters:" in opened(cluster / "kubeconfig")

    backup = play("backup")
    assert backup.rc == 0 and backup.changed == 1, backup.stdout + backup.stderr
    [snapshot_file] = list((cluster / "backups").iterdir())
    assert snapshot_file.read_bytes().startswith(VAULT_HEADER)
    served = (vault_cluster["root"] / "node-state" / "cp1" / "etcd-snapshot-served.db").read_bytes()
    assert opened(snapshot_file) == served
    assert stat.S_IMODE(snapshot_file.stat().st_mode) == 0o600

    before = snapshot(cluster)
    again = play("cluster")
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert snapshot(cluster) == before
    refused = play("backup", vault=False)
    # talos_vault_id is set in this inventory: that it names no loaded secret is said first
    assert refused.rc != 0 and "talos_vault_id: 'lab' names no loaded vault secret" in refused.stdout, refused.stdout
    assert snapshot(cluster) == before
    for run in (up, backup, again, refused):
        assert vault_cluster["password"] not in run.stdout + run.stderr
