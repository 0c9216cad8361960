"""talos_machine_config through Ansible: Talos's golden configs, file modes, idempotence, check mode, diffs, errors."""

from __future__ import annotations

import stat

import yaml

from ansible_runner import local_play

VERSIONS = ("1.9", "1.10", "1.11", "1.12", "1.13", "1.14")


def golden_spec(shared_dir, version, kind, role):
    """The inputs of Talos's stability test (talos-golden/README.md) as a node spec."""
    spec = {
        "name": "v%s-%s-%s" % (version, kind, role), "role": role, "talos_version": "v%s.0" % version,
        "cluster_name": "base", "cluster_endpoint": "https://base:6443", "kubernetes_version": "1.28.0",
        "install_disk": "",  # the stability test passes no install disk
    }
    if kind == "overrides":
        patch = "patch.yaml" if version == "1.14" else "patch-pre14.yaml"
        spec.update(
            cert_sans=["foo", "bar"], allow_scheduling_on_control_planes=True, dns_domain="example.com",
            install_disk="/dev/vda", install_extra_kernel_args=["foo=bar", "bar=baz"], local_api_server_port=5443,
            sysctls={"foo": "bar"}, cni={"name": "custom", "urls": ["https://example.com/cni.yaml"]},
            registry_mirrors={"ghcr.io": ["https://ghcr.io.my-mirror.com"]},
            patches=[(shared_dir / "talos-golden" / patch).read_text()],
        )
    return spec


def render_task(secrets, dest, name="render"):
    return {"name": name, "netboot.talos.talos_machine_config": {"secrets": str(secrets), "dest": str(dest), "nodes": "{{ nodes }}"}}


def test_golden_configs(run_playbook, shared_dir, tmp_path):
    golden = shared_dir / "talos-golden"
    cases = [(v, k, r) for v in VERSIONS for k in ("base", "overrides") for r in ("controlplane", "worker")]
    nodes = [golden_spec(shared_dir, *case) for case in cases]
    dest = tmp_path / "nodes"
    run = run_playbook(local_play([render_task(golden / "secrets.yaml", dest)]), extra_vars={"nodes": nodes})
    assert run.rc == 0, run.stdout + run.stderr
    identical = []
    for (version, kind, role), node in zip(cases, nodes):
        want = (golden / ("v" + version) / ("%s-%s.yaml" % (kind, role))).read_text()
        got = (dest / (node["name"] + ".yaml")).read_text()
        assert list(yaml.safe_load_all(got)) == list(yaml.safe_load_all(want)), node["name"]
        if got == want:
            identical.append(node["name"])
    print("\nbyte-identical golden configs: %d of %d" % (len(identical), len(cases)))
    # every golden file is byte-identical today: any difference is a regression
    assert len(identical) == len(cases), sorted({n["name"] for n in nodes} - set(identical))


def small_nodes():
    base = {"talos_version": "v1.11.5", "cluster_name": "lab", "cluster_endpoint": "https://10.0.50.70:6443", "install_disk": "/dev/sda"}
    return [
        dict(base, name="cp1", role="controlplane", network={"interface": "eth0", "addresses": ["10.0.50.71/24"], "vip": "10.0.50.70"}),
        dict(base, name="w1", role="worker", talos_version="v1.14.0"),
    ]


def test_files_modes_idempotence_check_mode_and_redacted_diff(run_playbook, shared_dir, tmp_path):
    secrets = shared_dir / "talos-golden" / "secrets.yaml"
    dest = tmp_path / "out" / "nodes"
    play = local_play([render_task(secrets, dest)])

    check = run_playbook(play, extra_vars={"nodes": small_nodes()}, check=True, diff=True)
    assert check.rc == 0, check.stdout
    assert check.task("render")["result"]["changed_nodes"] == ["cp1", "w1"]
    assert not dest.exists()

    first = run_playbook(play, extra_vars={"nodes": small_nodes()}, diff=True)
    assert first.rc == 0, first.stdout
    result = first.task("render")["result"]
    assert result["changed"] is True and result["rendered"] == ["cp1", "w1"] and result["changed_nodes"] == ["cp1", "w1"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    for name in ("cp1", "w1"):
        assert stat.S_IMODE((dest / (name + ".yaml")).stat().st_mode) == 0o600
    bundle = yaml.safe_load(secrets.read_text())
    secret_texts = [bundle["trustdinfo"]["token"], bundle["secrets"]["bootstraptoken"], bundle["cluster"]["secret"],
                    bundle["certs"]["os"]["key"], bundle["certs"]["k8s"]["key"], bundle["secrets"]["secretboxencryptionsecret"]]
    assert bundle["certs"]["os"]["key"] in (dest / "cp1.yaml").read_text()
    visible = first.stdout + first.stderr + str(result)
    assert "<redacted>" in first.stdout
    for text in secret_texts:
        assert text not in visible

    second = run_playbook(play, extra_vars={"nodes": small_nodes()})
    assert second.rc == 0 and second.task("render")["result"]["changed"] is False
    assert second.task("render")["result"]["changed_nodes"] == []

    (dest / "w1.yaml").chmod(0o644)
    third = run_playbook(play, extra_vars={"nodes": small_nodes()})
    assert third.task("render")["result"]["changed_nodes"] == ["w1"]
    assert stat.S_IMODE((dest / "w1.yaml").stat().st_mode) == 0o600


def test_bad_specs_fail_naming_node_and_key_and_write_nothing(run_playbook, shared_dir, tmp_path):
    nodes = small_nodes()
    nodes[0]["network"]["vip"] = "not-an-ip"
    nodes[1].update(role="master", dns_domain="Bad_Domain")
    nodes.append(dict(small_nodes()[0], name="cp2", patches=[{"cluster": {"etcd": {}}}, [{"op": "remove", "path": "/nope"}]]))
    nodes.append(dict(small_nodes()[1], name="w2", patches=[{"machine": {"ca": {"key": "c2VjcmV0"}}}]))
    dest = tmp_path / "nodes"
    run = run_playbook(local_play([render_task(shared_dir / "talos-golden" / "secrets.yaml", dest)]), extra_vars={"nodes": nodes})
    assert run.rc != 0
    message = run.task("render")["result"]["msg"]
    assert "nodes[cp1].network.vip: 'not-an-ip' is not an IP address" in message
    assert "nodes[w1].role: 'master' is not controlplane or worker" in message
    assert "nodes[w1].dns_domain" in message
    assert "nodes[cp2].patches[1]: " in message and "JSON6902" not in message  # 1.11 is single-document
    assert "nodes[w2].patches: machine.ca.key must not be set on a worker" in message
    assert not dest.exists()


def test_missing_or_unusable_secrets_fail_naming_the_bundle_and_write_nothing(run_playbook, shared_dir, tmp_path):
    dest = tmp_path / "nodes"
    missing = run_playbook(local_play([render_task(tmp_path / "absent.yaml", dest)]), extra_vars={"nodes": small_nodes()})
    assert missing.rc != 0
    assert "secrets: %s does not exist" % (tmp_path / "absent.yaml") in missing.task("render")["result"]["msg"]

    bundle = yaml.safe_load((shared_dir / "talos-golden" / "secrets.yaml").read_text())
    del bundle["trustdinfo"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(bundle))
    unusable = run_playbook(local_play([render_task(broken, dest)]), extra_vars={"nodes": small_nodes()})
    assert unusable.rc != 0
    message = unusable.task("render")["result"]["msg"]
    assert "secrets: %s: trustdinfo" % broken in message
    assert bundle["secrets"]["bootstraptoken"] not in message
    assert not dest.exists()
