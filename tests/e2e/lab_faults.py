"""Faults injected into the running PXE lab, each with its undo (tests/e2e/test_pxe_lab.py, diagnose faults).

Every fault registers its undo on a Faults stack; Faults.undo() runs them last-in first-out, each
even when an earlier one failed, so the lab is as it was whatever the test saw. The lab's pieces are
the ones roles/lab and inventory/lab start: in.tftpd and dnsmasq with pid files under /run, the
matchbox container (host network in the lab namespace), matchbox's data dir, and the node doubles,
which the lab's supervisor owns (lab_machines.py double).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "nbt-lab"
BRIDGE = "nbt-br0"
SUPERVISOR = REPO / "roles" / "lab" / "files" / "lab_machines.py"
TFTPD_PID = Path("/run/netboot-lab-tftpd.pid")
DNSMASQ_PID = Path("/run/netboot-lab-dnsmasq.pid")
DNSMASQ_CONF = Path("/etc/netboot-lab/dnsmasq.conf")
MATCHBOX_DATA = Path("/var/lib/netboot-lab/matchbox")
MATCHBOX_URL = "http://10.250.50.1:8080/"
# The second DHCP server: a namespace of its own on the lab bridge, like a forgotten home router.
ROGUE_NAMESPACE = "nbt-lab-rogue"
ROGUE_ADDRESS = "10.250.50.2"
ROGUE_PID = Path("/run/netboot-lab-rogue-dnsmasq.pid")


def in_lab(*argv, check=True):
    return subprocess.run(["ip", "netns", "exec", NAMESPACE, *argv], capture_output=True, text=True, check=check)


def wait(what, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("%s: not after %ss" % (what, timeout))
        time.sleep(0.2)


def alive(pid):
    """Running (a daemon that exited may stay a zombie until whoever adopted it reaps it)."""
    try:
        return Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_daemon(pid_file):
    """Stop the daemon of a pid file; returns its command line (to start it again as it was)."""
    pid = int(pid_file.read_text().split()[0])
    argv = Path("/proc/%d/cmdline" % pid).read_bytes().rstrip(b"\0").split(b"\0")
    os.kill(pid, signal.SIGTERM)
    wait("pid %d gone" % pid, lambda: not alive(pid))
    return [part.decode() for part in argv]


def start_daemon(argv, pid_file):
    """Start a daemon that forks (in.tftpd --listen, dnsmasq) inside the lab namespace."""
    in_lab(*argv)
    wait("%s written" % pid_file, lambda: pid_file.exists() and pid_file.read_text().strip()
         and alive(int(pid_file.read_text().split()[0])))


def matchbox_answers():
    answer = in_lab("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1", "--noproxy", "*", MATCHBOX_URL, check=False)
    return answer.stdout == "200"


class Faults:
    """The faults of one diagnose run, and their undo."""

    def __init__(self, env, lab_dir):
        self.env = env
        self.lab_dir = lab_dir
        self.undos = []  # (what, function)

    def undo(self):
        errors = []
        while self.undos:
            what, function = self.undos.pop()
            try:
                function()
            except Exception as exc:  # every undo runs; the first failure is raised after them
                errors.append("%s: %s" % (what, exc))
        if errors:
            raise AssertionError("undo failed: " + "; ".join(errors))

    # -- boot server daemons ----------------------------------------------------------------------
    def stop_tftpd(self):
        argv = stop_daemon(TFTPD_PID)
        self.undos.append(("start tftpd", lambda: start_daemon(argv, TFTPD_PID)))

    def uefi_boot_file(self, wrong):
        """dnsmasq restarted with a config that hands UEFI PXE clients another boot file."""
        original = DNSMASQ_CONF.read_text()
        lines = [line for line in original.splitlines() if line.startswith("dhcp-boot=tag:!ipxe,tag:efi64,")]
        assert len(lines) == 1, "no UEFI dhcp-boot line in %s" % DNSMASQ_CONF
        right = lines[0].split(",")[2]
        faulty = DNSMASQ_CONF.with_name("dnsmasq-fault.conf")
        faulty.write_text(original.replace(lines[0], lines[0].replace("," + right + ",", "," + wrong + ",")))
        argv = stop_daemon(DNSMASQ_PID)
        start_daemon(["dnsmasq", "--conf-file=%s" % faulty], DNSMASQ_PID)

        def back():
            stop_daemon(DNSMASQ_PID)
            faulty.unlink()
            start_daemon(argv, DNSMASQ_PID)
        self.undos.append(("dnsmasq with its own config", back))
        return right

    def second_dhcp_server(self):
        """Another DHCP server on the lab bridge: addresses from its own pool, no boot file."""
        subprocess.run(["ip", "netns", "add", ROGUE_NAMESPACE], check=True)
        self.undos.append(("remove the second DHCP server", self._remove_rogue))
        subprocess.run(["ip", "link", "add", "name", "nbtrogue", "netns", ROGUE_NAMESPACE, "type", "veth",
                        "peer", "name", "nbtroguep", "netns", NAMESPACE], check=True)
        in_lab("ip", "link", "set", "nbtroguep", "master", BRIDGE, "up")
        for argv in (["ip", "addr", "add", ROGUE_ADDRESS + "/24", "dev", "nbtrogue"], ["ip", "link", "set", "nbtrogue", "up"]):
            subprocess.run(["ip", "netns", "exec", ROGUE_NAMESPACE, *argv], check=True)
        subprocess.run(["ip", "netns", "exec", ROGUE_NAMESPACE, "dnsmasq", "--port=0", "--interface=nbtrogue", "--bind-interfaces",
                        "--dhcp-range=10.250.50.200,10.250.50.209,255.255.255.0,1h", "--dhcp-leasefile=%s" % self._rogue_leases(),
                        "--pid-file=%s" % ROGUE_PID, "--log-facility=%s" % (self.lab_dir / "logs" / "rogue-dnsmasq.log")], check=True)
        return ROGUE_ADDRESS

    def _rogue_leases(self):
        return self.lab_dir / "logs" / "rogue-dnsmasq.leases"

    def _remove_rogue(self):
        if ROGUE_PID.exists():
            pid = int(ROGUE_PID.read_text().split()[0])
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
                wait("the second DHCP server gone", lambda: not alive(pid))
            ROGUE_PID.unlink(missing_ok=True)
        subprocess.run(["ip", "netns", "del", ROGUE_NAMESPACE], capture_output=True, check=False)  # takes the veth pair
        self._rogue_leases().unlink(missing_ok=True)

    def stop_matchbox(self, container):
        subprocess.run(["podman", "stop", "--time", "2", container], env=self.env, capture_output=True, check=True)

        def back():
            # host network: the container joins the namespace podman is started in
            subprocess.run(["nsenter", "--net=/run/netns/%s" % NAMESPACE, "podman", "start", container],
                           env=self.env, capture_output=True, check=True)
            wait("matchbox answers again", matchbox_answers, timeout=30)
        self.undos.append(("start matchbox", back))

    # -- matchbox's data ----------------------------------------------------------------------------
    def _replace(self, path, content):
        original = path.read_bytes()
        path.write_bytes(content)
        self.undos.append(("restore %s" % path, lambda: path.write_bytes(original)))
        return original

    def corrupt_group(self, name):
        path = MATCHBOX_DATA / "groups" / ("%s.json" % name)
        original = path.read_bytes()
        self._replace(path, original[:len(original) // 2])

    def truncate(self, relative):
        """A boot file cut in half (an interrupted download)."""
        path = MATCHBOX_DATA / "assets" / relative.lstrip("/")
        original = path.read_bytes()
        self._replace(path, original[:len(original) // 2])
        return path

    # -- node doubles (the supervisor's) -------------------------------------------------------------
    def double(self, name, mode):
        """The node's double down or in maintenance mode; undone: configured again, as before."""
        self._supervisor_double(name, mode)
        if not any(what == "%s configured again" % name for what, _unused in self.undos):
            self.undos.append(("%s configured again" % name, lambda: self._supervisor_double(name, "configured")))

    def _supervisor_double(self, name, mode):
        done = subprocess.run([sys.executable, str(SUPERVISOR), "double", str(self.lab_dir), name, mode],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
