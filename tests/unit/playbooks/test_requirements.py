"""Each playbook checks what it needs before anything is written, and a site.yml run validates once."""

from __future__ import annotations

import copy

import pytest
import yaml

from ansible_runner import REPO

CLUSTER = {
    "talos_cluster_name": "reqcluster",
    "talos_cluster_endpoint": "https://127.0.50.71:6443",
    "talos_version": "v1.11.5",
    "talos_network": "127.0.50.0/24",
    "talos_install_disk": "/dev/sda",
    "talos_matchbox_url": "http://127.0.50.1:8080",
}
NODES = {
    "controlplane": {"kube01": {"talos_mac": "02:00:00:50:00:71", "talos_ip": "127.0.50.71"}},
    "workers": {"kube02": {"talos_mac": "02:00:00:50:00:72", "talos_ip": "127.0.50.72"}},
}
SITE_VALIDATION = "Validate every node and what every playbook of the run needs"


def inventory(tmp_path, cluster=None, boot_servers=("bootserver",), node_vars=None):
    """An inventory file: one control plane, one worker, the boot servers on this machine."""
    variables = {k: v for k, v in dict(CLUSTER, **(cluster or {})).items() if v is not None}
    nodes = copy.deepcopy(NODES)
    for host, extra in (node_vars or {}).items():
        next(group for group in nodes.values() if host in group)[host].update(extra)
    servers = {name: {"ansible_connection": "local", "matchbox_data_dir": str(tmp_path / "matchbox")} for name in boot_servers}
    data = {
        "all": {
            "hosts": {"localhost": {"ansible_connection": "local"}},  # explicit, for --limit localhost
            "vars": variables,
            "children": {
                "boot_server": {"hosts": servers},
                "talos": {"children": {group: {"hosts": hosts} for group, hosts in nodes.items()}},
            },
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def validations(run):
    """The recorded talos_inventory results (they carry `checked` or `problems`), in run order."""
    return [e for e in run.results if "checked" in e["result"] or "problems" in e["result"]]


# (playbook, inventory changes, variable the problem names, start of its message)
UNMET = {
    "site.yml without talos_matchbox_url": (
        "site.yml", {"cluster": {"talos_matchbox_url": None}}, "bootserver: talos_matchbox_url", "is not set",
    ),
    "site.yml with a matchbox URL without scheme": (
        "site.yml", {"cluster": {"talos_matchbox_url": "127.0.50.1:8080"}}, "bootserver: talos_matchbox_url", "'127.0.50.1:8080' is not a URL",
    ),
    "site.yml with a matchbox URL of another scheme": (
        "site.yml", {"cluster": {"talos_matchbox_url": "tftp://127.0.50.1"}}, "bootserver: talos_matchbox_url", "'tftp://127.0.50.1' is not a URL",
    ),
    "site.yml with a matchbox URL whose port is no number": (
        "site.yml", {"cluster": {"talos_matchbox_url": "http://127.0.50.1:80a"}}, "bootserver: talos_matchbox_url", "'http://127.0.50.1:80a' is not a URL",
    ),
    "site.yml without a boot server": (
        "site.yml", {"boot_servers": ()}, "boot_server", "the inventory has no host in group 'boot_server'",
    ),
    "boot_server.yml without talos_matchbox_url": (
        "playbooks/boot_server.yml", {"cluster": {"talos_matchbox_url": None}}, "bootserver: talos_matchbox_url", "is not set",
    ),
    "boot_server.yml without a boot server": (
        "playbooks/boot_server.yml", {"boot_servers": ()}, "boot_server", "the inventory has no host",
    ),
    "cluster.yml withdrawing configs without a boot server": (
        "playbooks/cluster.yml", {"boot_servers": (), "cluster": {"talos_config_withdraw": True}}, "boot_server", "the inventory has no host",
    ),
    "reprovision.yml withdrawing configs without talos_matchbox_url": (
        "playbooks/reprovision.yml",
        {"cluster": {"talos_config_withdraw": True, "talos_matchbox_url": None}},
        "bootserver: talos_matchbox_url",
        "is not set",
    ),
}


@pytest.mark.parametrize("case", sorted(UNMET))
def test_a_playbook_missing_what_it_needs_fails_at_its_first_task(run_playbook, tmp_path, case):
    playbook, changes, where, message = UNMET[case]
    run = run_playbook(str(REPO / playbook), inventory=inventory(tmp_path, **changes))
    assert run.rc != 0, run.stdout
    assert len(run.results) == 1, [e["task"] for e in run.results]
    problems = run.results[0]["result"]["problems"]
    assert "%s: %s" % (where, message) in "\n".join(problems), problems
    assert not (tmp_path / "clusters").exists() and not (tmp_path / "matchbox").exists()


def test_one_mistake_on_many_boot_servers_is_one_line_and_node_problems_come_with_it(run_playbook, tmp_path):
    path = inventory(tmp_path, cluster={"talos_matchbox_url": "matchbox"}, boot_servers=("boot1", "boot2"),
                     node_vars={"kube02": {"talos_mac": "nonsense"}})
    run = run_playbook(str(REPO / "site.yml"), inventory=path)
    assert run.rc != 0
    problems = run.task(SITE_VALIDATION)["result"]["problems"]
    # Two boot servers and no node network described: neither node has a boot server (one line for both).
    assert [p.split(": ")[:2] for p in problems] == [["kube02", "talos_mac"], ["boot1, boot2", "talos_matchbox_url"],
                                                     ["kube01, kube02", "talos_boot_server"]], problems
    assert not (tmp_path / "clusters").exists()


def test_configs_alone_needs_no_boot_server(run_playbook, tmp_path):
    run = run_playbook(str(REPO / "playbooks" / "configs.yml"), inventory=inventory(tmp_path, boot_servers=(), cluster={"talos_matchbox_url": None}))
    assert run.rc == 0, run.stdout
    assert sorted(p.name for p in (tmp_path / "clusters" / "reqcluster" / "nodes").iterdir()) == ["kube01.yaml", "kube02.yaml"]


def test_site_validates_once_and_every_playbook_reuses_it(run_playbook, tmp_path):
    # The boot server is this machine (--limit leaves its setup play out); publishing writes under
    # tmp_path; the cluster wait gives up at once on the loopback addresses (nothing listens there).
    run = run_playbook(
        str(REPO / "site.yml"),
        inventory=inventory(tmp_path),
        extra_vars={"talos_cluster_wait_timeout": 0},
        args=("--limit", "localhost"),
    )
    seen = validations(run)
    tasks = [e["task"].split(" : ")[-1] for e in seen]
    validated = "Validate every node of the inventory"
    # configs, boot_server, cluster, and the diagnose cluster.yml runs for the control plane that did not come up.
    assert tasks == [SITE_VALIDATION, validated, validated, "Validate the inventory's nodes", "Validate the inventory's nodes"], run.stdout
    assert [e["result"]["reused"] for e in seen] == [False, True, True, True, True]
    assert "first broken link" in run.stdout or "every link ok" in run.stdout, run.stdout
    assert seen[0]["result"]["checked"]["require"] == ["boot_server", "matchbox_url"]
    assert all(e["result"]["nodes"] == seen[0]["result"]["nodes"] for e in seen)
    # The run went on past every validation: configs written and published, then the first control plane was waited for.
    assert (tmp_path / "matchbox" / "groups" / "kube01.json").exists(), run.stdout
    # nothing listens on the loopback addresses: the wait gives up, diagnose says why, and the run stops there
    assert run.task("Wait until the first control plane is up and bootstrap etcd on it at once")["result"]["failed_nodes"] == ["kube01"]
    assert run.task("Fail when the first control plane did not come up")["status"] == "failed"


def test_an_earlier_result_is_reused_only_when_it_checked_at_least_as_much(run_playbook, tmp_path):
    tasks = [
        ("first", {}, False),
        ("needs the boot server", {"require": ["boot_server", "matchbox_url"]}, False),
        ("needs no more", {}, True),
        ("without trial render", {"trial_render": False}, True),
        ("other clusters_dir", {"clusters_dir": str(tmp_path / "elsewhere")}, False),
        ("reuse switched off", {"reuse": ""}, False),
    ]
    plays = [{"name": "validate", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": tasks[0][0], "netboot.talos.talos_inventory": tasks[0][1], "register": "talos_inventory"}
    ] + [{"name": name, "netboot.talos.talos_inventory": args} for name, args, _unused in tasks[1:]]}]
    run = run_playbook(plays, inventory=inventory(tmp_path))
    assert run.rc == 0, run.stdout
    assert [run.task(name)["result"]["reused"] for name, _unused1, _unused2 in tasks] == [reused for _unused3, _unused4, reused in tasks]


@pytest.mark.parametrize("withdraw, reused", [(False, [False, True, False, True]), (True, [False, False, False, True])])
def test_requirements_for_withdrawing_count_only_when_the_inventory_withdraws(run_playbook, tmp_path, withdraw, reused):
    register = {"register": "talos_inventory"}
    tasks = [
        dict({"name": "plain", "netboot.talos.talos_inventory": {}}, **register),
        {"name": "cluster.yml's wishes", "netboot.talos.talos_inventory": {"require_for_withdraw": ["boot_server", "matchbox_url"]}},
        dict({"name": "cluster.yml's wishes, registered", "netboot.talos.talos_inventory": {
            "require_for_withdraw": ["boot_server", "matchbox_url"], "reuse": ""}}, **register),
        {"name": "again", "netboot.talos.talos_inventory": {"require_for_withdraw": ["boot_server", "matchbox_url"]}},
    ]
    plays = [{"name": "validate", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    run = run_playbook(plays, inventory=inventory(tmp_path, cluster={"talos_config_withdraw": withdraw}))
    assert run.rc == 0, run.stdout
    assert [run.task(t["name"])["result"]["reused"] for t in tasks] == reused
    expected = ["boot_server", "matchbox_url"] if withdraw else []
    assert run.task("cluster.yml's wishes, registered")["result"]["checked"]["require"] == expected
