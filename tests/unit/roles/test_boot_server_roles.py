"""Roles tftp, matchbox and dhcp through ansible-playbook: bad input stops them before anything is
written, and the dnsmasq configuration they render is what a real dnsmasq accepts, with no boot loop.

Nothing here starts a service or opens a socket: bad-input runs fail at the role's first checks and
the rendering runs use check mode (+ diff), so no daemon is started on the host's interfaces.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from ansible_runner import local_play


def role_play(role, **params):
    # the minimal fact subset still has os_family and service_mgr, which the roles read
    return local_play(
        [{"name": "Apply the role", "ansible.builtin.include_role": {"name": "netboot.talos." + role}, "vars": params}],
        gather_facts=True,
        gather_subset=["!all"],
    )


def failure_message(run):
    assert run.rc != 0, run.stdout
    return " ".join(str(f["result"].get("msg", "")) for f in run.failures) + run.stdout


@pytest.mark.parametrize(
    "params, field",
    [
        ({"matchbox_log_level": "critical"}, "matchbox_log_level"),
        ({"matchbox_log_level": "notice"}, "matchbox_log_level"),
        ({"matchbox_address": "8080"}, "matchbox_address"),
        ({"matchbox_rpc_address": "https://mb:8081"}, "matchbox_rpc_address"),
    ],
)
def test_matchbox_rejects_bad_settings_before_writing(run_playbook, tmp_path, params, field):
    data_dir = tmp_path / "matchbox"
    run = run_playbook(role_play("matchbox", matchbox_data_dir=str(data_dir), **params))
    assert field in failure_message(run)
    assert not data_dir.exists()


def test_matchbox_requires_tls_files_for_grpc(run_playbook, tmp_path):
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "ca.crt").write_text("not checked here\n")
    data_dir = tmp_path / "matchbox"
    run = run_playbook(role_play("matchbox", matchbox_rpc_address="127.0.0.1:8081",
                                 matchbox_config_dir=str(config_dir), matchbox_data_dir=str(data_dir)))
    message = failure_message(run)
    assert "server.crt, server.key" in message and "ca.crt" not in message.split("needs")[1].split("in")[0]
    assert not data_dir.exists()


@pytest.mark.parametrize(
    "params, text",
    [
        ({}, "tftp_matchbox_url"),
        ({"tftp_matchbox_url": "10.0.20.50:8080"}, "tftp_matchbox_url"),
        ({"tftp_matchbox_url": "http://10.0.20.50:8080", "tftp_ipxe_source": "url"},
         "no source for undionly.kpxe, ipxe.efi, snponly.efi"),
        ({"tftp_matchbox_url": "http://10.0.20.50:8080", "tftp_install_method": "container"}, "tftp_container_image"),
    ],
)
def test_tftp_rejects_bad_settings_before_writing(run_playbook, tmp_path, params, text):
    root = tmp_path / "tftp"
    run = run_playbook(role_play("tftp", tftp_root=str(root), **params))
    assert text in failure_message(run)
    assert not root.exists()


FULL = {
    "dhcp_mode": "full",
    "dhcp_interface": "nbt0",
    "dhcp_server_ip": "10.250.0.1",
    "dhcp_matchbox_url": "http://10.250.0.1:8080",
    "dhcp_range_start": "10.250.0.100",
    "dhcp_range_end": "10.250.0.150",
    "dhcp_hosts": [
        {"name": "kube01", "mac": "52:54:00:4E:42:01", "ip": "10.250.0.11"},
        {"name": "kube02", "mac": "52-54-00-4e-42-02", "ip": "10.250.0.12"},
    ],
}


@pytest.mark.parametrize(
    "change, text",
    [
        ({"dhcp_interface": ""}, "dhcp_interface must name the one interface"),
        ({"dhcp_server_ip": "bootserver"}, "dhcp_server_ip"),
        ({"dhcp_range_end": "10.250.0"}, "dhcp_range_start, dhcp_range_end"),
        ({"dhcp_hosts": [{"name": "kube01", "mac": "52:54:00:4e:42", "ip": "10.250.0.11"}]}, "wrong: kube01"),
        ({"dhcp_hosts": [{"name": "a", "mac": "52:54:00:4e:42:01", "ip": "10.250.0.11"},
                         {"name": "b", "mac": "52-54-00-4E-42-01", "ip": "10.250.0.12"}]}, "repeat 52:54:00:4e:42:01"),
        ({"dhcp_mode": "proxy", "dhcp_network": ""}, "dhcp_network and dhcp_netmask"),
    ],
)
def test_dhcp_rejects_bad_settings_before_writing(run_playbook, tmp_path, change, text):
    config = tmp_path / "dnsmasq.conf"
    run = run_playbook(role_play("dhcp", **dict(FULL, dhcp_config_file=str(config), dhcp_run_as="daemon", **change)))
    assert text in failure_message(run)
    assert not config.exists()


def rendered_config(run_playbook, tmp_path, **params):
    config = tmp_path / "dnsmasq.conf"
    run = run_playbook(role_play("dhcp", dhcp_config_file=str(config), dhcp_run_as="daemon", **params), check=True, diff=True)
    assert run.rc == 0, run.stdout
    assert not config.exists()  # check mode writes nothing
    result = run.task("netboot.talos.dhcp : Configure dnsmasq")["result"]
    text = result["diff"][0]["after"] if isinstance(result["diff"], list) else result["diff"]["after"]
    config.write_text(text)
    test = subprocess.run(["dnsmasq", "--test", "--conf-file=" + str(config)], capture_output=True, text=True, check=False)
    assert test.returncode == 0, test.stderr
    return text.splitlines()


def test_dhcp_full_mode_config(run_playbook, tmp_path):
    lines = rendered_config(run_playbook, tmp_path, **FULL)
    assert "port=0" in lines and "interface=nbt0" in lines and "bind-interfaces" in lines
    assert "dhcp-host=52:54:00:4e:42:01,10.250.0.11,kube01" in lines
    boots = [line for line in lines if line.startswith("dhcp-boot=")]
    # the iPXE line comes last: a later matching dhcp-boot replaces an earlier one (reference 3.3)
    assert boots == [
        "dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe,,10.250.0.1",
        "dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi,,10.250.0.1",
        "dhcp-boot=tag:ipxe,http://10.250.0.1:8080/boot.ipxe",
    ]
    assert {"dhcp-match=set:efi64,option:client-arch,7", "dhcp-match=set:efi64,option:client-arch,9",
            "dhcp-userclass=set:ipxe,iPXE"} <= set(lines)
    # iPXE by user class alone: an iPXE playing a PXE ROM (other user class, option 175 still sent) is a PXE client
    assert not [line for line in lines if "175" in line and not line.startswith("#")]


def test_dhcp_proxy_mode_config(run_playbook, tmp_path):
    lines = rendered_config(run_playbook, tmp_path, dhcp_server_ip="10.0.20.50", dhcp_network="10.0.20.0",
                            dhcp_matchbox_url="http://10.0.20.50:8080", dhcp_ipxe_target="tftp")
    assert "dhcp-range=10.0.20.0,proxy,255.255.255.0" in lines
    assert not any(line.startswith(("interface=", "dhcp-host=", "dhcp-boot=")) for line in lines)
    services = [line for line in lines if line.startswith("pxe-service=")]
    # one service per (client kind, architecture): several for one CSA make iPXE loop (reference 3.3)
    keys = [re.match(r"pxe-service=(tag:!?ipxe),([^,]+),", s).groups() for s in services]
    assert len(keys) == len(set(keys)) == 6
    assert 'pxe-service=tag:!ipxe,x86PC,"Network boot (iPXE)",undionly.kpxe,10.0.20.50' in services
    assert 'pxe-service=tag:ipxe,X86-64_EFI,"matchbox",matchbox.ipxe,10.0.20.50' in services
