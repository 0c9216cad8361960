"""netboot.talos.matchbox_publish through ansible-playbook: one run writes configs, profiles and groups, prunes only what is ours."""

from __future__ import annotations

import json
import os
import stat

import pytest

SECRET = "token: never-shown-0123456789"
PROFILE = {"id": "talos-worker", "boot": {"kernel": "/assets/k", "initrd": ["/assets/i"], "args": ["talos.platform=metal"]}}
GROUPS = [{"id": name, "profile": "talos-worker", "selector": {"mac": mac}}
          for name, mac in (("w1", "02:00:00:00:00:01"), ("w2", "02:00:00:00:00:02"))]
CONFIGS = [{"name": "w1", "file": "02-00-00-00-00-01.yaml"}, {"name": "w2", "file": "02-00-00-00-00-02.yaml"}]


@pytest.fixture
def site(tmp_path):
    rendered = tmp_path / "nodes"
    rendered.mkdir()
    for entry in CONFIGS:
        (rendered / ("%s.yaml" % entry["name"])).write_text("machine:\n  %s\n  hostname: %s\n" % (SECRET, entry["name"]))
    return {"rendered": rendered, "data": tmp_path / "matchbox"}


def publish(run_playbook, site, check=False, diff=False, **args):
    arguments = dict(data_dir=str(site["data"]), profiles=[PROFILE], groups=GROUPS, configs=CONFIGS, configs_dir=str(site["rendered"]))
    arguments.update(args)
    play = [{"name": "publish", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": [{"name": "publish", "netboot.talos.matchbox_publish": arguments}]}]
    run = run_playbook(play, check=check, diff=diff)
    return run, run.task("publish")["result"]


def listing(directory):
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


def test_one_run_publishes_everything_and_shows_no_secret(run_playbook, site):
    checked, would = publish(run_playbook, site, check=True, diff=True)
    assert checked.rc == 0 and would["changed"] and not site["data"].exists(), checked.stdout
    run, result = publish(run_playbook, site, diff=True)
    assert run.rc == 0, run.stdout
    assert listing(site["data"]) == ["assets/talos/configs/02-00-00-00-00-01.yaml", "assets/talos/configs/02-00-00-00-00-02.yaml",
                                     "groups/w1.json", "groups/w2.json", "profiles/talos-worker.json"]
    config = site["data"] / "assets" / "talos" / "configs" / "02-00-00-00-00-01.yaml"
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o640 and SECRET in config.read_text()
    for output in (checked.stdout, run.stdout, json.dumps(run.results), json.dumps(checked.results)):
        assert "never-shown" not in output
    assert "<redacted> sha256:" in run.stdout
    again, result = publish(run_playbook, site, diff=True)
    assert again.rc == 0 and not result["changed"] and result["written"] == [] and again.changed == 0, again.stdout


def test_prune_removes_only_what_this_collection_published(run_playbook, site):
    assert publish(run_playbook, site)[0].rc == 0
    foreign = {"groups/other.json": json.dumps({"id": "other", "profile": "talos-worker", "selector": {"mac": "02:00:00:00:00:09"}}),
               "profiles/other.json": json.dumps({"id": "other", "boot": {"kernel": "/k"}}),
               "assets/talos/configs/README": "not a config"}
    for name, content in foreign.items():
        (site["data"] / name).write_text(content)
    kept = {"profiles": [PROFILE], "groups": GROUPS[:1], "configs": CONFIGS[:1]}
    unpruned = publish(run_playbook, site, **kept)[1]
    assert not unpruned["changed"] and (site["data"] / "groups" / "w2.json").exists()
    run, result = publish(run_playbook, site, prune=True, **kept)
    assert run.rc == 0 and sorted(os.path.basename(path) for path in result["removed"]) == ["02-00-00-00-00-02.yaml", "w2.json"]
    assert listing(site["data"]) == sorted(["assets/talos/configs/02-00-00-00-00-01.yaml", "groups/w1.json", "profiles/talos-worker.json"]
                                           + list(foreign))


def test_withheld_configs_are_removed_and_the_rest_kept(run_playbook, site):
    assert publish(run_playbook, site)[0].rc == 0
    run, result = publish(run_playbook, site, configs=CONFIGS[:1], withheld=[CONFIGS[1]["file"]])
    assert run.rc == 0 and result["removed"] == [str(site["data"] / "assets/talos/configs" / CONFIGS[1]["file"])]
    assert (site["data"] / "groups" / "w2.json").exists()


REFUSED = {
    "a rendered config that is missing": (dict(configs=CONFIGS + [{"name": "w3", "file": "02-00-00-00-00-03.yaml"}]),
                                          ["configs[w3]: cannot read its rendered config"]),
    "every problem of the matchbox data at once": (
        dict(configs=[{"name": "w1", "file": "../w1.yaml"}], groups=GROUPS + [{"id": "w3", "profile": "absent", "selector": {"mac": "zz"}}]),
        ["configs[../w1.yaml]: file must be a plain *.yaml file name", "groups[w3].selector.mac"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_before_anything_is_written(run_playbook, site, case):
    args, expected = REFUSED[case]
    run, result = publish(run_playbook, site, **args)
    assert run.rc != 0 and not site["data"].exists()
    for text in expected:
        assert any(text in problem for problem in result["problems"]), result["problems"]


def test_a_published_config_that_differs_is_written_again(run_playbook, site):
    assert publish(run_playbook, site)[0].rc == 0
    published = site["data"] / "assets" / "talos" / "configs"
    (published / CONFIGS[0]["file"]).write_text("tampered\n")
    os.chmod(published / CONFIGS[1]["file"], 0o644)
    run, result = publish(run_playbook, site, diff=True)
    assert run.rc == 0 and result["changed"], run.stdout
    assert sorted(result["written"]) == sorted(str(published / entry["file"]) for entry in CONFIGS)
    assert (published / CONFIGS[0]["file"]).read_text() == (site["rendered"] / "w1.yaml").read_text()
    assert stat.S_IMODE(os.stat(published / CONFIGS[1]["file"]).st_mode) == 0o640
    assert "never-shown" not in run.stdout + json.dumps(run.results) and "needs_content" not in json.dumps(result)
