#!/usr/bin/env python3
# Lab tool of the netboot.talos virtual lab (roles/lab): not part of the collection's API.
from __future__ import annotations

"""Network-boot the lab's QEMU machines and report what each one did.

Reads its settings as JSON on stdin, prints the report as JSON on stdout (roles/lab/tasks/boot.yml).

- Boots the machines one after the other (QEMU, TCG by default) on tap devices of the lab bridge:
  BIOS machines with an e1000 NIC whose option ROM is iPXE, UEFI machines on OVMF with a
  virtio-net NIC without option ROM (so the firmware's own PXE client runs).
- A machine ends when it powers off (the stand-in image does after its last step), when the boot
  timeout passes, or, for a machine expected to get no config, shortly after matchbox refused it.
- Then reads dnsmasq's log, tftpd's log (syslog), matchbox's request log (container log) and each
  serial console and reports per machine the lease, TFTP files, iPXE scripts, kernel, initrd, config
  fetched, request counts and the time of every step since the machine was started.
- Writes <lab_dir>/report.json and keeps each serial console in <lab_dir>/machines/<name>/serial.log.

Settings: namespace, bridge, lab_dir, machines [{name, mac, firmware: bios|uefi, expect_config,
hostname, machine_type}], memory_mb, accelerator, boot_timeout, stranger_grace, ovmf_code,
ovmf_vars, dnsmasq_log, tftp_log, matchbox_container, container_engine.
"""

import datetime
import json
import os
import re
import shutil
import subprocess
import threading
import time

import sys

ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Z0-9]|[=>c])")
SYSLOG_STAMP = re.compile(r"^([A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d) ")
DNSMASQ_LINE = re.compile(r"dnsmasq-dhcp\[\d+\]: (?:(\d+) )?(.*)$")
TFTP_RRQ = re.compile(r"in\.tftpd\[\d+\]: RRQ from (?:::ffff:)?([0-9.]+) filename (\S+)")
HTTP_REQUEST = re.compile(r'msg="HTTP (GET|HEAD) ([^"]+)"')
NO_MATCH = re.compile(r'msg="(No matching (?:group|profile))"')
STEP = re.compile(r"NBT-STEP (\S+)(.*?)(?: uptime=[0-9.]+)?$")
FIELD = re.compile(r"(\w[\w-]*)=(\S*)")


def syslog_time(line, year):
    match = SYSLOG_STAMP.match(line)
    if not match:
        return None
    stamp = datetime.datetime.strptime("%d %s" % (year, match.group(1)), "%Y %b %d %H:%M:%S")
    return time.mktime(stamp.timetuple())


def read_lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        return []


def container_log(engine, container, since):
    result = subprocess.run([engine, "logs", "--timestamps", "--since", str(int(since) - 1), container],
                            capture_output=True, text=True, check=False)
    lines = []
    for line in (result.stdout + result.stderr).splitlines():
        stamp, _, rest = line.partition(" ")
        try:
            # 2026-11-23T21:40:03.123456789Z or ...+00:00: keep microseconds for fromisoformat
            stamp = re.sub(r"(\.\d{6})\d+", r"\1", stamp).replace("Z", "+00:00")
            lines.append((datetime.datetime.fromisoformat(stamp).timestamp(), rest))
        except ValueError:
            continue
    return lines


class Machine:
    def __init__(self, params, spec):
        self.params = params
        self.spec = spec
        self.name = spec["name"]
        self.mac = spec["mac"].lower()
        self.dir = os.path.join(self.params["lab_dir"], "machines", self.name)
        self.tap = "nbt" + self.mac.replace(":", "")[-8:]
        self.serial = []  # (seconds since start, text)
        self.start = self.end = None
        self.ending = "power-off"

    def netns(self, *argv, check=True):
        return subprocess.run(["ip", "netns", "exec", self.params["namespace"]] + list(argv),
                              capture_output=True, text=True, check=check)

    def qemu_command(self):
        p = self.params
        command = ["qemu-system-x86_64", "-name", self.name, "-accel", p["accelerator"], "-m", str(p["memory_mb"]),
                   "-smp", "1", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
                   "-netdev", "tap,id=lan,ifname=%s,script=no,downscript=no" % self.tap]
        if self.spec["firmware"] == "uefi":
            variables = os.path.join(self.dir, "OVMF_VARS.fd")
            shutil.copyfile(p["ovmf_vars"], variables)
            command += ["-drive", "if=pflash,format=raw,readonly=on,file=%s" % p["ovmf_code"],
                        "-drive", "if=pflash,format=raw,file=%s" % variables,
                        "-device", "virtio-net-pci,netdev=lan,mac=%s,romfile=" % self.mac]
        else:
            command += ["-boot", "n", "-device", "e1000,netdev=lan,mac=%s" % self.mac]
        return command

    def read_serial(self, stream, log):
        for raw in iter(stream.readline, b""):
            text = ANSI.sub("", raw.decode("utf-8", errors="replace")).replace("\r", "").rstrip("\n")
            if text.strip():
                elapsed = time.time() - self.start
                self.serial.append((elapsed, text))
                log.write("[%8.3f] %s\n" % (elapsed, text))
                log.flush()

    def refused(self):
        """matchbox answered 404 (no group/profile) to this machine's /ipxe request."""
        lines = container_log(self.params["container_engine"], self.params["matchbox_container"], self.start)
        for index, (_, text) in enumerate(lines):
            if "HTTP GET /ipxe?" in text and self.mac.replace(":", "-") in text.lower():
                if any(NO_MATCH.search(later) for _, later in lines[index + 1:index + 3]):
                    return True
        return False

    def boot(self):
        p = self.params
        os.makedirs(self.dir, exist_ok=True)
        self.netns("ip", "link", "del", self.tap, check=False)
        self.netns("ip", "tuntap", "add", "dev", self.tap, "mode", "tap")
        self.netns("ip", "link", "set", self.tap, "master", p["bridge"], "up")
        command = ["ip", "netns", "exec", p["namespace"]] + self.qemu_command()
        with open(os.path.join(self.dir, "qemu.cmdline"), "w", encoding="utf-8") as handle:
            handle.write(" ".join(command) + "\n")
        log = open(os.path.join(self.dir, "serial.log"), "w", encoding="utf-8")
        self.start = time.time()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        reader = threading.Thread(target=self.read_serial, args=(process.stdout, log), daemon=True)
        reader.start()
        refused_at = None
        last_check = 0
        try:
            while process.poll() is None:
                now = time.time()
                if now - self.start > p["boot_timeout"]:
                    self.ending = "timeout"
                    break
                if not self.spec.get("expect_config", True) and now - last_check >= 2:
                    last_check = now
                    if refused_at is None and self.refused():
                        refused_at = now
                if refused_at is not None and now - refused_at >= p["stranger_grace"]:
                    self.ending = "stopped after refusal"
                    break
                time.sleep(0.25)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            self.end = time.time()
            reader.join(timeout=5)
            log.close()
            self.netns("ip", "link", "del", self.tap, check=False)

    # ---- what the logs say ------------------------------------------------------------------

    def window(self, stamp):
        return stamp is not None and self.start - 1 <= stamp <= self.end + 1

    def report(self, dnsmasq_lines, tftp_lines, http_lines):
        year = datetime.date.today().year
        events = []

        def add(stamp, source, text):
            events.append({"t": round(max(stamp - self.start, 0.0), 1), "source": source, "event": text})

        # DHCP: one transaction id per exchange; lines naming the MAC tie the id to this machine.
        transactions, ip_address, dhcp_requests, boot_files = set(), None, 0, []
        parsed = []
        for line in dnsmasq_lines:
            stamp = syslog_time(line, year)
            match = DNSMASQ_LINE.search(line)
            if self.window(stamp) and match:
                parsed.append((stamp, match.group(1), match.group(2)))
                if self.mac in match.group(2).lower() and match.group(1):
                    transactions.add(match.group(1))
        for stamp, xid, text in parsed:
            if xid not in transactions:
                continue
            kind = text.split("(", 1)[0]
            if kind in ("DHCPDISCOVER", "DHCPREQUEST"):
                dhcp_requests += 1
                add(stamp, "dhcp", kind)
            elif kind in ("DHCPOFFER", "DHCPACK"):
                words = text.split()
                if kind == "DHCPACK" and len(words) > 1:
                    ip_address = words[1]
                add(stamp, "dhcp", " ".join(words[:2]))
            elif text.startswith(("bootfile name:", "user class:", "vendor class:")):
                add(stamp, "dhcp", text)
                if text.startswith("bootfile name:"):
                    boot_files.append(text.split(":", 1)[1].strip())

        tftp_files = []
        for line in tftp_lines:
            stamp = syslog_time(line, year)
            match = TFTP_RRQ.search(line)
            if self.window(stamp) and match and match.group(1) == ip_address:
                tftp_files.append(match.group(2))
                add(stamp, "tftp", "RRQ " + match.group(2))

        http_paths, refusals = [], 0
        for stamp, text in http_lines:
            if not self.window(stamp):
                continue
            match = HTTP_REQUEST.search(text)
            if match:
                http_paths.append(match.group(2))
                add(stamp, "http", "%s %s" % match.groups())
            elif NO_MATCH.search(text):
                refusals += 1
                add(stamp, "http", "404 " + NO_MATCH.search(text).group(1))

        steps = {}
        for elapsed, text in self.serial:
            match = STEP.search(text)
            if match:
                steps.setdefault(match.group(1), dict(FIELD.findall(match.group(2))))
                events.append({"t": round(elapsed, 1), "source": "serial", "event": match.group(1) + match.group(2)})
        events.append({"t": round(self.end - self.start, 1), "source": "qemu", "event": self.ending})
        events.sort(key=lambda event: event["t"])

        fetched = steps.get("config-fetched")
        config_url = steps.get("config-url", {}).get("url")
        kernels = [path for path in http_paths if "/kernel-" in path]
        initrds = [path for path in http_paths if "/initramfs-" in path]
        return {
            "name": self.name,
            "mac": self.mac,
            "firmware": self.spec["firmware"],
            "expect_config": self.spec.get("expect_config", True),
            "expected": {"hostname": self.spec.get("hostname"), "machine_type": self.spec.get("machine_type")},
            "ending": self.ending,
            "boot_seconds": round(self.end - self.start, 1),
            "mode": "stand-in" if "boot" in steps and steps["boot"].get("mode") == "stand-in" else "unknown",
            "lease": ip_address,
            "requests": {"dhcp": dhcp_requests, "tftp": len(tftp_files), "http": len(http_paths)},
            "dhcp_boot_files": boot_files,
            "tftp_files": tftp_files,
            "ipxe_scripts": [path for path in http_paths if path.startswith(("/boot.ipxe", "/ipxe"))],
            "refused": refusals > 0,
            "kernel": kernels[-1] if kernels else None,
            "initrd": initrds[-1] if initrds else None,
            "config_url": config_url,
            "config_requests": [path for path in http_paths if "/assets/talos/configs/" in path],
            "config": ({"hostname": fetched.get("hostname"), "machine_type": fetched.get("type"),
                        "cluster": fetched.get("cluster"), "sha256": fetched.get("sha256")} if fetched else None),
            "os_lease": steps.get("lease", {}).get("ip"),
            "serial_log": os.path.join(self.dir, "serial.log"),
            "events": events,
        }


def summary(report):
    lines = ["== %s (%s, %s, MAC %s)" % (report["name"], report["firmware"].upper(),
                                          "expects its config" if report["expect_config"] else "not in the inventory",
                                          report["mac"])]
    counts = report["requests"]
    lines.append("   ended: %s after %.1f s; requests: DHCP %d, TFTP %d, HTTP %d"
                 % (report["ending"], report["boot_seconds"], counts["dhcp"], counts["tftp"], counts["http"]))
    lines.append("   lease %s, DHCP boot files %s, TFTP %s" % (report["lease"], report["dhcp_boot_files"], report["tftp_files"]))
    lines.append("   iPXE scripts %s%s" % (report["ipxe_scripts"], " -> 404 (no group)" if report["refused"] else ""))
    lines.append("   kernel %s, initrd %s" % (report["kernel"], report["initrd"]))
    config = report["config"]
    lines.append("   config %s: %s" % (report["config_url"], "hostname=%s type=%s cluster=%s" % (
        config["hostname"], config["machine_type"], config["cluster"]) if config else "none fetched"))
    for event in report["events"]:
        lines.append("   %7.1f s  %-6s %s" % (event["t"], event["source"], event["event"]))
    return lines


def main():
    params = json.load(sys.stdin)
    problems = []
    for index, spec in enumerate(params["machines"]):
        name = spec.get("name", "machines[%d]" % index)
        if not re.match(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$", str(spec.get("mac", ""))):
            problems.append("%s: mac must look like 52:54:00:50:00:11 (got %r)" % (name, spec.get("mac")))
        if spec.get("firmware") not in ("bios", "uefi"):
            problems.append("%s: firmware must be bios or uefi (got %r)" % (name, spec.get("firmware")))
    if problems:
        sys.exit("lab machines: " + "; ".join(problems))

    machines = [Machine(params, spec) for spec in params["machines"]]
    for index, machine in enumerate(machines):
        if index:
            time.sleep(2.5)  # logs have whole seconds: keep the machines' time windows apart
        machine.boot()
    first = min(machine.start for machine in machines) if machines else time.time()
    dnsmasq_lines = read_lines(params["dnsmasq_log"])
    tftp_lines = read_lines(params["tftp_log"])
    http_lines = container_log(params["container_engine"], params["matchbox_container"], first)
    reports = [machine.report(dnsmasq_lines, tftp_lines, http_lines) for machine in machines]
    with open(os.path.join(params["lab_dir"], "report.json"), "w", encoding="utf-8") as handle:
        json.dump(reports, handle, indent=2)
    lines = []
    for report in reports:
        lines.extend(summary(report))
    json.dump({"machines": reports, "report_lines": lines}, sys.stdout)


if __name__ == "__main__":
    main()
