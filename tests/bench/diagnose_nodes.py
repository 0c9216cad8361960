"""Benchmark: playbooks/diagnose.yml over a boot server on loopback and many Talos node doubles.

The site is the one tests/unit/playbooks/test_diagnose.py checks faults on (real tftp-hpa, the
matchbox double, node doubles), here with N nodes of which some are down. Every node is checked in
parallel, so a down node should cost one API timeout, not one per link, and the whole run should
grow far slower than N. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "unit" / "playbooks"))
from test_diagnose import Site  # noqa: E402

NETWORK = ipaddress.ip_network("127.0.24.0/24")


def nodes(count):
    made = []
    for index in range(count):
        address = NETWORK.network_address + 11 + index
        role = "controlplane" if index == 0 else "worker"
        made.append({"name": "cp1" if index == 0 else "w%03d" % index, "role": role, "ip": str(address),
                     "mac": "52:54:00:17:%02x:%02x" % ((11 + index) >> 8, (11 + index) & 0xFF)})
    return made


def measure(count, down):
    with tempfile.TemporaryDirectory(prefix="nbt-bench-diagnose-") as root:
        site = Site(Path(root), nodes(count))
        try:
            site.healthy()
            for name in list(site.cluster.doubles)[-down:] if down else []:
                site.cluster.doubles[name].stop()
            begun = time.monotonic()
            run, report = site.diagnose()
            seconds = time.monotonic() - begun
        finally:
            site.close()
    broken = len(report["broken"]) if report else -1
    if broken != down:
        print("  (size %d: %d nodes reported broken, %d were stopped; rc %d)\n%s" % (count, broken, down, run.rc, run.stdout[-2000:]))
    return seconds, broken


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="2:0,100:0,100:20", help="comma-separated NODES:DOWN pairs")
    args = parser.parse_args(argv)
    rows = []
    for pair in args.sizes.split(","):
        count, down = (int(part) for part in pair.split(":"))
        seconds, broken = measure(count, down)
        rows.append((count, down, broken, seconds))
    print("diagnose.yml over loopback (real tftp-hpa, matchbox double, Talos node doubles); whole ansible-playbook run")
    print("%6s  %5s  %7s  %9s  %11s" % ("NODES", "DOWN", "BROKEN", "SECONDS", "MS PER NODE"))
    for count, down, broken, seconds in rows:
        print("%6d  %5d  %7d  %9.1f  %11.0f" % (count, down, broken, seconds, seconds * 1000.0 / count))


if __name__ == "__main__":
    main()
