"""`ansible-playbook playbooks/dhcp_settings.yml`: what a person copies into a router.

The playbook runs for real; each router section of what it writes is then handed to the real
server's syntax check (dnsmasq --test, ISC dhcpd -t, kea-dhcp4 -t) inside a minimal config.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from ansible_runner import REPO

PLAYBOOK = str(REPO / "playbooks" / "dhcp_settings.yml")
EXAMPLE = REPO / "inventory" / "example"
NETWORK = yaml.safe_load((EXAMPLE / "group_vars" / "all.yml").read_text())["talos_network"]
SECTION = re.compile(r"^== (.+?) ==$", re.M)
KEA_SUBNET_PART = re.compile(r'^// Inside the "subnet4" entry.*$', re.M)
# MACs in the notations people paste, and the form every section must print.
MACS = {
    "kube01": ("18-03-73-2A-D8-A2", "18:03:73:2a:d8:a2"),
    "kube02": ("0200.0050.0072", "02:00:00:50:00:72"),
    "kube03": ("02:00:00:50:00:73", "02:00:00:50:00:73"),
}


def inventory(tmp_path, **host_vars):
    """The example inventory, with some nodes' host_vars replaced."""
    path = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, path)
    for host, variables in host_vars.items():
        (path / "host_vars" / ("%s.yml" % host)).write_text(yaml.safe_dump(variables))
    return path


def settings_file(tmp_path):
    return tmp_path / "clusters" / "homecluster" / "dhcp_settings.txt"


def sections(text):
    """{header: body} of every '== header ==' section of the settings text."""
    parts = SECTION.split(text)
    return {header: body.strip("\n") + "\n" for header, body in zip(parts[1::2], parts[2::2])}


def section(text, name):
    matches = [body for header, body in sections(text).items() if header.startswith(name)]
    assert len(matches) == 1, "no single %r section in:\n%s" % (name, text)
    return matches[0]


def printed_block(run):
    """What print_text showed under its title, up to the task's status line."""
    start = run.stdout.index("DHCP settings for network boot\n") + len("DHCP settings for network boot\n")
    return run.stdout[start : run.stdout.index("\nok: [localhost]", start)] + "\n"


@pytest.fixture(scope="module")
def normalised_settings(tmp_path_factory):
    """The settings written for the example cluster with its MACs in other notations."""
    from ansible_runner import ansible_playbook

    tmp_path = tmp_path_factory.mktemp("dhcp_settings")
    path = inventory(tmp_path, **{host: {"talos_mac": raw, "talos_ip": "10.0.50.7%s" % host[-1]} for host, (raw, _) in MACS.items()})
    run = ansible_playbook(PLAYBOOK, tmp_path, inventory=path)
    assert run.rc == 0, run.stdout + run.stderr
    return settings_file(tmp_path).read_text()


def test_example_prints_plain_text_writes_the_file_and_reruns_unchanged(run_playbook, tmp_path):
    first = run_playbook(PLAYBOOK, inventory=EXAMPLE)
    assert first.rc == 0, first.stdout + first.stderr
    written = settings_file(tmp_path)
    text = written.read_text()
    assert printed_block(first) == text
    assert 'option user-class = "iPXE"' in first.stdout and '\\"' not in first.stdout
    assert "The same settings are in %s (updated)" % written in first.stdout
    assert oct(written.stat().st_mode & 0o777) == "0o600"

    second = run_playbook(PLAYBOOK, inventory=EXAMPLE, diff=True)
    assert second.rc == 0, second.stdout
    assert second.changed == 0, second.stdout
    assert "The same settings are in %s (unchanged)" % written in second.stdout
    assert written.read_text() == text


def test_check_mode_writes_nothing_and_says_so(run_playbook, tmp_path):
    run = run_playbook(PLAYBOOK, inventory=EXAMPLE, check=True)
    assert run.rc == 0, run.stdout + run.stderr
    assert "Check mode: nothing written; the settings would go to %s" % settings_file(tmp_path) in run.stdout
    assert "== dnsmasq" in run.stdout
    assert not (tmp_path / "clusters").exists()


def test_dhcp_settings_file_puts_the_file_elsewhere(run_playbook, tmp_path):
    (tmp_path / "router").mkdir()
    run = run_playbook(PLAYBOOK, inventory=EXAMPLE, extra_vars={"dhcp_settings_file": "router/dhcp.txt"}, workdir=tmp_path)
    assert run.rc == 0, run.stdout + run.stderr
    assert "The same settings are in %s (updated)" % (tmp_path / "router" / "dhcp.txt") in run.stdout
    assert (tmp_path / "router" / "dhcp.txt").read_text() == printed_block(run)
    assert not (tmp_path / "clusters").exists()


def test_dhcp_settings_file_in_a_missing_directory_fails_before_printing(run_playbook, tmp_path):
    run = run_playbook(PLAYBOOK, inventory=EXAMPLE, extra_vars={"dhcp_settings_file": "nowhere/dhcp.txt"})
    assert run.rc != 0
    assert "- localhost: dhcp_settings_file: the directory of 'nowhere/dhcp.txt' does not exist" in run.failures[0]["result"]["msg"]
    assert "== dnsmasq" not in run.stdout
    assert not (tmp_path / "clusters").exists() and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("name", ["OPNsense", "pfSense", "ISC dhcpd", "Kea", "dnsmasq"])
def test_every_section_carries_each_node_in_normalised_form(normalised_settings, name):
    body = section(normalised_settings, name)
    for raw, normal in MACS.values():
        if raw != normal:
            assert raw not in body and raw.lower() not in body
    if name in ("OPNsense", "pfSense"):
        assert "one per reservation above" in body
    else:
        for host, (_, normal) in MACS.items():
            lines = [line for line in body.splitlines() if normal in line]
            assert len(lines) == 1 and "10.0.50.7%s" % host[-1] in lines[0] and host in lines[0], (host, body)
    reservations = normalised_settings.split("\n\n== ")[0]
    for host, (_, normal) in MACS.items():
        assert re.search(r"^  %s +%s +10\.0\.50\.7%s$" % (host, normal, host[-1]), reservations, re.M), reservations


@pytest.mark.parametrize(
    "host_vars, url, expected",
    [
        ({"kube02": {"talos_mac": "zz:zz", "talos_ip": "10.0.50.72"}}, None, ["kube02: talos_mac: 'zz:zz' is not a MAC address"]),
        (
            {"kube01": {"talos_mac": "18:03:73:2a:d8:a2", "talos_ip": "10.0.60.71"}, "kube03": {"talos_mac": "02:00:00:50:00:73"}},
            None,
            ["kube01: talos_ip: 10.0.60.71 is outside the node network 10.0.50.0/24", "kube03: talos_ip: is required"],
        ),
        ({}, "10.0.20.50:8080", ["bootserver: talos_matchbox_url: '10.0.20.50:8080' is not an http URL"]),
        ({}, "http://boot.lan:8080", ["bootserver: talos_matchbox_url: DHCP next-server must be an IPv4 address, not 'boot.lan'"]),
        (
            {"kube02": {"talos_mac": "zz:zz", "talos_ip": "10.0.50.72"}},
            "http://10.0.20.500:8080",
            ["kube02: talos_mac: 'zz:zz' is not a MAC address", "bootserver: talos_matchbox_url: DHCP next-server must be an IPv4 address"],
        ),
    ],
    ids=["bad MAC", "IP outside the network and a missing IP", "URL without scheme", "URL host not an IP", "all at once"],
)
def test_bad_input_names_host_and_variable_and_writes_nothing(run_playbook, tmp_path, host_vars, url, expected):
    path = inventory(tmp_path, **host_vars)
    if url:
        (path / "host_vars" / "bootserver.yml").write_text(yaml.safe_dump({"talos_matchbox_url": url}))
    run = run_playbook(PLAYBOOK, inventory=path)
    assert run.rc != 0
    failure = run.failures[0]["result"]["msg"]
    assert "The inventory has %d problem" % len(expected) in failure, failure
    for line in expected:
        assert "- " + line in failure, failure
    assert "== dnsmasq" not in run.stdout
    assert not (tmp_path / "clusters").exists()


# Each server's check, and a minimal config around the printed section.
def dnsmasq_config(body):
    return "port=0\ndhcp-range=10.0.50.100,10.0.50.200,255.255.255.0,12h\n" + body


def isc_config(body):
    return "authoritative;\n" + body + "subnet 10.0.50.0 netmask 255.255.255.0 {\n  range 10.0.50.100 10.0.50.200;\n}\n"


def kea_config(body):
    dhcp4, reservations = KEA_SUBNET_PART.split(body)
    return (
        '{"Dhcp4": {\n"interfaces-config": {"interfaces": []},\n'
        '"lease-database": {"type": "memfile", "persist": false},\n'
        + dhcp4
        + '"subnet4": [{"subnet": "%s", "pools": [{"pool": "10.0.50.100 - 10.0.50.200"}],\n' % NETWORK
        + reservations
        + "}]\n}}\n"
    )


SERVERS = {
    "dnsmasq": (["dnsmasq", "--test", "--conf-file={}"], dnsmasq_config),
    "ISC dhcpd": (["dhcpd", "-t", "-cf", "{}"], isc_config),
    "Kea": (["kea-dhcp4", "-t", "{}"], kea_config),
}


def server_check(name, body, tmp_path):
    command, wrap = SERVERS[name]
    if not shutil.which(command[0]):
        pytest.fail("%s is not installed: `make deps` installs it (DEBIAN_PACKAGES)" % command[0])
    config = tmp_path / ("%s.conf" % command[0])
    config.write_text(wrap(body))
    proc = subprocess.run([part.format(config) for part in command], capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr, config.read_text()


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_the_server_accepts_its_section_as_printed(normalised_settings, tmp_path, name):
    rc, output, config = server_check(name, section(normalised_settings, name), tmp_path)
    assert rc == 0, output + "\n" + config


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_the_server_check_rejects_a_spoilt_section(normalised_settings, tmp_path, name):
    # The same check must fail once the section is wrong, or the test above proves nothing.
    body = section(normalised_settings, name).replace(MACS["kube02"][1], "02:00:00:50:00:zz")
    rc, output, config = server_check(name, body, tmp_path)
    assert rc != 0, output + "\n" + config


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_every_server_section_guards_against_the_ipxe_loop(normalised_settings, name):
    body = section(normalised_settings, name)
    guard = {"dnsmasq": "dhcp-userclass=set:ipxe,iPXE", "ISC dhcpd": 'option user-class = "iPXE"', "Kea": "option[77].hex,0,4) == 'iPXE'"}
    assert guard[name] in body
    assert "http://10.0.20.50:8080/boot.ipxe" in body and "undionly.kpxe" in body and "ipxe.efi" in body
