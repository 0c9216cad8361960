"""netboot.talos.matchbox_profile through Ansible: writes, idempotence, check and diff, prune, refusals."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_runner import local_play

KERNEL = "/assets/talos/v1.9.4/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/kernel-amd64"


def profile(profile_id, *args):
    return {"id": profile_id, "name": "Talos " + profile_id, "boot": {"kernel": KERNEL, "initrd": ["/assets/initramfs.xz"], "args": list(args)}}


def task(data_dir, profiles, **options):
    return local_play([{"name": "profiles", "netboot.talos.matchbox_profile": dict(data_dir=str(data_dir), profiles=profiles, **options)}])


def read(data_dir, profile_id):
    return json.loads((data_dir / "profiles" / (profile_id + ".json")).read_text())


def test_writes_one_file_per_profile_then_changes_nothing(run_playbook, tmp_path):
    data = tmp_path / "matchbox"
    profiles = [profile("talos-controlplane-v1.9.4-amd64", "initrd=initramfs.xz", "talos.platform=metal"), profile("other")]
    first = run_playbook(task(data, profiles))
    assert first.rc == 0, first.stdout
    assert first.task("profiles")["result"]["changed"] is True
    for entry in profiles:
        path = data / "profiles" / (entry["id"] + ".json")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        document = read(data, entry["id"])
        assert document["id"] == entry["id"]
        assert document["boot"] == entry["boot"]
        assert document["netboot.talos"] == {"managed": True}
    second = run_playbook(task(data, profiles))
    assert second.rc == 0 and second.changed == 0
    assert second.task("profiles")["result"]["written"] == []


def test_check_mode_reports_without_writing_and_diff_shows_the_json(run_playbook, tmp_path):
    data = tmp_path / "matchbox"
    checked = run_playbook(task(data, [profile("p1", "a=b")]), check=True, diff=True)
    assert checked.rc == 0, checked.stdout
    result = checked.task("profiles")["result"]
    assert result["changed"] is True
    assert not (data / "profiles" / "p1.json").exists()
    (diff,) = result["diff"]
    assert diff["before"] == "" and json.loads(diff["after"])["boot"]["args"] == ["a=b"]

    run_playbook(task(data, [profile("p1", "a=b")]))
    changed = run_playbook(task(data, [profile("p1", "a=c")]), diff=True)
    (diff,) = changed.task("profiles")["result"]["diff"]
    assert json.loads(diff["before"])["boot"]["args"] == ["a=b"]
    assert json.loads(diff["after"])["boot"]["args"] == ["a=c"]


def test_prune_removes_only_our_files_not_listed(run_playbook, tmp_path):
    data = tmp_path / "matchbox"
    assert run_playbook(task(data, [profile("keep"), profile("old")])).rc == 0
    foreign = data / "profiles" / "handmade.json"
    foreign.write_text(json.dumps({"id": "handmade", "boot": {"kernel": "/k"}}))

    without_prune = run_playbook(task(data, [profile("keep")]))
    assert without_prune.rc == 0 and without_prune.changed == 0
    assert (data / "profiles" / "old.json").exists()

    pruned = run_playbook(task(data, [profile("keep")], prune=True))
    assert pruned.rc == 0
    assert pruned.task("profiles")["result"]["removed"] == [str(data / "profiles" / "old.json")]
    assert sorted(os.listdir(data / "profiles")) == ["handmade.json", "keep.json"]
    assert run_playbook(task(data, [profile("keep")], prune=True)).changed == 0


REFUSED = {
    "path traversal in id": ([profile("../escape")], "profiles[../escape].id"),
    "slash in id": ([profile("a/b")], "profiles[a/b].id"),
    "id ending in .json": ([profile("p.json")], "profiles[p.json].id"),
    "empty kernel": ([{"id": "p", "boot": {"kernel": ""}}], "profiles[p].boot.kernel"),
    "id given twice": ([profile("p"), profile("p")], "id 'p' is given twice"),
    "ignition file outside the data dir": ([dict(profile("p"), ignition_id="../../etc/passwd")], "profiles[p].ignition_id"),
    "misspelled key": ([dict(profile("p"), boot={"kernel": "/k", "argz": ["x"]})], "argz"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refuses_bad_profiles_before_writing_anything(run_playbook, tmp_path, case):
    profiles, message = REFUSED[case]
    data = tmp_path / "matchbox"
    run = run_playbook(task(data, [profile("good")] + profiles))
    assert run.rc != 0
    assert run.task("profiles")["status"] == "failed"
    result = run.task("profiles")["result"]
    assert message in result["msg"]
    assert not (data / "profiles").exists()
    assert not (tmp_path / "escape.json").exists()
