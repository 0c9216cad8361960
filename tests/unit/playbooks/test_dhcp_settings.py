"""`ansible-playbook playbooks/dhcp_settings.yml`: what a person copies into a router.

The playbook runs for real. Each server section of what it writes then goes, inside a minimal
config, to the real server: its syntax check (dnsmasq --test, ISC dhcpd -t, kea-dhcp4 -t), and a
real DHCP exchange in network namespaces, where PXE and iPXE clients must get the boot file the
settings promise (the iPXE-loop guard) and the node its reserved address.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest
import yaml

from ansible_runner import REPO, ansible_playbook

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
    tmp_path = tmp_path_factory.mktemp("dhcp_settings")
    path = inventory(tmp_path, **{host: {"talos_mac": raw, "talos_ip": "10.0.50.7%s" % host[-1]} for host, (raw, _unused) in MACS.items()})
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
        for host, (_unused, normal) in MACS.items():
            lines = [line for line in body.splitlines() if normal in line]
            assert len(lines) == 1 and "10.0.50.7%s" % host[-1] in lines[0] and host in lines[0], (host, body)
    reservations = normalised_settings.split("\n\n== ")[0]
    for host, (_unused, normal) in MACS.items():
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


# Each server's check, and a minimal config around the printed section (on one interface when
# the server really runs).
def dnsmasq_config(body, interface=None):
    listen = "interface=%s\nbind-interfaces\n" % interface if interface else ""
    return "port=0\n" + listen + "dhcp-range=10.0.50.100,10.0.50.200,255.255.255.0,12h\n" + body


def isc_config(body, interface=None):
    return "authoritative;\n" + body + "subnet 10.0.50.0 netmask 255.255.255.0 {\n  range 10.0.50.100 10.0.50.200;\n}\n"


def kea_config(body, interface=None):
    dhcp4, reservations = KEA_SUBNET_PART.split(body)
    return (
        '{"Dhcp4": {\n"interfaces-config": {"interfaces": [%s]},\n' % ('"%s"' % interface if interface else "")
        + '"lease-database": {"type": "memfile", "persist": false},\n'
        + dhcp4
        + '"subnet4": [{"subnet": "%s", "pools": [{"pool": "10.0.50.100 - 10.0.50.200"}],\n' % NETWORK
        + reservations
        + "}]\n}}\n"
    )


# name: (syntax check, command that serves on one interface, config wrapper)
SERVERS = {
    "dnsmasq": (
        ["dnsmasq", "--test", "--conf-file={config}"],
        ["dnsmasq", "--no-daemon", "--user=root", "--conf-file={config}", "--pid-file={dir}/pid", "--dhcp-leasefile={dir}/leases"],
        dnsmasq_config,
    ),
    "ISC dhcpd": (
        ["dhcpd", "-t", "-cf", "{config}"],
        ["dhcpd", "-4", "-f", "-d", "-cf", "{config}", "-lf", "{dir}/leases", "-pf", "{dir}/pid", "{interface}"],
        isc_config,
    ),
    "Kea": (["kea-dhcp4", "-t", "{config}"], ["kea-dhcp4", "-c", "{config}"], kea_config),
}


def server_config(name, body, directory, interface=None):
    check, _unused, wrap = SERVERS[name]
    if not shutil.which(check[0]):
        pytest.fail("%s is not installed: `make deps` installs it (DEBIAN_PACKAGES)" % check[0])
    config = directory / ("%s.conf" % check[0])
    config.write_text(wrap(body, interface))
    return config


def server_check(name, body, tmp_path):
    config = server_config(name, body, tmp_path)
    proc = subprocess.run([part.format(config=config) for part in SERVERS[name][0]], capture_output=True, text=True, timeout=60, check=False)
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


# A real DHCP exchange: the server runs the section in one network namespace, a PXE or iPXE client
# in another asks it for an address and a boot file.
CLONE_NEWNET = 0x40000000
CLIENTS = {  # client kind: (client arch, user class of an iPXE, None for PXE firmware)
    "BIOS PXE (client arch 0)": (0, None),
    "UEFI PXE (client arch 7)": (7, None),
    "UEFI PXE (client arch 9)": (9, None),
    "iPXE (user class iPXE)": (7, b"iPXE"),
    # the lab's bios-pxe machine: an iPXE playing a PXE ROM, option 175 and all, is answered as one
    "iPXE as a PXE ROM (another user class)": (0, b"NBT-PXE-ROM"),
}


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def link():
    """Two namespaces joined by a veth pair: the server side has 10.0.50.1/24 on the node network."""
    if os.geteuid() != 0:
        pytest.fail("the DHCP exchange needs root (network namespaces)")
    tag = "nbtd%d" % os.getpid()
    server, client = tag + "s", tag + "c"
    ip("netns", "add", server)
    ip("netns", "add", client)
    try:
        ip("link", "add", server, "netns", server, "type", "veth", "peer", "name", client, "netns", client)
        ip("-n", server, "addr", "add", "10.0.50.1/24", "dev", server)
        ip("-n", client, "addr", "add", "10.0.50.250/24", "dev", client)
        for namespace in (server, client):
            ip("-n", namespace, "link", "set", namespace, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
        yield server, client
    finally:
        for namespace in (server, client):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def in_namespace(namespace, make):
    """make() run in a thread that has joined the namespace; a socket made there stays in it."""
    outcome = {}

    def run():
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            with open("/run/netns/%s" % namespace) as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns %s" % namespace)
            outcome["value"] = make()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def discover(mac, arch, user_class, xid):
    options = [
        (53, b"\x01"),
        (93, struct.pack("!H", arch)),
        (94, b"\x01\x02\x01"),
        (60, b"PXEClient:Arch:%05d:UNDI:002001" % arch),
        (55, bytes([1, 3, 6, 66, 67])),
    ]
    if user_class:
        options += [(77, user_class), (175, b"\xb1\x05\x01\x10\xec\x80\x00")]
    # op, htype, hlen, hops, xid, secs, flags (broadcast), ciaddr..giaddr, chaddr, sname and file.
    header = bytes([1, 1, 6, 0]) + struct.pack("!IHH", xid, 0, 0x8000) + bytes(16)
    header += bytes.fromhex(mac.replace(":", "")).ljust(16, b"\0") + bytes(64 + 128)
    return header + b"\x63\x82\x53\x63" + b"".join(bytes([code, len(value)]) + value for code, value in options) + b"\xff"


def parse_offer(packet):
    yiaddr, siaddr = socket.inet_ntoa(packet[16:20]), socket.inet_ntoa(packet[20:24])
    boot_file = packet[108:236].split(b"\0", 1)[0].decode()
    options, index = {}, 240
    while index < len(packet) and packet[index] != 255:
        if packet[index] == 0:
            index += 1
            continue
        options[packet[index]] = packet[index + 2 : index + 2 + packet[index + 1]]
        index += 2 + packet[index + 1]
    return {"ip": yiaddr, "next-server": siaddr, "file": boot_file or options.get(67, b"").split(b"\0")[0].decode()}


def ask(sock, mac, arch, user_class, deadline):
    """DHCPDISCOVER until an offer for this exchange arrives (the server may still be starting)."""
    xid = int.from_bytes(os.urandom(4), "big")
    while time.monotonic() < deadline:
        sock.sendto(discover(mac, arch, user_class, xid), ("255.255.255.255", 67))
        with contextlib.suppress(socket.timeout):
            while True:
                packet = sock.recv(4096)
                if len(packet) > 240 and packet[0] == 2 and struct.unpack("!I", packet[4:8])[0] == xid:
                    return parse_offer(packet)
    return None


def client_socket(interface):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    sock.bind(("", 68))
    sock.settimeout(1)
    return sock


def serve(command, directory, namespace):
    """Start a server in the namespace; returns a stop() that ends it and returns its log."""
    env = dict(os.environ, KEA_LOCKFILE_DIR=str(directory), KEA_PIDFILE_DIR=str(directory))
    log = directory / "server.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(["ip", "netns", "exec", namespace, *command], stdout=handle, stderr=subprocess.STDOUT, env=env)

    def stop():
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return log.read_text()

    return stop


# Which node's MAC each client kind uses: all three notations of MACS reach the servers.
CLIENT_NODES = {
    "BIOS PXE (client arch 0)": "kube02",
    "UEFI PXE (client arch 7)": "kube01",
    "UEFI PXE (client arch 9)": "kube03",
    "iPXE (user class iPXE)": "kube02",
    "iPXE as a PXE ROM (another user class)": "kube02",
}


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_the_server_hands_each_client_kind_its_boot_file_and_the_node_its_address(normalised_settings, link, tmp_path, name):
    server, client = link
    config = server_config(name, section(normalised_settings, name), tmp_path, interface=server)
    (tmp_path / "leases").touch()
    stop = serve([part.format(config=config, dir=tmp_path, interface=server) for part in SERVERS[name][1]], tmp_path, server)
    try:
        sock = in_namespace(client, lambda: client_socket(client))
        deadline = time.monotonic() + 30
        with sock:
            offers = {kind: ask(sock, MACS[CLIENT_NODES[kind]][1], arch, user_class, deadline) for kind, (arch, user_class) in CLIENTS.items()}
    finally:
        log = stop()
    expected = {
        "BIOS PXE (client arch 0)": {"ip": "10.0.50.72", "next-server": "10.0.20.50", "file": "undionly.kpxe"},
        "UEFI PXE (client arch 7)": {"ip": "10.0.50.71", "next-server": "10.0.20.50", "file": "ipxe.efi"},
        "UEFI PXE (client arch 9)": {"ip": "10.0.50.73", "next-server": "10.0.20.50", "file": "ipxe.efi"},
        "iPXE (user class iPXE)": {"ip": "10.0.50.72", "file": "http://10.0.20.50:8080/boot.ipxe"},
        "iPXE as a PXE ROM (another user class)": {"ip": "10.0.50.72", "next-server": "10.0.20.50", "file": "undionly.kpxe"},
    }
    seen = {kind: offer and {key: offer[key] for key in expected[kind]} for kind, offer in offers.items()}
    assert seen == expected, log + "\n" + config.read_text()
