"""playbooks/dhcp_settings.yml with two boot servers: each boot server's own settings (its next-server
and iPXE URL, the reservations of the nodes it serves only), printed and written to a file named after
it; the problems of every boot server and node at once, before anything is written."""

from __future__ import annotations

import shutil

import pytest
import yaml

from ansible_runner import REPO

PLAYBOOK = str(REPO / "playbooks" / "dhcp_settings.yml")
EXAMPLE = REPO / "inventory" / "example"
# node: (boot server, MAC)
NODES = {"kube01": ("bootserver", "18:03:73:2a:d8:a2"), "kube02": ("bootserver", "02:00:00:50:00:72"), "kube03": ("rack2", "02:00:00:50:00:73")}
NEXT_SERVERS = {"bootserver": "10.0.20.50", "rack2": "10.0.60.50"}


def two_boot_servers(tmp_path, rack2_url="http://10.0.60.50:8080", **host_vars):
    path = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, path)
    hosts = yaml.safe_load((path / "hosts.yml").read_text())
    hosts["all"]["children"]["boot_server"]["hosts"]["rack2"] = {"talos_matchbox_url": rack2_url}
    (path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    for node, (server, _mac) in NODES.items():
        variables = yaml.safe_load((path / "host_vars" / ("%s.yml" % node)).read_text())
        variables.update({"talos_boot_server": server, **host_vars.get(node, {})})
        (path / "host_vars" / ("%s.yml" % node)).write_text(yaml.safe_dump(variables))
    return path


def written(tmp_path, server):
    return tmp_path / "clusters" / "homecluster" / ("dhcp_settings.%s.txt" % server)


def test_each_boot_server_gets_its_own_settings_and_reruns_unchanged(run_playbook, tmp_path):
    inventory = two_boot_servers(tmp_path)
    first = run_playbook(PLAYBOOK, inventory=inventory)
    assert first.rc == 0, first.stdout + first.stderr
    for server, next_server in NEXT_SERVERS.items():
        text = written(tmp_path, server).read_text()
        assert "DHCP settings for network boot (boot server %s)" % server in first.stdout
        assert "Boot server (next-server, TFTP): %s\n" % next_server in text
        assert "  iPXE (user class \"iPXE\")        http://%s:8080/boot.ipxe\n" % next_server in text
        for node, (own, mac) in NODES.items():
            assert ("dhcp-host=%s,%s" % (mac, "10.0.50.7" + node[-1]) in text) == (own == server), (server, node, text)
        assert "The same settings are in %s (updated)" % written(tmp_path, server) in first.stdout
    assert not (tmp_path / "clusters" / "homecluster" / "dhcp_settings.txt").exists()

    again = run_playbook(PLAYBOOK, inventory=inventory)
    assert again.rc == 0 and again.changed == 0, again.stdout
    only = run_playbook(PLAYBOOK, inventory=inventory, extra_vars={"dhcp_settings_boot_server": "rack2"}, check=True)
    assert only.rc == 0, only.stdout
    assert "(boot server rack2)" in only.stdout and "(boot server bootserver)" not in only.stdout


@pytest.mark.parametrize("rack2_url, host_vars, expected", [
    ("10.0.60.50:8080", {}, ["rack2: talos_matchbox_url: '10.0.60.50:8080' is not an http URL"]),
    ("http://rack2.lan:8080", {"kube01": {"talos_mac": "zz:zz"}},
     ["kube01: talos_mac: 'zz:zz' is not a MAC address", "rack2: talos_matchbox_url: DHCP next-server must be an IPv4 address, not 'rack2.lan'"]),
    ("http://10.0.60.50:8080", {"kube02": {"talos_boot_server": "rack9"}}, ["kube02: talos_boot_server"]),
], ids=["bad URL of the second boot server", "a node and a boot server at once", "unknown boot server"])
def test_problems_of_every_boot_server_and_node_at_once(run_playbook, tmp_path, rack2_url, host_vars, expected):
    run = run_playbook(PLAYBOOK, inventory=two_boot_servers(tmp_path, rack2_url, **host_vars))
    assert run.rc != 0
    failure = run.failures[0]["result"]["msg"]
    assert "The inventory has %d problem" % len(expected) in failure, failure
    for line in expected:
        assert "- " + line in failure, failure
    assert "== dnsmasq" not in run.stdout and not (tmp_path / "clusters").exists()
