"""netboot.talos.print_text through Ansible: text comes out as given, whatever the stdout callback."""

from __future__ import annotations

import pytest

from ansible_runner import ansible_playbook, local_play

SETTINGS = ['option user-class = "iPXE";', 'filename "http://10.0.50.1:8080/boot.ipxe";', "C:\\tab\tend"]


@pytest.mark.parametrize("callback", ["ansible.builtin.default", "ansible.builtin.minimal", "ansible.builtin.oneline"])
def test_lines_are_printed_verbatim_with_any_callback(tmp_path, callback):
    run = ansible_playbook(
        local_play([{"name": "show", "netboot.talos.print_text": {"title": "Settings:", "text": SETTINGS}}]),
        tmp_path,
        env={"ANSIBLE_STDOUT_CALLBACK": callback},
    )
    assert run.rc == 0, run.stdout + run.stderr
    expected = "\n".join(["Settings:"] + SETTINGS)
    assert expected in run.stdout
    assert '\\"iPXE\\"' not in run.stdout
    assert run.task("show")["status"] == "ok"


def test_a_string_is_printed_as_it_is_in_check_mode(tmp_path):
    table = "NAME    STATUS\nkube01  Ready"
    run = ansible_playbook(local_play([{"name": "show", "netboot.talos.print_text": {"text": table + "\n"}}]), tmp_path, check=True)
    assert run.rc == 0, run.stdout + run.stderr
    assert table + "\n" in run.stdout


def test_text_is_required(tmp_path):
    run = ansible_playbook(local_play([{"name": "show", "netboot.talos.print_text": {"title": "x"}}]), tmp_path)
    assert run.rc != 0
    assert "'text' is required" in run.stdout + run.stderr
