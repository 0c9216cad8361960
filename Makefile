# netboot.talos: `make lab` shows the whole flow on QEMU machines, `make test` runs every test.
# Both install what they need: Debian packages (apt, as root) and a virtualenv in .venv.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
export CONTAINERS_CONF := $(abspath tests/podman/containers.conf)
export PYTHONPATH := $(abspath collections)

DEBIAN_PACKAGES := podman runc qemu-system-x86 ipxe ipxe-qemu ovmf tftpd-hpa tftp-hpa dnsmasq isc-dhcp-server kea-dhcp4-server \
	cpio busybox-static iproute2 curl debootstrap shellcheck
# Only for `make bench`: the boot server is reached over SSH to this machine (its own sshd, see tests/bench/site_play.py).
BENCH_DEBIAN_PACKAGES := openssh-server openssh-client
MOLECULE_SCENARIOS := $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml))

.PHONY: help deps venv lint sanity checks unit install-test release-lint molecule molecule-scenarios $(MOLECULE_SCENARIOS:%=molecule-%) e2e test bench bench-deps lab lab-site lab-reprovision lab-down clean

help:
	@echo "make lab       boot the virtual lab end to end (QEMU, BIOS and UEFI machines), offline"
	@echo "make lab LAB_MODE=auto  the same with the real matchbox image and Talos assets when reachable"
	@echo "make lab-site  run site.yml against the lab again (after make lab)"
	@echo "make lab-reprovision NODES=lab-worker1  reset lab nodes and bring them back through PXE"
	@echo "make lab-down  remove everything the lab made"
	@echo "make test      lint, sanity, unit tests, molecule scenarios and the PXE end-to-end test"
	@echo "make bench     time site.yml's re-run: validation, configs, version probe, publish (no-op and cold, 100 and 1000 nodes, boot server over SSH), the cluster wait and diagnose"

deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BIN)/.installed: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-test.txt
	touch $@

venv: $(BIN)/.installed

lint: venv
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint -q

# ansible-test sanity (ansible-core 2.19, Python 3.11, local) on a copy of the work tree; see tests/sanity/run.sh.
sanity: deps venv
	tests/sanity/run.sh

unit: venv
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=20 tests/unit

# The built tarball installed into an empty collections path, run by name from outside the checkout.
install-test: venv
	$(BIN)/pytest -q -p no:cacheprovider tests/install

# Changelog fragments and the collection's docs (modules, plugins, role argument specs), offline.
release-lint: venv
	$(BIN)/antsibull-changelog lint
	$(BIN)/antsibull-docs lint-collection-docs --plugin-docs .

# The scenarios share nothing (namespaces, addresses, state directories and containers of their own)
# and each is one Ansible process mostly: they run side by side, each one's output printed whole.
molecule: deps venv
	@$(MAKE) --no-print-directory -o $(BIN)/.installed -j 2 --output-sync=target molecule-scenarios

molecule-scenarios: $(MOLECULE_SCENARIOS:%=molecule-%)

$(MOLECULE_SCENARIOS:%=molecule-%): molecule-%:
	@echo "== molecule scenario $*"
	$(BIN)/molecule test -s $*

e2e: deps venv
	$(BIN)/pytest -q -p no:cacheprovider tests/e2e

# lint, release-lint and sanity only read the work tree and are single processes mostly: side by side
# on two cores, each one's output printed whole when it ends.
checks: deps venv
	@$(MAKE) --no-print-directory -o $(BIN)/.installed -j 3 --output-sync=target lint release-lint sanity

test: deps venv checks unit install-test molecule e2e

# LAB_MODE=auto or online: the real matchbox image and Talos assets (see inventory/lab); default offline.
lab: deps venv
	$(BIN)/ansible-playbook -i inventory/lab playbooks/lab.yml $(if $(LAB_MODE),-e lab_mode=$(LAB_MODE))

lab-site: venv
	$(BIN)/ansible-playbook -i inventory/lab site.yml

lab-reprovision: venv
	$(BIN)/ansible-playbook -i inventory/lab playbooks/reprovision.yml -e nodes=$(NODES)

lab-down: venv
	$(BIN)/ansible-playbook -i inventory/lab playbooks/lab_down.yml

bench-deps:
	@missing=$$(for p in $(BENCH_DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the benchmark: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

bench: deps venv bench-deps
	$(BIN)/python tests/bench/configs_play.py
	$(BIN)/python tests/bench/site_play.py
	$(BIN)/python tests/bench/diagnose_nodes.py

clean:
	rm -rf $(VENV) build tests/output
