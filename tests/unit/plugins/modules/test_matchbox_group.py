"""netboot.talos.matchbox_group through Ansible: matchbox's normalisation, refusals, check, diff, prune.

What matchbox itself would make of the files is checked with the matchbox test double's parser and
selection rule (tests/fixtures/matchbox), which follow matchbox's code.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from ansible_runner import REPO, local_play

sys.path.insert(0, str(REPO / "tests" / "fixtures" / "matchbox"))
import matchbox_double  # noqa: E402

PROFILE = "talos-controlplane-v1.9.4-amd64"


def group(group_id, mac=None, profile=PROFILE, **extra):
    entry = {"id": group_id, "name": group_id, "profile": profile, "metadata": {"ip": "10.0.50.71"}}
    if mac:
        entry["selector"] = {"mac": mac}
    entry.update(extra)
    return entry


def task(data_dir, groups, **options):
    return local_play([{"name": "groups", "netboot.talos.matchbox_group": dict(data_dir=str(data_dir), groups=groups, **options)}])


@pytest.fixture
def data(tmp_path):
    """A data dir holding one valid profile."""
    root = tmp_path / "matchbox"
    (root / "profiles").mkdir(parents=True)
    (root / "groups").mkdir()
    (root / "profiles" / (PROFILE + ".json")).write_text(json.dumps({"id": PROFILE, "boot": {"kernel": "/k"}}))
    return root


def test_groups_are_written_normalised_and_matchbox_selects_them_by_mac(run_playbook, data):
    groups = [group("kube01", "18-03-73-2A-D8-A2"), group("kube02", "0200.0000.5072")]
    run = run_playbook(task(data, groups))
    assert run.rc == 0, run.stdout
    for name, mac in (("kube01", "18:03:73:2a:d8:a2"), ("kube02", "02:00:00:00:50:72")):
        path = data / "groups" / (name + ".json")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        document = json.loads(path.read_text())
        assert document["id"] == name and document["selector"] == {"mac": mac}
        assert document["metadata"] == {"ip": "10.0.50.71"}
    parsed = [matchbox_double.parse_group(p.read_bytes()) for p in sorted((data / "groups").iterdir())]
    # iPXE asks with ${mac:hexhyp}; matchbox normalises the label and picks the group.
    labels = matchbox_double.labels_from_query("mac=18-03-73-2a-d8-a2&uuid=x")
    assert matchbox_double.select_group(parsed, labels)["id"] == "kube01"
    assert run_playbook(task(data, groups)).changed == 0


def test_selector_keys_are_lower_cased_and_uuids_too(run_playbook, data):
    run = run_playbook(task(data, [group("n1", selector={"MAC": "02:00:00:00:00:01", "UUID": "ABC-DEF"})]))
    assert run.rc == 0, run.stdout
    document = json.loads((data / "groups" / "n1.json").read_text())
    assert document["selector"] == {"mac": "02:00:00:00:00:01", "uuid": "abc-def"}


def test_check_mode_writes_nothing_and_tolerates_a_profile_an_earlier_task_would_create(run_playbook, data):
    run = run_playbook(task(data, [group("kube01", "02:00:00:00:00:01", profile="not-yet")]), check=True, diff=True)
    assert run.rc == 0, run.stdout
    result = run.task("groups")["result"]
    assert result["changed"] is True
    assert any("not-yet" in w for w in result.get("warnings", []))
    assert json.loads(result["diff"][0]["after"])["profile"] == "not-yet"
    assert os.listdir(data / "groups") == []


def test_prune_removes_only_groups_this_collection_wrote(run_playbook, data):
    assert run_playbook(task(data, [group("kube01", "02:00:00:00:00:01"), group("kube02", "02:00:00:00:00:02")])).rc == 0
    (data / "groups" / "handmade.json").write_text(json.dumps({"profile": PROFILE, "selector": {"os": "installed"}}))
    run = run_playbook(task(data, [group("kube01", "02:00:00:00:00:01")], prune=True), diff=True)
    assert run.rc == 0, run.stdout
    assert sorted(os.listdir(data / "groups")) == ["handmade.json", "kube01.json"]
    (diff,) = run.task("groups")["result"]["diff"]
    assert json.loads(diff["before"])["id"] == "kube02" and diff["after"] == ""


def existing(name, content):
    return (name, content)


REFUSED = {
    "invalid MAC": ([group("kube01", "18:03:73:2a:d8")], [], "groups[kube01].selector.mac"),
    "same MAC twice in other notations": (
        [group("kube01", "18:03:73:2a:d8:a2"), group("kube02", "18-03-73-2A-D8-A2")], [], "groups[kube01] and groups[kube02] have the same selector"),
    "two default groups": ([group("a"), group("b")], [], "groups[a] and groups[b] are all default groups"),
    "default group beside an existing default group": (
        [group("a")], [existing("old-default.json", {"profile": PROFILE})], "groups/old-default.json are all default groups"),
    "MAC already selected by another group file": (
        [group("kube01", "02:00:00:00:00:01")], [existing("other.json", {"profile": PROFILE, "selector": {"mac": "02-00-00-00-00-01"}})],
        "groups[kube01] and groups/other.json have the same selector"),
    "missing profile": ([group("kube01", "02:00:00:00:00:01", profile="nope")], [], "profile 'nope' does not exist"),
    "existing group file with bad JSON": ([group("kube01", "02:00:00:00:00:01")], [existing("broken.json", "{not json")],
                                          "groups/broken.json: not valid JSON"),
    "existing group file with a bad MAC": ([group("kube01", "02:00:00:00:00:01")],
                                           [existing("badmac.json", {"profile": PROFILE, "selector": {"mac": "zz"}})], "badmac.json"),
    "existing group file whose id differs from its name": (
        [group("kube01", "02:00:00:00:00:01")], [existing("one.json", {"id": "two", "profile": PROFILE, "selector": {"os": "x"}})],
        "its id 'two' differs from its file name 'one'"),
    "profile file whose id differs from its name": (
        [group("kube01", "02:00:00:00:00:01", profile="renamed")], [existing("../profiles/renamed.json", {"id": "original", "boot": {"kernel": "/k"}})],
        "profiles/renamed.json: its id 'original' differs"),
    "path traversal in id": ([group("../../etc/x", "02:00:00:00:00:01")], [], "groups[../../etc/x].id"),
    "path traversal in profile": ([group("kube01", "02:00:00:00:00:01", profile="../groups/x")], [], "groups[kube01].profile"),
    "unknown key": ([group("kube01", "02:00:00:00:00:01", selectors={"mac": "x"})], [], "selectors"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refuses_what_matchbox_would_skip_or_mis_select(run_playbook, data, case):
    groups, files, message = REFUSED[case]
    for name, content in files:
        (data / "groups" / name).write_text(content if isinstance(content, str) else json.dumps(content))
    before = sorted(os.listdir(data / "groups"))
    run = run_playbook(task(data, groups + [group("fine", "02:00:00:00:99:99")]))
    assert run.rc != 0
    assert run.task("groups")["status"] == "failed"
    result = run.task("groups")["result"]
    assert message in result["msg"], result["msg"]
    assert sorted(os.listdir(data / "groups")) == before
    assert not Path(data.parent / "etc").exists()
