"""Benchmark: the configs play (validate, secrets, render, talosconfig) for 3, 100 and 1000 nodes.

Each size gets a fresh inventory with one host_vars file per node (as a user would have) and a
fresh clusters/ directory. The cold run creates the secrets and renders every node; the warm run
is the no-change re-run. Times are wall-clock for the whole ansible-playbook process, so Ansible's
own start-up and inventory parsing are included. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ansible_runner import REPO, ansible_env  # noqa: E402


def write_inventory(root, count):
    controlplanes = [f"cp{i:04d}" for i in range(min(3, count))]
    workers = [f"w{i:04d}" for i in range(count - len(controlplanes))]
    hosts = {
        "all": {
            "vars": {
                "talos_cluster_name": "bench",
                "talos_cluster_endpoint": "https://10.20.0.2:6443",
                "talos_version": "v1.11.5",
                "talos_network": "10.20.0.0/20",
                "talos_gateway": "10.20.0.1",
                "talos_nameservers": ["10.20.0.1"],
                "talos_vip": "10.20.0.2",
                "talos_install_disk": "/dev/sda",
                "talos_cluster_patches": [{"machine": {"sysctls": {"vm.max_map_count": "262144"}}}],
            },
            "children": {
                "talos": {
                    "children": {
                        "controlplane": {"hosts": {name: None for name in controlplanes}},
                        "workers": {"hosts": {name: None for name in workers}},
                    }
                }
            },
        }
    }
    (root / "host_vars").mkdir(parents=True)
    (root / "hosts.yml").write_text(yaml.safe_dump(hosts))
    for index, name in enumerate(controlplanes + workers):
        address = 10 + index
        node = {
            "talos_mac": "02:00:00:00:%02x:%02x" % (address >> 8, address & 0xFF),
            "talos_ip": "10.20.%d.%d" % (address >> 8, address & 0xFF),
        }
        (root / "host_vars" / f"{name}.yml").write_text(yaml.safe_dump(node))


def run_play(inventory, workdir):
    start = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(REPO / "playbooks" / "configs.yml"), "-i", str(inventory)],
        cwd=workdir,
        env=ansible_env(),
        capture_output=True,
        check=False,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit("configs play failed:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[3, 100, 1000])
    args = parser.parse_args()
    rows = []
    for count in args.sizes:
        workdir = Path(tempfile.mkdtemp(prefix=f"nbt-bench-{count}-"))
        try:
            write_inventory(workdir / "inventory", count)
            cold = run_play(workdir / "inventory", workdir)
            warm = run_play(workdir / "inventory", workdir)
            rows.append((count, cold, warm))
            print(f"{count:>5} nodes: cold {cold:7.2f} s ({cold / count * 1000:7.1f} ms/node), "
                  f"warm {warm:7.2f} s ({warm / count * 1000:7.1f} ms/node)", flush=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\n| nodes | cold run (s) | ms/node | warm run (s) | ms/node |")
    print("|---:|---:|---:|---:|---:|")
    for count, cold, warm in rows:
        print(f"| {count} | {cold:.2f} | {cold / count * 1000:.1f} | {warm:.2f} | {warm / count * 1000:.1f} |")
    by_size = {count: cold for count, cold, _unused in rows}
    if 100 in by_size and 1000 in by_size:
        ratio = (by_size[1000] / 1000) / (by_size[100] / 100)
        print(f"\nper-node cost at 1000 / per-node cost at 100 (cold): {ratio:.2f}x")


if __name__ == "__main__":
    main()
