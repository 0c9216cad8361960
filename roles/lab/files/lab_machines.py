# Lab tool of the netboot.talos virtual lab (roles/lab): not part of the collection's API.
"""Network-boot the lab's QEMU machines, "install" each one as a Talos node double, keep them.

    lab_machines.py start  < settings.json   start the lab's machine supervisor in the background
    lab_machines.py report LAB_DIR [TIMEOUT] wait for the first boots' report, print it as JSON
    lab_machines.py stop   LAB_DIR           stop the supervisor, its QEMU machines and node doubles
    lab_machines.py power-on LAB_DIR NAME    the power button of a machine that powered off
    lab_machines.py double LAB_DIR NAME MODE a lab fault: the node's double down, in maintenance, or configured again

The supervisor runs inside the lab namespace (roles/lab/tasks/start.yml starts it through the lab's
netns interpreter) and logs to <lab_dir>/logs/machines.log:

- Boots the machines one after the other (QEMU, TCG by default) on tap devices of the lab bridge:
  BIOS machines with an e1000 NIC whose option ROM is iPXE, UEFI machines on OVMF with a
  virtio-net NIC without option ROM (so the firmware's own PXE client runs), and bios-pxe machines:
  an office PC's plain PXE ROM, played by iPXE's ipxe.lkrn (the NIC without option ROM) running
  PXE_ROM_SCRIPT - it DHCPs with user class PXE_ROM_USER_CLASS instead of "iPXE", so the boot
  server answers it as a firmware PXE client, and boots the DHCP boot file over TFTP as such a ROM
  does. The undionly.kpxe it loads runs on its PXE stack and DHCPs again as iPXE. (Debian's
  iPXE prints to the screen only: which client ran an exchange shows in dnsmasq's user class.)
- A machine ends when it powers off (the stand-in image does after its last step), when the boot
  timeout passes, or, for a machine expected to get no config, shortly after matchbox refused it.
- "Installs" each inventory machine once its stand-in boot is over, as Talos would: a Talos node
  double (tests/fixtures/talos_node/node.py) on the node's IP (added to the bridge) and the API port:
  http delivery: configured with the config matchbox serves at the URL the machine fetched, after
  checking that its bytes are the ones the machine got (sha256); api delivery: in maintenance mode.
  After the first control plane, a kube-API double (tests/fixtures/kube_api/apiserver.py) listens on
  the cluster endpoint.
- Reads dnsmasq's log, tftpd's log (syslog), matchbox's request log (container log) and each serial
  console and reports per machine the lease, TFTP files, iPXE scripts, kernel, initrd, config
  fetched, request counts, the time of every step since the machine was started, and how it was
  installed: <lab_dir>/report.json. Serial consoles: <lab_dir>/machines/<name>/serial.log.
- Then keeps watching: a node double that exits after a Reset (it runs with --reset-exits, like a
  machine that reboots) loses its IP, its machine boots again through PXE and is installed again;
  each such boot is appended to <lab_dir>/machines/<name>/reboots.json (serial-<n>.log). A Reset
  with reboot=false powers the machine off instead (Talos's graceful reset then shuts down): it
  stays off, <lab_dir>/machines/<name>/powered-off says since when, until its power button
  (`power-on`) is pressed; then it boots through PXE the same way.
- Faults for tests (`double`): a node's double stopped (down: its IP stays, nothing listens),
  started again in maintenance mode on the same IP, or started again configured with the config
  its machine fetched; the supervisor keeps it, so lab-down stops it like any other.

Settings: namespace, bridge, lab_dir, machines [{name, mac, firmware: bios|bios-pxe|uefi, expect:
config|maintenance|refused, hostname, machine_type}], nodes [{name, ip, role, talos_version}],
delivery, memory_mb, accelerator, boot_timeout, stranger_grace, ovmf_code, ovmf_vars, ipxe_lkrn, dnsmasq_log,
tftp_log, matchbox_container, container_engine, python, repo_dir, cluster_dir, cluster_endpoint,
api_port.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import yaml  # ansible's Python has PyYAML

STOP = threading.Event()  # set by SIGTERM: stop booting, stop the doubles, remove their addresses

ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Z0-9]|[=>c])")
SYSLOG_STAMP = re.compile(r"^([A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d) ")
DNSMASQ_LINE = re.compile(r"dnsmasq-dhcp\[\d+\]: (?:(\d+) )?(.*)$")
TFTP_RRQ = re.compile(r"in\.tftpd\[\d+\]: RRQ from (?:::ffff:)?([0-9.]+) filename (\S+)")
HTTP_REQUEST = re.compile(r'msg="HTTP (GET|HEAD) ([^"]+)"')
NO_MATCH = re.compile(r'msg="(No matching (?:group|profile))"')
STEP = re.compile(r"NBT-STEP (\S+)(.*?)(?: uptime=[0-9.]+)?$")
FIELD = re.compile(r"(\w[\w-]*)=(\S*)")
FIRMWARES = ("bios", "bios-pxe", "uefi")
# The plain PXE ROM of a bios-pxe machine: what it sends instead of iPXE's user class (a real ROM
# sends none), then what a PXE ROM does with the answer. The user class is cleared before the boot
# file runs: iPXE hands its settings to the NBP as the cached DHCPACK, and undionly.kpxe's iPXE would
# take it over and ask as a PXE ROM again (no real ROM's ACK carries one).
PXE_ROM_USER_CLASS = "NBT-PXE-ROM"
PXE_ROM_SCRIPT = """#!ipxe
echo NBT-PXE-ROM: the firmware's PXE client (stand-in), not iPXE's branch
set user-class %s
dhcp
clear user-class
echo NBT-PXE-ROM: boot file ${filename} from ${next-server}
chain tftp://${next-server}/${filename}
""" % PXE_ROM_USER_CLASS


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
        stamp, _unused, rest = line.partition(" ")
        try:
            # 2026-11-23T21:40:03.123456789Z or ...+00:00: keep microseconds for fromisoformat
            stamp = re.sub(r"(\.\d{6})\d+", r"\1", stamp).replace("Z", "+00:00")
            lines.append((datetime.datetime.fromisoformat(stamp).timestamp(), rest))
        except ValueError:
            continue
    return lines


class Machine:
    """One network boot of one lab machine (boot: 1 for the first, 2, 3... after resets)."""

    def __init__(self, params, spec, boot=1):
        self.params = params
        self.spec = spec
        self.name = spec["name"]
        self.mac = spec["mac"].lower()
        self.boot_number = boot
        self.dir = os.path.join(self.params["lab_dir"], "machines", self.name)
        self.serial_log = os.path.join(self.dir, "serial.log" if boot == 1 else "serial-%d.log" % boot)
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
            variables = os.path.join(self.dir, "OVMF_VARS.fd")  # fresh each boot: no boot entries kept
            shutil.copyfile(p["ovmf_vars"], variables)
            command += ["-drive", "if=pflash,format=raw,readonly=on,file=%s" % p["ovmf_code"],
                        "-drive", "if=pflash,format=raw,file=%s" % variables,
                        "-device", "virtio-net-pci,netdev=lan,mac=%s,romfile=" % self.mac]
        elif self.spec["firmware"] == "bios-pxe":
            script = os.path.join(self.dir, "pxe-rom.ipxe")
            with open(script, "w", encoding="utf-8") as handle:
                handle.write(PXE_ROM_SCRIPT)
            command += ["-kernel", p["ipxe_lkrn"], "-initrd", script,
                        "-device", "e1000,netdev=lan,mac=%s,romfile=" % self.mac]
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
        for index, (_unused, text) in enumerate(lines):
            if "HTTP GET /ipxe?" in text and self.mac.replace(":", "-") in text.lower():
                if any(NO_MATCH.search(later) for _unused, later in lines[index + 1:index + 3]):
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
        log = open(self.serial_log, "w", encoding="utf-8")
        self.start = time.time()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        reader = threading.Thread(target=self.read_serial, args=(process.stdout, log), daemon=True)
        reader.start()
        refused_at = None
        last_check = 0
        try:
            while process.poll() is None:
                now = time.time()
                if STOP.is_set():
                    self.ending = "stopped with the lab"
                    break
                if now - self.start > p["boot_timeout"]:
                    self.ending = "timeout"
                    break
                if self.spec["expect"] == "refused" and now - last_check >= 2:
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

    def steps(self):
        """The stand-in's NBT-STEP lines: {step: {field: value}} (first of each)."""
        steps = {}
        for _unused, text in self.serial:
            match = STEP.search(text)
            if match:
                steps.setdefault(match.group(1), dict(FIELD.findall(match.group(2))))
        return steps

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
        exchanges = {}  # xid -> the user class its client sent, in the order the exchanges began
        for stamp, xid, text in parsed:
            if xid not in transactions:
                continue
            exchanges.setdefault(xid, "none")
            if text.startswith("user class:"):
                exchanges[xid] = text.split(":", 1)[1].strip()
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
            # container log times are precise: only what came while the machine ran (not the
            # supervisor fetching the config again right after the power-off)
            if not self.start <= stamp <= self.end:
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
            "boot": self.boot_number,
            "expect": self.spec["expect"],
            "expect_config": self.spec["expect"] == "config",
            "expected": {"hostname": self.spec.get("hostname"), "machine_type": self.spec.get("machine_type")},
            "ending": self.ending,
            "boot_seconds": round(self.end - self.start, 1),
            "mode": "stand-in" if "boot" in steps and steps["boot"].get("mode") == "stand-in" else "unknown",
            "lease": ip_address,
            "requests": {"dhcp": dhcp_requests, "tftp": len(tftp_files), "http": len(http_paths)},
            "dhcp_boot_files": boot_files,
            "dhcp_user_classes": list(exchanges.values()),
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
            "config_missing": "config-missing" in steps,
            "serial_log": self.serial_log,
            "events": events,
        }


EXPECTATIONS = {"config": "expects its config", "maintenance": "expects no config (api delivery)",
                "refused": "not in the inventory"}


def words(values):
    """Plain text of a list for the report: each value once, in order, comma separated; none when empty."""
    return ", ".join(dict.fromkeys(str(value) for value in values)) or "none"


def summary(report, timeline=True):
    """The report's lines for one boot; timeline adds one line per DHCP, TFTP, HTTP and serial event."""
    boot = ", boot %d" % report["boot"] if report["boot"] > 1 else ""
    lines = ["== %s: %s, MAC %s, %s%s" % (report["name"], report["firmware"].upper(), report["mac"], EXPECTATIONS[report["expect"]], boot)]
    counts = report["requests"]
    lines.append("   %s after %.1f s (requests: DHCP %d, TFTP %d, HTTP %d)"
                 % (report["ending"], report["boot_seconds"], counts["dhcp"], counts["tftp"], counts["http"]))
    lines.append("   lease %s; DHCP boot file %s; TFTP %s" % (
        report["lease"] or "none", words(report["dhcp_boot_files"]), words(report["tftp_files"])))
    lines.append("   DHCP user class per exchange: %s" % (", ".join(report["dhcp_user_classes"]) or "none"))
    lines.append("   iPXE %s%s" % (words(report["ipxe_scripts"]), " -> 404 (no group)" if report["refused"] else ""))
    lines.append("   kernel %s; initrd %s" % (report["kernel"] or "none", report["initrd"] or "none"))
    config = report["config"]
    lines.append("   config %s" % ("%s: hostname=%s type=%s cluster=%s" % (
        report["config_url"], config["hostname"], config["machine_type"], config["cluster"]) if config else "none fetched"))
    install = report.get("install")
    if install:
        lines.append("   installed: %s" % install["text"])
    if timeline:
        lines.extend("   %7.1f s  %-6s %s" % (event["t"], event["source"], event["event"]) for event in report["events"])
    return lines


def problems(report):
    """What is wrong with one machine's boot, as sentences (empty: it did what it should)."""
    name, expected, config = report["name"], report["expected"], report["config"]
    wrong = []
    if report["expect"] == "config":
        if config is None or config["hostname"] != expected["hostname"] or config["machine_type"] != expected["machine_type"]:
            wrong.append("%s: expected its config (%s, %s), got %s"
                         % (name, expected["hostname"], expected["machine_type"], json.dumps(config)))
    elif report["expect"] == "maintenance":
        if config is not None or report["config_requests"] or not report["config_missing"]:
            seen = "it fetched a config" if config or report["config_requests"] else "its boot did not reach the config step"
            wrong.append("%s: api delivery, yet %s" % (name, seen))
    elif config is not None or not report["refused"]:
        wrong.append("%s: not in the inventory, yet got %s" % (name, "a config" if config is not None else "no 404 from /ipxe"))
    if report["firmware"] == "bios-pxe":
        wrong.extend(pxe_rom_problems(report))
    install = report.get("install")
    if install is not None and not install["double"]:
        wrong.append("%s: not installed (%s)" % (name, install["text"]))
    return wrong


def pxe_rom_problems(report):
    """A bios-pxe machine: its PXE ROM's exchange, then undionly.kpxe's as iPXE; the first TFTP file
    (the ROM's boot file) loaded once, then the chain script."""
    wrong, name = [], report["name"]
    clients = [user_class for index, user_class in enumerate(report["dhcp_user_classes"])
               if not index or report["dhcp_user_classes"][index - 1] != user_class]
    if clients[:2] != [PXE_ROM_USER_CLASS, "iPXE"]:
        wrong.append("%s: expected a DHCP exchange of its PXE ROM (user class %s), then one of iPXE; got %s"
                     % (name, PXE_ROM_USER_CLASS, ", ".join(clients) or "none"))
    files = report["tftp_files"]
    if len(files) < 2 or files[0] in files[1:]:
        wrong.append("%s: expected its PXE boot file over TFTP once, then the chain script; got %s" % (name, words(files)))
    return wrong


def write_json(path, data, mode=0o644):
    temporary = path + ".tmp"
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    os.replace(temporary, path)


def wait_port(host, port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def log(message):
    print("%s %s" % (time.strftime("%H:%M:%S"), message), flush=True)


class Lab:
    """The machine supervisor: boots, installs node doubles, reboots reset nodes through PXE."""

    def __init__(self, params):
        self.params = params
        self.lab_dir = params["lab_dir"]
        self.nodes_dir = os.path.join(self.lab_dir, "nodes")
        self.specs = {spec["name"]: spec for spec in params["machines"]}
        self.nodes = {node["name"]: node for node in params["nodes"]}
        self.boots = {}  # name -> boot number
        self.doubles = {}  # name -> Popen
        self.resets = {}  # name -> Reset requests its double had when it started
        self.kube = None
        endpoint = params["cluster_endpoint"].split("://", 1)[-1].rstrip("/")
        self.kube_host, _unused, port = endpoint.rpartition(":")
        self.kube_port = int(port or 6443)
        self.addresses = set()

    # ---------------------------------------------------------------- helpers

    def run_in_ns(self, *argv):
        return subprocess.run(["ip", "netns", "exec", self.params["namespace"]] + list(argv),
                              capture_output=True, text=True, check=False)

    def address(self, ip, present):
        """The node's IP on the lab bridge (/32): present while its double serves, gone while it PXE-boots."""
        if present and ip not in self.addresses:
            self.run_in_ns("ip", "addr", "add", "%s/32" % ip, "dev", self.params["bridge"])
            self.addresses.add(ip)
        elif not present and ip in self.addresses:
            self.run_in_ns("ip", "addr", "del", "%s/32" % ip, "dev", self.params["bridge"])
            self.addresses.discard(ip)

    def prepare(self):
        shutil.rmtree(self.nodes_dir, ignore_errors=True)
        os.makedirs(self.nodes_dir, mode=0o700)
        # Workers' configs carry no OS CA key; the doubles sign their server certificates with it.
        with open(os.path.join(self.params["cluster_dir"], "secrets.yaml"), encoding="utf-8") as handle:
            secrets = yaml.safe_load(handle)
        with open(os.open(os.path.join(self.nodes_dir, "os-ca.key"), os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
            handle.write(base64.b64decode(secrets["certs"]["os"]["key"]))

    def read_logs(self, since):
        p = self.params
        return (read_lines(p["dnsmasq_log"]), read_lines(p["tftp_log"]),
                container_log(p["container_engine"], p["matchbox_container"], since))

    # ---------------------------------------------------------------- boot and install

    def boot(self, name):
        self.boots[name] = self.boots.get(name, 0) + 1
        machine = Machine(self.params, self.specs[name], self.boots[name])
        log("%s: boot %d (%s)" % (name, machine.boot_number, machine.spec["firmware"]))
        machine.boot()
        log("%s: %s after %.1f s" % (name, machine.ending, machine.end - machine.start))
        install = self.install(machine) if name in self.nodes and not STOP.is_set() else None
        return machine, install

    def install(self, machine):
        """Start the machine's node double as Talos would come up after this boot."""
        node, steps = self.nodes[machine.name], machine.steps()
        state_dir = os.path.join(self.nodes_dir, machine.name)
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        if self.params["delivery"] == "http":
            fetched = steps.get("config-fetched")
            url = steps.get("config-url", {}).get("url")
            if not fetched or not url:
                return {"double": None, "text": "no config fetched, so no node double"}
            try:
                direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
                with direct.open(url, timeout=10) as answer:
                    served = answer.read()
            except OSError as exc:
                return {"double": None, "text": "matchbox did not serve %s again: %s" % (url, exc)}
            if hashlib.sha256(served).hexdigest() != fetched.get("sha256"):
                return {"double": None, "text": "matchbox now serves other bytes at %s than the machine fetched" % url}
            config = os.path.join(state_dir, "fetched.yaml")
            with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
                handle.write(served)
            mode, arguments = "configured", ["--config", config]
            text = "configured with the config fetched from %s (same sha256 %s...)" % (url, fetched["sha256"][:12])
        else:
            if "config-missing" not in steps:
                return {"double": None, "text": "the boot did not reach the config step, so no node double"}
            mode, arguments = "maintenance", ["--maintenance"]
            text = "maintenance mode, waiting for its config over the API"
        double = self.start_double(machine.name, arguments, state_dir)
        if double is None:
            return {"double": None, "text": "the node double did not start (see %s/log)" % state_dir}
        if node["role"] == "controlplane":
            self.start_kube()
        listen = "%s:%d" % (node["ip"], self.params["api_port"])
        log("%s: node double on %s, %s" % (machine.name, listen, mode))
        return {"double": mode, "listen": listen, "text": "Talos node double on %s, %s" % (listen, text)}

    def start_double(self, name, arguments, state_dir):
        node, p = self.nodes[name], self.params
        self.address(node["ip"], True)
        command = [p["python"], os.path.join(p["repo_dir"], "tests", "fixtures", "talos_node", "node.py"),
                   "--listen", "%s:%d" % (node["ip"], p["api_port"]), "--state-dir", state_dir,
                   "--talos-version", node["talos_version"], "--os-ca-key", os.path.join(self.nodes_dir, "os-ca.key"),
                   "--reset-exits"] + arguments
        with open(os.path.join(state_dir, "log"), "ab") as output:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        if not wait_port(node["ip"], p["api_port"]) or process.poll() is not None:
            process.kill()
            return None
        self.doubles[name] = process
        self.resets[name] = len(self.double_state(name).get("resets", []))
        return process

    def double_state(self, name):
        try:
            with open(os.path.join(self.nodes_dir, name, "state.json"), encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def start_kube(self):
        if self.kube is not None and self.kube.poll() is None:
            return
        p = self.params
        first_cp = next(n["name"] for n in p["nodes"] if n["role"] == "controlplane")
        self.address(self.kube_host, True)
        command = [p["python"], os.path.join(p["repo_dir"], "tests", "fixtures", "kube_api", "apiserver.py"),
                   "--listen", "%s:%d" % (self.kube_host, self.kube_port),
                   "--config", os.path.join(p["cluster_dir"], "nodes", "%s.yaml" % first_cp), "--nodes-dir", self.nodes_dir]
        with open(os.path.join(self.nodes_dir, "kube-api.log"), "ab") as output:
            self.kube = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        if wait_port(self.kube_host, self.kube_port):
            log("kube-API double on %s:%d" % (self.kube_host, self.kube_port))
        else:
            log("kube-API double did not start (see %s/kube-api.log)" % self.nodes_dir)

    def report(self, machine, install):
        report = machine.report(*self.read_logs(machine.start))
        report["install"] = install
        return report

    # ---------------------------------------------------------------- the supervisor

    def run(self):
        self.prepare()
        status_path = os.path.join(self.lab_dir, "report.json")
        booted = []
        for index, name in enumerate(self.specs):
            if STOP.is_set():
                break
            if index:
                time.sleep(2.5)  # logs have whole seconds: keep the machines' time windows apart
            booted.append(self.boot(name))
        reports = [self.report(machine, install) for machine, install in booted]
        lines, short, wrong = [], [], []
        for report in reports:
            lines.extend(summary(report))
            short.extend(summary(report, timeline=False))
            wrong.extend(problems(report))
        write_json(status_path, {"machines": reports, "report_lines": lines, "summary_lines": short, "problems": wrong})
        log("first boots reported: %s" % ("; ".join(wrong) or "every machine did what it should"))
        while not STOP.wait(0.5):
            self.watch()
        self.shut_down()

    def watch(self):
        if self.kube is not None and self.kube.poll() is not None:
            log("kube-API double exited (%s)" % self.kube.returncode)
            self.kube = None
        for name, process in list(self.doubles.items()):
            if process.poll() is None:
                continue
            del self.doubles[name]
            resets = len(self.double_state(name).get("resets", []))
            if resets <= self.resets[name]:
                log("%s: node double exited (%s) without a reset; left down" % (name, process.returncode))
                continue
            ip = self.nodes[name]["ip"]
            if ip == self.kube_host and self.kube is not None:
                self.kube.terminate()
                self.kube.wait()
                self.kube = None
            self.address(ip, False)
            if not self.double_state(name)["resets"][-1].get("reboot", True):
                log("%s: reset with power-off: the machine is off until its power button is pressed" % name)
                write_json(self.power_file(name, "powered-off"), {"since": time.time()})
                continue
            log("%s: reset: the machine boots through PXE again" % name)
            self.reboot(name)
        self.power_buttons()
        self.double_faults()

    def double_faults(self):
        """A test asked for a node's double down, in maintenance mode or configured again (`double`)."""
        for name in self.nodes:
            request = self.power_file(name, "double")
            if not os.path.exists(request):
                continue
            with open(request, encoding="utf-8") as handle:
                mode = handle.read().strip()
            process = self.doubles.pop(name, None)
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
            state_dir = os.path.join(self.nodes_dir, name)
            arguments = {"maintenance": ["--maintenance"], "configured": ["--config", os.path.join(state_dir, "fetched.yaml")]}
            if mode in arguments and self.start_double(name, arguments[mode], state_dir) is None:
                mode = "not started (see %s/log)" % state_dir
            log("%s: fault: node double %s" % (name, mode))
            os.unlink(request)

    def power_file(self, name, what):
        return os.path.join(self.lab_dir, "machines", name, what)

    def power_buttons(self):
        """Machines that are off and whose power button was pressed (a power-on file) boot through PXE."""
        for name in self.specs:
            if os.path.exists(self.power_file(name, "power-on")):
                os.unlink(self.power_file(name, "power-on"))
                if not os.path.exists(self.power_file(name, "powered-off")):
                    log("%s: power button pressed, but the machine is not off" % name)
                    continue
                os.unlink(self.power_file(name, "powered-off"))
                log("%s: power button pressed: the machine boots through PXE" % name)
                self.reboot(name)

    def reboot(self, name):
        """Boot the machine again, install it, and append the boot's report to its reboots.json."""
        machine, install = self.boot(name)
        if STOP.is_set():
            return
        report = self.report(machine, install)
        path = os.path.join(self.lab_dir, "machines", name, "reboots.json")
        try:
            with open(path, encoding="utf-8") as handle:
                reboots = json.load(handle)
        except (OSError, ValueError):
            reboots = []
        write_json(path, reboots + [dict(report, report_lines=summary(report), problems=problems(report))])

    def shut_down(self):
        for process in list(self.doubles.values()) + ([self.kube] if self.kube else []):
            if process.poll() is None:
                process.terminate()
        for process in list(self.doubles.values()) + ([self.kube] if self.kube else []):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for ip in list(self.addresses):
            self.address(ip, False)
        log("stopped")


# -------------------------------------------------------------------- API times of the node doubles

def api_times(lab_dir, nodes):
    """Per node, from its double's state: API up -> first call (the playbook noticing), -> Bootstrap."""
    times = []
    for node in nodes:
        try:
            with open(os.path.join(lab_dir, "nodes", node["name"], "state.json"), encoding="utf-8") as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            times.append({"name": node["name"], "served": [], "bootstrap_seconds": None,
                          "text": "%s: no node double" % node["name"]})
            continue
        served = [{"stage": s["stage"], "since": s["since"],
                   "noticed_seconds": round(s["first_call"] - s["since"], 2) if "first_call" in s else None}
                  for s in state.get("served", [])]
        bootstrap = None
        if state.get("bootstrapped_at"):
            up = [s["since"] for s in served if s["stage"] == "configured" and s["since"] <= state["bootstrapped_at"]]
            bootstrap = round(state["bootstrapped_at"] - up[-1], 2) if up else None
        parts = ["%s API up -> noticed %s" % (s["stage"], "%.2f s" % s["noticed_seconds"] if s["noticed_seconds"] is not None
                                              else "not yet") for s in served]
        if bootstrap is not None:
            parts.append("Bootstrap %.2f s after its configured API came up" % bootstrap)
        times.append({"name": node["name"], "served": served, "bootstrap_seconds": bootstrap,
                      "calls": state.get("calls", {}), "text": "%s: %s" % (node["name"], "; ".join(parts) or "never served")})
    return times


# -------------------------------------------------------------------- commands

def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def read_pid(lab_dir):
    try:
        with open(os.path.join(lab_dir, "machines.pid"), encoding="utf-8") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def check(params):
    problems_found = []
    for index, spec in enumerate(params["machines"]):
        name = spec.get("name", "machines[%d]" % index)
        if not re.match(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$", str(spec.get("mac", ""))):
            problems_found.append("%s: mac must look like 52:54:00:50:00:11 (got %r)" % (name, spec.get("mac")))
        if spec.get("firmware") not in FIRMWARES:
            problems_found.append("%s: firmware must be one of %s (got %r)" % (name, ", ".join(FIRMWARES), spec.get("firmware")))
        if spec.get("expect") not in EXPECTATIONS:
            problems_found.append("%s: expect must be one of %s (got %r)" % (name, ", ".join(EXPECTATIONS), spec.get("expect")))
    if params.get("delivery") not in ("http", "api"):
        problems_found.append("delivery must be http or api (got %r)" % params.get("delivery"))
    if problems_found:
        sys.exit("lab machines: " + "; ".join(problems_found))


def command_stop(lab_dir):
    pid = read_pid(lab_dir)
    if pid is None or not pid_alive(pid):
        print("not running")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    print("stopped %d" % pid)


def command_start():
    params = json.load(sys.stdin)
    check(params)
    lab_dir = params["lab_dir"]
    if read_pid(lab_dir) and pid_alive(read_pid(lab_dir)):
        sys.exit("the lab's machine supervisor already runs (pid %d): stop it first" % read_pid(lab_dir))
    if subprocess.run(["ip", "link", "show", params["bridge"]], capture_output=True, check=False).returncode:
        sys.exit("bridge %s not found: start the supervisor inside the lab namespace" % params["bridge"])
    for stale in ("report.json", "machines.pid"):
        if os.path.exists(os.path.join(lab_dir, stale)):
            os.unlink(os.path.join(lab_dir, stale))
    for path in [os.path.join(lab_dir, "machines", spec["name"], what) for spec in params["machines"]
                 for what in ("reboots.json", "powered-off", "power-on", "double")]:
        if os.path.exists(path):
            os.unlink(path)
    write_json(os.path.join(lab_dir, "settings.json"), params)
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(ready_write)
        started = os.read(ready_read, 16)
        print("started %d" % pid if started else "the supervisor failed to start")
        sys.exit(0 if started else 1)
    os.close(ready_read)
    os.setsid()
    output = os.open(os.path.join(lab_dir, "logs", "machines.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    with open(os.path.join(lab_dir, "machines.pid"), "w", encoding="utf-8") as handle:
        handle.write("%d\n" % os.getpid())
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    os.write(ready_write, b"ok")
    os.close(ready_write)
    log("supervisor %d: %s delivery, machines %s" % (os.getpid(), params["delivery"], ", ".join(s["name"] for s in params["machines"])))
    try:
        Lab(params).run()
    finally:
        os.unlink(os.path.join(lab_dir, "machines.pid"))


def command_power_on(lab_dir, name, timeout=300.0):
    """Press the power button of a machine that is off; returns once the supervisor took it."""
    pid = read_pid(lab_dir)
    if pid is None or not pid_alive(pid):
        sys.exit("the lab's machine supervisor does not run")
    machine_dir = os.path.join(lab_dir, "machines", name)
    if not os.path.exists(os.path.join(machine_dir, "powered-off")):
        sys.exit("%s is not powered off (no %s/powered-off)" % (name, machine_dir))
    hand_over(lab_dir, pid, os.path.join(machine_dir, "power-on"), "%f\n" % time.time(), "the power button of " + name, timeout)
    print("%s powered on: it boots through PXE" % name)


def hand_over(lab_dir, pid, request, content, what, timeout):
    """Write a request file for the supervisor and wait until it took it (removed the file)."""
    with open(request, "w", encoding="utf-8") as handle:
        handle.write(content)
    deadline = time.monotonic() + timeout
    while os.path.exists(request):
        if time.monotonic() > deadline or not pid_alive(pid):
            os.unlink(request)
            sys.exit("the supervisor did not take %s (see %s/logs/machines.log)" % (what, lab_dir))
        time.sleep(0.2)


DOUBLE_MODES = ("down", "maintenance", "configured")


def command_double(lab_dir, name, mode, timeout=60.0):
    """A lab fault: the node's double stopped, in maintenance mode, or configured again; returns once it is."""
    pid = read_pid(lab_dir)
    if pid is None or not pid_alive(pid):
        sys.exit("the lab's machine supervisor does not run")
    if mode not in DOUBLE_MODES:
        sys.exit("mode must be one of %s (got %r)" % (", ".join(DOUBLE_MODES), mode))
    hand_over(lab_dir, pid, os.path.join(lab_dir, "machines", name, "double"), mode + "\n", "the double request of " + name, timeout)
    print("%s: node double %s" % (name, mode))


def command_report(lab_dir, timeout):
    """Wait until the first boots are reported (or the supervisor is gone), then print the report."""
    path = os.path.join(lab_dir, "report.json")
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        pid = read_pid(lab_dir)
        if pid is None or not pid_alive(pid) or time.monotonic() > deadline:
            sys.exit("no report from the lab's machine supervisor (see %s/logs/machines.log)" % lab_dir)
        time.sleep(0.5)
    with open(path, encoding="utf-8") as handle:
        report = json.load(handle)
    with open(os.path.join(lab_dir, "settings.json"), encoding="utf-8") as handle:
        settings = json.load(handle)
    report["api_times"] = api_times(lab_dir, settings["nodes"])
    json.dump(report, sys.stdout)


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "start":
        command_start()
    elif command == "stop" and len(sys.argv) == 3:
        command_stop(sys.argv[2])
    elif command == "power-on" and len(sys.argv) == 4:
        command_power_on(sys.argv[2], sys.argv[3])
    elif command == "double" and len(sys.argv) == 5:
        command_double(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "report" and len(sys.argv) in (3, 4):
        command_report(sys.argv[2], float(sys.argv[3]) if len(sys.argv) == 4 else 900)
    else:
        sys.exit(__doc__.split("\n\n", maxsplit=1)[0])


if __name__ == "__main__":
    main()
