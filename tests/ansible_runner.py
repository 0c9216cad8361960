"""Run real ansible-playbook from tests and read back what Ansible reported.

Every module and role of the collection is tested through Ansible itself: a test writes a small
playbook (or points at one of ours), runs it with the record_results callback enabled, and asserts
on the recorded task results, the play recap and the files left behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    results: list = field(default_factory=list)

    def task(self, name, host=None):
        """The recorded result of the (last) task with this name (role prefix optional), for host if given."""
        for entry in reversed(self.results):
            named = entry["task"] == name or entry["task"].endswith(" : " + name)
            if named and (host is None or entry["host"] == host):
                return entry
        raise KeyError("no result for task %r; tasks seen: %s" % (name, sorted({e["task"] for e in self.results})))

    @property
    def failures(self):
        return [e for e in self.results if e["status"] in ("failed", "unreachable")]

    @property
    def changed(self):
        """Total changed count over all hosts, from the play recap."""
        return sum(int(m.group(3)) for m in RECAP.finditer(self.stdout))

    @property
    def failed(self):
        return sum(int(m.group(5)) for m in RECAP.finditer(self.stdout))


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
            "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "tests" / "callbacks"),
            "ANSIBLE_CALLBACKS_ENABLED": "record_results",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            # The controller's own Python (the virtualenv) runs modules on this machine.
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        }
    )
    env.update(extra or {})
    return env


def ansible_playbook(playbook, workdir, inventory=None, extra_vars=None, check=False, diff=False, env=None, args=()):
    """Run ansible-playbook on a path or on a list of plays (written to workdir first)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if not isinstance(playbook, (str, Path)):
        path = workdir / "playbook.yml"
        path.write_text(yaml.safe_dump(playbook, sort_keys=False))
        playbook = path
    record = workdir / "results.jsonl"
    if record.exists():
        record.unlink()
    command = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook)]
    command += ["-i", str(inventory) if inventory else "localhost,"]
    if extra_vars:
        path = workdir / "extra_vars.json"
        path.write_text(json.dumps(extra_vars))
        command += ["-e", "@%s" % path]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    command += list(args)
    proc = subprocess.run(
        command,
        cwd=str(workdir),
        env=ansible_env(dict(env or {}, NETBOOT_RECORD_FILE=str(record))),
        capture_output=True,
        check=False,
        text=True,
    )
    results = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return Run(proc.returncode, proc.stdout, proc.stderr, results)


def local_play(tasks, name="test", hosts="localhost", gather_facts=False, **play):
    """One play on the controller, the shape most module tests need."""
    return [dict(name=name, hosts=hosts, connection="local", gather_facts=gather_facts, tasks=tasks, **play)]


def wait_for_module(name, workdir, timeout=120):
    """Block until a module `name` runs for the ansible-playbook started in workdir.

    Module processes inherit the playbook's working directory, which tells them apart from the
    same module run by any other playbook on this machine.
    """
    wanted, workdir = ("AnsiballZ_%s" % name).encode(), os.path.realpath(workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in Path("/proc").glob("[0-9]*"):
            try:
                if wanted in (process / "cmdline").read_bytes() and os.readlink(process / "cwd") == workdir:
                    return
            except OSError:
                pass
        time.sleep(0.1)
    raise TimeoutError("module %s did not start in %s" % (name, workdir))
