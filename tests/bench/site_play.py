"""Benchmark: site.yml's re-run at 100 and 1000 nodes over SSH, and the cluster wait against 100 node doubles.

The boot server is this machine reached over SSH (an sshd started here on 127.0.24.1 with its own
host key and configuration under a temporary directory; /etc/ssh is never read by it), so every
module run pays for the connection as with a real boot server. For each size: the cold first run
(secrets, every config rendered and published) and the no-op re-run of tests/bench/site.yml (what
site.yml runs that grows with the node count: validation, configs.yml, and boot_server.yml's
validation, Talos version probe and one matchbox_publish per boot server; no node answers, so the
probe meets every node down). Each run is split into phases by a callback (tests/bench/callbacks);
"start-up" is Ansible's own start and inventory parsing. Then talos_wait polls 100 Talos node doubles
on 127.0.24.10-109 until every one is up. Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "talos_node"))
from ansible_runner import REPO, ansible_env  # noqa: E402
from configs_play import write_inventory  # noqa: E402

SSH_ADDRESS = "127.0.24.1"
PLAYBOOK = REPO / "tests" / "bench" / "site.yml"
PHASES = ("start-up", "validate", "configs", "probe", "publish", "total")
PROBE_TASKS = {"Read the Talos versions the nodes run", "Decide which Talos version each node boots"}


def free_port(address):
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


class Sshd:
    """sshd on SSH_ADDRESS with a host key, a client key and a configuration of its own under directory."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.port = free_port(SSH_ADDRESS)
        self.key = self.dir / "client_key"
        self.process = None

    def start(self):
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not os.path.exists(sshd):
            sys.exit("sshd is missing: `make bench` installs openssh-server (apt)")
        for key in (self.dir / "host_key", self.key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (self.dir / "authorized_keys").write_text((self.dir / "client_key.pub").read_text())
        os.chmod(self.dir / "authorized_keys", 0o600)
        config = self.dir / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress %s:%d" % (SSH_ADDRESS, self.port), "HostKey %s" % (self.dir / "host_key"),
            "AuthorizedKeysFile %s" % (self.dir / "authorized_keys"), "PidFile %s" % (self.dir / "sshd.pid"),
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
            "StrictModes no", "UsePAM no", "MaxStartups 100", "MaxSessions 100", "Subsystem sftp internal-sftp", ""]))
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
        self.process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.dir / "sshd.log", "wb"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((SSH_ADDRESS, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        sys.exit("sshd did not start: " + (self.dir / "sshd.log").read_text())

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(10)

    def host_vars(self):
        return {
            "ansible_host": SSH_ADDRESS, "ansible_port": self.port, "ansible_user": getpass.getuser(),
            "ansible_ssh_private_key_file": str(self.key), "ansible_python_interpreter": sys.executable,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        }


def add_boot_server(root, sshd, data_dir):
    hosts = yaml.safe_load((root / "hosts.yml").read_text())
    boot = dict(sshd.host_vars(), matchbox_data_dir=str(data_dir))
    hosts["all"]["vars"]["talos_matchbox_url"] = "http://10.20.0.50:8080"
    hosts["all"]["children"]["boot_server"] = {"hosts": {"boot1": boot}}
    (root / "hosts.yml").write_text(yaml.safe_dump(hosts))


def phase(row):
    if row["play"] == "Validate the inventory":
        return "validate"
    if row["play"].startswith("Boot server"):
        return "probe" if row["task"] in PROBE_TASKS else "publish"
    return "configs"


def run_site(inventory, workdir):
    """{phase: wall seconds} and the controller's CPU seconds (user + system) for one run of PLAYBOOK."""
    phases_file = Path(workdir) / "phases.jsonl"
    phases_file.unlink(missing_ok=True)
    env = ansible_env({"ANSIBLE_CALLBACK_PLUGINS": "%s:%s" % (REPO / "tests" / "callbacks", REPO / "tests" / "bench" / "callbacks"),
                       "ANSIBLE_CALLBACKS_ENABLED": "bench_phases", "NBT_BENCH_PHASES": str(phases_file)})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(PLAYBOOK), "-i", str(inventory)],
                          cwd=workdir, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit("site play failed:\n%s%s" % (proc.stdout[-3000:], proc.stderr[-3000:]))
    times = {name: 0.0 for name in PHASES}
    for line in phases_file.read_text().splitlines():
        row = json.loads(line)
        times[phase(row)] += row["seconds"]
    times["total"] = elapsed
    times["start-up"] = elapsed - sum(times[name] for name in ("validate", "configs", "probe", "publish"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return times, cpu


def bench_sizes(sizes, sshd):
    times = {}
    for count in sizes:
        workdir = Path(tempfile.mkdtemp(prefix="nbt-bench-site-%d-" % count))
        try:
            write_inventory(workdir / "inventory", count)
            add_boot_server(workdir / "inventory", sshd, workdir / "matchbox")
            for run in ("cold", "no-op"):
                phases, cpu = run_site(workdir / "inventory", workdir)
                for name, seconds in phases.items():
                    times[count, run, name] = seconds
                times[count, run, "controller CPU"] = cpu
                print("%5d nodes, %-5s run: %7.2f s (%s; controller CPU %.1f s; load %s)" % (
                    count, run, phases["total"], ", ".join("%s %.2f" % (name, phases[name]) for name in PHASES[:-1]), cpu,
                    " ".join("%.2f" % value for value in os.getloadavg())), flush=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return times


def print_table(sizes, times):
    print("\n| run | phase | " + " | ".join("%d nodes (s) | ms/node" % count for count in sizes) + " | marginal ms/node | ratio per-node |")
    print("|---|---|" + "---:|---:|" * len(sizes) + "---:|---:|")
    for run in ("no-op", "cold"):
        for name in PHASES + ("controller CPU",):
            row = [times[count, run, name] for count in sizes]
            cells = " | ".join("%.2f | %.1f" % (value, value / count * 1000) for value, count in zip(row, sizes))
            small, large = (row[0], sizes[0]), (row[-1], sizes[-1])
            marginal = (large[0] - small[0]) / (large[1] - small[1]) * 1000 if len(sizes) > 1 else float("nan")
            ratio = (large[0] / large[1]) / (small[0] / small[1]) if len(sizes) > 1 and small[0] else float("nan")
            print("| %s | %s | %s | %.1f | %.2f |" % (run, name, cells, marginal, ratio))


def bench_wait(count, directory):
    import doubles

    members = [{"name": "n%03d" % i, "role": "controlplane" if i < 3 else "worker", "ip": "127.0.24.%d" % (10 + i)} for i in range(count)]
    start = time.perf_counter()
    cluster = doubles.Cluster(directory, members, name="bench")
    try:
        for batch in range(0, count, 10):  # ten at a time: a hundred Python start-ups at once starve each other
            for member in members[batch:batch + 10]:
                cluster.doubles[member["name"]].start(config=cluster.config(member["name"]), wait=False)
            for member in members[batch:batch + 10]:
                doubles.wait_port(member["ip"], 50000, timeout=300)
        started = time.perf_counter() - start
        play = [{"name": "wait", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
            {"name": "wait", "netboot.talos.talos_wait": {"talosconfig": str(cluster.talosconfig), "context": "bench",
                                                          "nodes": members, "wait_for": "up", "timeout": 300, "interval": 0.5}}]}]
        path = Path(directory) / "wait.yml"
        path.write_text(json.dumps(play))
        begin = time.perf_counter()
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(path), "-i", "localhost,"],
                              cwd=directory, env=ansible_env(), capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - begin
        if proc.returncode != 0:
            sys.exit("talos_wait failed:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])
    finally:
        cluster.stop()
    print("\n| cluster wait | nodes | doubles started (s) | talos_wait play (s) | ms/node |")
    print("|---|---:|---:|---:|---:|")
    print("| all up | %d | %.2f | %.2f | %.1f |" % (count, started, elapsed, elapsed / count * 1000))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[100, 1000], help="node counts")
    parser.add_argument("--wait-nodes", type=int, default=100, help="node doubles for the cluster wait (0: none)")
    parser.add_argument("--only-wait", action="store_true", help="only the cluster wait")
    args = parser.parse_args()
    if not args.only_wait:
        directory = Path(tempfile.mkdtemp(prefix="nbt-bench-ssh-"))
        sshd = Sshd(directory).start()
        try:
            print_table(args.sizes, bench_sizes(args.sizes, sshd))
        finally:
            sshd.stop()
            shutil.rmtree(directory, ignore_errors=True)
    if args.wait_nodes:
        wait_dir = tempfile.mkdtemp(prefix="nbt-bench-wait-")
        try:
            bench_wait(args.wait_nodes, wait_dir)
        finally:
            shutil.rmtree(wait_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
