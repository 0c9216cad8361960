"""Role netboot.talos.talos_assets through Ansible, against a local HTTP server and a local directory.

The server (python http.server on 127.0.0.1, in a thread) lays files out as Image Factory does,
<schematic>/<version>/<file>, and counts the requests it gets.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import threading
from functools import partial

import pytest

from ansible_runner import local_play

VANILLA = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
OTHER = "613e1592b2da41ae5e265e8789429f22e121aab91cb4deb6bc3c0b6262961245"
ROLE_TASK = "netboot.talos.talos_assets : Provide the Talos kernel and initramfs of every version, architecture and schematic"


def bzimage(size=4096):
    """Kernel-shaped: HdrS, one setup sector and a syssize that covers the rest."""
    data = bytearray(os.urandom(size))
    data[0x1F1] = 1
    data[0x1F4:0x1F8] = ((size - 1024) // 16).to_bytes(4, "little")
    data[0x202:0x206] = b"HdrS"
    return bytes(data)


def arm64_image(size=4096):
    data = bytearray(os.urandom(size))
    data[0x38:0x3C] = b"ARMd"
    return bytes(data)


def xz(size=2048):
    return b"\xfd7zXZ\x00" + os.urandom(size) + b"YZ"


def node(name, version="v1.9.4", arch="amd64", schematic=VANILLA):
    return {"name": name, "role": "controlplane", "mac": "02:00:00:00:00:01", "ip": "10.0.50.71", "arch": arch,
            "talos_version": version, "schematic": schematic, "pxe_kernel_args": [], "config": {}}


def publish(root, schematic, version, arch, kernel=None, initramfs=None):
    directory = root / schematic / version
    directory.mkdir(parents=True, exist_ok=True)
    files = {"kernel-%s" % arch: kernel if kernel is not None else (bzimage() if arch == "amd64" else arm64_image()),
             "initramfs-%s.xz" % arch: initramfs if initramfs is not None else xz()}
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return files


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "factory"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(CountingHandler, directory=str(root)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.root = root
    httpd.url = "http://127.0.0.1:%d" % httpd.server_address[1]
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def play(data_dir, nodes, **variables):
    role_vars = {"talos_assets_data_dir": str(data_dir), "talos_assets_nodes": nodes}
    role_vars.update(variables)
    return local_play([{"name": "assets", "ansible.builtin.include_role": {"name": "netboot.talos.talos_assets"}, "vars": role_vars}])


def served(data_dir, version, schematic, name):
    return (data_dir / "assets" / "talos" / version / schematic / name).read_bytes()


def test_fetches_each_distinct_asset_once_then_never_again(run_playbook, server, tmp_path):
    data = tmp_path / "matchbox"
    expected = {
        ("v1.9.4", VANILLA): publish(server.root, VANILLA, "v1.9.4", "amd64"),
        ("v1.12.1", OTHER): publish(server.root, OTHER, "v1.12.1", "arm64"),
    }
    nodes = [node("kube01"), node("kube02"), node("kube03", "v1.12.1", "arm64", OTHER)]
    first = run_playbook(play(data, nodes, talos_assets_base_url=server.url))
    assert first.rc == 0, first.stdout
    assert first.changed == 1
    for (version, schematic), files in expected.items():
        for name, content in files.items():
            assert served(data, version, schematic, name) == content
            assert oct(os.stat(data / "assets" / "talos" / version / schematic / name).st_mode & 0o777) == "0o644"
    assert sorted(server.requests) == sorted("/%s/%s/%s" % (s, v, n) for (v, s), files in expected.items() for n in files)

    requests = len(server.requests)
    second = run_playbook(play(data, nodes, talos_assets_base_url=server.url))
    assert second.rc == 0 and second.changed == 0
    assert len(server.requests) == requests, "second run downloaded again"
    print("requests on first run: %d, on second run: %d" % (requests, len(server.requests) - requests))


def test_local_directory_on_the_boot_server(run_playbook, tmp_path):
    source, data = tmp_path / "downloads", tmp_path / "matchbox"
    files = publish(source, VANILLA, "v1.14.0", "amd64")
    run = run_playbook(play(data, [node("kube01", "v1.14.0")], talos_assets_local_dir=str(source),
                            talos_assets_base_url="http://127.0.0.1:9/unused"))
    assert run.rc == 0, run.stdout
    for name, content in files.items():
        assert served(data, "v1.14.0", VANILLA, name) == content
    assert run_playbook(play(data, [node("kube01", "v1.14.0")], talos_assets_local_dir=str(source))).changed == 0


def test_a_changed_local_file_replaces_the_served_copy(run_playbook, tmp_path):
    source, data = tmp_path / "downloads", tmp_path / "matchbox"
    publish(source, VANILLA, "v1.14.0", "amd64")
    assert run_playbook(play(data, [node("kube01", "v1.14.0")], talos_assets_local_dir=str(source))).rc == 0
    rebuilt = publish(source, VANILLA, "v1.14.0", "amd64")
    run = run_playbook(play(data, [node("kube01", "v1.14.0")], talos_assets_local_dir=str(source)))
    assert run.rc == 0 and run.changed == 1, run.stdout
    for name, content in rebuilt.items():
        assert served(data, "v1.14.0", VANILLA, name) == content


def test_an_invalid_file_in_place_is_replaced(run_playbook, server, tmp_path):
    data = tmp_path / "matchbox"
    files = publish(server.root, VANILLA, "v1.9.4", "amd64")
    target = data / "assets" / "talos" / "v1.9.4" / VANILLA
    target.mkdir(parents=True)
    (target / "kernel-amd64").write_bytes(b"<html>captive portal</html>")
    (target / "initramfs-amd64.xz").write_bytes(files["initramfs-amd64.xz"])
    run = run_playbook(play(data, [node("kube01")], talos_assets_base_url=server.url))
    assert run.rc == 0, run.stdout
    assert served(data, "v1.9.4", VANILLA, "kernel-amd64") == files["kernel-amd64"]
    assert server.requests == ["/%s/v1.9.4/kernel-amd64" % VANILLA]


def test_a_truncated_file_in_place_is_replaced(run_playbook, server, tmp_path):
    data = tmp_path / "matchbox"
    files = publish(server.root, VANILLA, "v1.9.4", "amd64")
    target = data / "assets" / "talos" / "v1.9.4" / VANILLA
    target.mkdir(parents=True)
    (target / "kernel-amd64").write_bytes(files["kernel-amd64"][:3000])
    (target / "initramfs-amd64.xz").write_bytes(files["initramfs-amd64.xz"])
    run = run_playbook(play(data, [node("kube01")], talos_assets_base_url=server.url))
    assert run.rc == 0, run.stdout
    assert served(data, "v1.9.4", VANILLA, "kernel-amd64") == files["kernel-amd64"]
    assert server.requests == ["/%s/v1.9.4/kernel-amd64" % VANILLA]


def test_check_mode_fetches_nothing(run_playbook, server, tmp_path):
    data = tmp_path / "matchbox"
    publish(server.root, VANILLA, "v1.9.4", "amd64")
    run = run_playbook(play(data, [node("kube01")], talos_assets_base_url=server.url), check=True)
    assert run.rc == 0 and run.changed == 1
    assert server.requests == []
    assert not (data / "assets").exists()


def test_checksums_are_enforced(run_playbook, server, tmp_path):
    data = tmp_path / "matchbox"
    files = publish(server.root, VANILLA, "v1.9.4", "amd64")
    good = {"v1.9.4/%s/%s" % (VANILLA, n): hashlib.sha256(c).hexdigest() for n, c in files.items()}
    assert run_playbook(play(data, [node("kube01")], talos_assets_base_url=server.url, talos_assets_checksums=good)).rc == 0
    bad = dict(good)
    bad["v1.9.4/%s/kernel-amd64" % VANILLA] = "0" * 64
    run = run_playbook(play(data, [node("kube01")], talos_assets_base_url=server.url, talos_assets_checksums=bad))
    assert run.rc != 0
    assert "kernel-amd64" in run.task(ROLE_TASK)["result"]["msg"]
    assert "sha256 differs" in run.task(ROLE_TASK)["result"]["msg"]


@pytest.mark.parametrize("kernel, initramfs, problem", [
    (b"", None, "empty"),
    (b"\x00" * 4096, None, "wrong magic"),
    (arm64_image(), None, "wrong magic"),  # an arm64 kernel served as kernel-amd64
    (None, b"PK\x03\x04 a zip file", "wrong magic"),
    (bzimage(8192)[:6000], None, "truncated: 6000 bytes, its header says at least 8192"),
    (None, xz()[:-100], "truncated: the xz stream has no end"),
])
def test_corrupt_assets_fail_and_leave_nothing_behind(run_playbook, server, tmp_path, kernel, initramfs, problem):
    data = tmp_path / "matchbox"
    publish(server.root, VANILLA, "v1.9.4", "amd64", kernel=kernel, initramfs=initramfs)
    run = run_playbook(play(data, [node("kube01")], talos_assets_base_url=server.url))
    assert run.rc != 0
    message = run.task(ROLE_TASK)["result"]["msg"]
    assert problem in message
    target = data / "assets" / "talos" / "v1.9.4" / VANILLA
    bad = "kernel-amd64" if kernel is not None else "initramfs-amd64.xz"
    assert not (target / bad).exists()
    assert [n for n in os.listdir(target) if n.startswith(".")] == []


def test_offline_lists_everything_missing_and_how_to_provide_it(run_playbook, server, tmp_path):
    data = tmp_path / "matchbox"
    run = run_playbook(play(data, [node("kube01"), node("kube02", "v1.13.0", "arm64")], talos_assets_base_url=server.url))
    assert run.rc != 0
    result = run.task(ROLE_TASK)["result"]
    assert len(result["failures"]) == 4
    for path in ("v1.9.4/%s/kernel-amd64" % VANILLA, "v1.9.4/%s/initramfs-amd64.xz" % VANILLA,
                 "v1.13.0/%s/kernel-arm64" % VANILLA, "v1.13.0/%s/initramfs-arm64.xz" % VANILLA):
        assert path in result["msg"]
    assert "talos_assets_local_dir" in result["msg"] and "talos_assets_base_url" in result["msg"]

    unreachable = run_playbook(play(data, [node("kube01")], talos_assets_base_url="http://127.0.0.1:9"))
    assert unreachable.rc != 0
    assert "Connection refused" in unreachable.task(ROLE_TASK)["result"]["msg"]


def test_bad_node_facts_are_refused_naming_the_node(run_playbook, tmp_path):
    run = run_playbook(play(tmp_path / "matchbox", [node("kube07", arch="x86_64")]))
    assert run.rc != 0
    assert "nodes[kube07].arch" in run.task(ROLE_TASK)["result"]["msg"]


def file_lines(run):
    """The per-file lines printed while the task runs: key -> what happened."""
    lines = [line[2:].split("   ", 1) for line in run.stdout.splitlines() if line.startswith("  v1.")]
    return dict(lines)


@pytest.mark.parametrize("callback", [None, "minimal"])
def test_each_file_gets_a_line_as_it_is_done(run_playbook, server, tmp_path, callback):
    data = tmp_path / "matchbox"
    files = publish(server.root, VANILLA, "v1.9.4", "amd64", kernel=bzimage(2_300_000))
    (server.root / OTHER / "v1.9.4").mkdir(parents=True)  # published nowhere: fails
    env = {"ANSIBLE_STDOUT_CALLBACK": callback} if callback else {}
    nodes = [node("kube01"), node("kube02", schematic=OTHER)]
    kernel, initramfs = "v1.9.4/%s/kernel-amd64" % VANILLA, "v1.9.4/%s/initramfs-amd64.xz" % VANILLA
    missing = ["v1.9.4/%s/%s" % (OTHER, name) for name in ("kernel-amd64", "initramfs-amd64.xz")]

    check = run_playbook(play(data, nodes, talos_assets_base_url=server.url), check=True, env=env)
    assert file_lines(check) == dict({kernel: "would be fetched", initramfs: "would be fetched"},
                                     **{key: "would be fetched" for key in missing}), check.stdout
    assert server.requests == [] and not (data / "assets").exists()

    run = run_playbook(play(data, nodes, talos_assets_base_url=server.url), env=env)
    print(run.stdout)
    lines = file_lines(run)
    assert re.fullmatch(r"2\.3 MB in \d+\.\d s", lines[kernel]), lines
    assert re.fullmatch(r"%.1f kB in \d+\.\d s" % (len(files["initramfs-amd64.xz"]) / 1000), lines[initramfs]), lines
    assert all(lines[key].startswith("failed: %s from %s/%s/v1.9.4/" % (key, server.url, OTHER)) for key in missing), lines
    assert list(lines) == [kernel, initramfs] + missing  # in the order they are done
    assert run.stdout.index("  " + kernel) < run.stdout.index("fatal:" if callback is None else "FAILED")
    result = run.task(ROLE_TASK)["result"]
    assert run.rc != 0 and "Could not provide 2 Talos boot file(s)" in result["msg"]
    assert sorted(result["fetched"]) == sorted(str(data / "assets" / "talos" / key) for key in (kernel, initramfs))
    assert result["sizes"][str(data / "assets" / "talos" / kernel)] == 2_300_000
    assert served(data, "v1.9.4", VANILLA, "kernel-amd64") == files["kernel-amd64"]

    again = run_playbook(play(data, nodes[:1], talos_assets_base_url=server.url), env=env)
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert file_lines(again) == {kernel: "already present", initramfs: "already present"}
