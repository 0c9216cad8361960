"""netboot.talos.talos_boot_versions through Ansible: during a Talos upgrade the boot server serves
the lowest version the answering nodes run, in the matchbox profiles it publishes too."""

from __future__ import annotations

from ansible_runner import ansible_playbook, local_play

VANILLA = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"


def nodes(version, install_image=None):
    """Two nodes as talos_inventory gives them; install_image: talos_install_image, else the config's follows the version."""
    return [{"name": name, "role": role, "mac": mac, "ip": ip, "arch": "amd64", "talos_version": version,
             "schematic": VANILLA, "pxe_kernel_args": [], "install_image": install_image,
             "config": {"talos_version": version, "install_image": install_image or "ghcr.io/siderolabs/installer:" + version}}
            for name, role, mac, ip in (("cp1", "controlplane", "52:54:00:11:00:11", "127.0.11.11"),
                                        ("w1", "worker", "52:54:00:11:00:21", "127.0.11.21"))]


def up(version):
    return {"stage": "up", "version": version}


CASES = [
    # (name, inventory version, talos_info nodes, version every node boots)
    ("a new cluster: nothing answers", "v1.12.0", {}, "v1.12.0"),
    ("mid-upgrade: one node still runs the old", "v1.12.0", {"127.0.11.11": up("v1.12.0"), "127.0.11.21": up("v1.11.5")}, "v1.11.5"),
    ("every node runs the new", "v1.12.0", {"127.0.11.11": up("v1.12.0"), "127.0.11.21": up("v1.12.0")}, "v1.12.0"),
    ("a node that does not answer counts for nothing", "v1.12.0",
     {"127.0.11.11": up("v1.12.0"), "127.0.11.21": {"stage": "down", "version": None}}, "v1.12.0"),
    ("never newer than the inventory", "v1.11.5", {"127.0.11.11": up("v1.12.0"), "127.0.11.21": up("v1.12.0")}, "v1.11.5"),
]


def test_each_node_boots_the_lowest_running_version_until_all_run_the_new_one(tmp_path):
    tasks = []
    for index, (_name, version, running, _boots) in enumerate(CASES):
        tasks.append({"name": "case %d" % index, "ansible.builtin.set_fact": {
            "boot_%d" % index: "{{ %r | netboot.talos.talos_boot_versions(%r) }}" % (nodes(version), running)}})
        tasks.append({"name": "empty %d" % index, "ansible.builtin.set_fact": {
            "empty_%d" % index: "{{ %r | netboot.talos.talos_boot_versions(%r, empty_when_unchanged=true) }}" % (nodes(version), running)}})
        tasks.append({"name": "profiles %d" % index, "ansible.builtin.set_fact": {
            "profiles_%d" % index: "{{ boot_%d | netboot.talos.talos_matchbox('http://127.0.11.1:8080') }}" % index}})
    run = ansible_playbook(local_play(tasks), tmp_path)
    assert run.rc == 0, run.stdout + run.stderr
    for index, (name, version, _running, boots) in enumerate(CASES):
        served = run.task("case %d" % index)["result"]["ansible_facts"]["boot_%d" % index]
        assert [n["talos_version"] for n in served] == [boots, boots], name
        profiles = run.task("profiles %d" % index)["result"]["ansible_facts"]["profiles_%d" % index]["profiles"]
        kernels = {p["boot"]["kernel"] if "boot" in p else str(p) for p in profiles}
        assert all("/assets/talos/%s/" % boots in kernel for kernel in kernels), (name, kernels)
        # empty_when_unchanged: [] when every node boots its own version, else the same nodes
        empty = run.task("empty %d" % index)["result"]["ansible_facts"]["empty_%d" % index]
        assert empty == ([] if boots == version else served), name
        # the config installs what the node boots
        assert [(n["config"]["talos_version"], n["config"]["install_image"]) for n in served] == \
            [(boots, "ghcr.io/siderolabs/installer:" + boots)] * 2, name


def test_an_installer_image_the_user_set_stays(tmp_path):
    own = "registry.example/talos/installer:v1.12.0"
    task = {"name": "boot", "ansible.builtin.set_fact": {"boot": "{{ %r | netboot.talos.talos_boot_versions(%r) }}" % (
        nodes("v1.12.0", own), {"127.0.11.11": up("v1.11.5")})}}
    run = ansible_playbook(local_play([task]), tmp_path)
    assert run.rc == 0, run.stdout + run.stderr
    served = run.task("boot")["result"]["ansible_facts"]["boot"]
    assert [(n["talos_version"], n["config"]["install_image"]) for n in served] == [("v1.11.5", own)] * 2
