"""The rollout prints each node's stages while it runs (talos_rollout is an action plugin on the
controller), with the default stdout callback and with the minimal one. Node doubles on 127.0.16.x."""

from __future__ import annotations

import re

import pytest

import test_talos_rollout as rollout_tests

NET = "127.0.16."
# A stage line: two spaces, the node's name padded, what happened, the seconds since the rollout began.
LINE = re.compile(r"^  (\S+) +(.+?)   (\d+\.\d) s$")
TICK = re.compile(r"^  waiting (\d+) s: (\d) of (\d) done; (.+)$")


@pytest.fixture
def lab(tmp_path, run_playbook, monkeypatch):
    monkeypatch.setattr(rollout_tests, "NET", NET)
    nodes = [rollout_tests.node("cp1", "controlplane", 11), rollout_tests.node("w1", "worker", 21)]
    made = rollout_tests.Lab(tmp_path, run_playbook, nodes)
    made.group_vars.update(talos_cluster_endpoint="https://%s11:6443" % NET, talos_network=NET + "0/24",
                           talos_rollout_progress_every=1)
    made.write_inventory()
    yield made
    made.stop()


def stage_lines(stdout):
    """(node, words) of every stage line, in the order printed, and the periodic lines."""
    lines = [LINE.match(line) for line in stdout.splitlines()]
    stages = [(m.group(1), m.group(2)) for m in lines if m and not m.group(1) == "waiting"]
    ticks = [TICK.match(line) for line in stdout.splitlines()]
    return stages, [m for m in ticks if m]


def test_each_stage_of_each_node_is_printed_as_it_happens_with_the_default_and_the_minimal_callback(lab):
    lab.bring_up(extra={"w1": ["--reboot-delay", "2.5"]})
    for callback in (None, "minimal"):
        lab.set_vars("w1", talos_patches=[{"machine": {"env": {"HTTPS_PROXY": "http://proxy.example:%s" % (callback or 3128)}}}])
        env = {"ANSIBLE_STDOUT_CALLBACK": callback} if callback else {}
        run = lab.play("configs", "converge", env=env)
        print(run.stdout)
        assert run.rc == 0, (callback, run.stdout)
        check_lines(run)
        again = lab.play("converge", env=env)
        assert again.rc == 0 and again.changed == 0, again.stdout
        assert stage_lines(again.stdout) == ([], [])


def check_lines(run):
    stages, ticks = stage_lines(run.stdout)
    record = run.task("Roll the changes out")["result"]["records"][0]
    assert [s["stage"] for s in record["stages"]] == ["apply", "reboot: going down", "reboot: coming back",
                                                      "runs the new config", "kubernetes ready"]
    expected = []
    for stage in record["stages"]:
        expected += [(stage["stage"], "...", None), (stage["stage"], "done in", stage["seconds"])]
    printed = []
    for node, words in stages:
        assert node == "w1", stages
        match = re.match(r"^(.+?) (\.\.\.|done in) ?(\d+\.\d)?", words)
        printed.append((match.group(1), match.group(2), float(match.group(3)) if match.group(3) else None))
    assert [p[:2] for p in printed] == [e[:2] for e in expected], stages
    # A stage line's seconds and the record's are measured apart: they may differ in the last digit.
    assert all(abs(p[2] - e[2]) <= 0.15 for p, e in zip(printed, expected) if e[2] is not None), (printed, expected)
    # Printed while the task runs, before its result; the reboot's wait gets a periodic line naming the stage.
    assert run.stdout.index("  w1  apply ...") < run.stdout.index("Rollout:")
    assert any(m.group(4).startswith("w1: reboot: coming back (") for m in ticks), ticks
    assert all(m.group(2) == "0" and m.group(3) == "1" for m in ticks), ticks
