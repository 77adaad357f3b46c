# agentops.runbooks — the two commands of the README are `make diagnose` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
BUILD := $(CURDIR)/build
# Tests that start, count or signal processes run inside a PID namespace of their own
# (scripts/pidns.py): they see and touch only what they made, never another job's processes.
PIDNS := $(BIN)/python $(CURDIR)/scripts/pidns.py --unshare --
LINK := .collections/ansible_collections/agentops/runbooks
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
# Everything below runs the collection from this checkout.
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_HOME := $(CURDIR)/.ansible
export PATH := $(BIN):$(PATH)
ARGS ?=
RESULTS := $(CURDIR)/tests/output/junit

.PHONY: help diagnose test lint sanity unit integration molecule matrix bench docs docs-check build clean

help:
	@echo "make diagnose   set up, diagnose this machine, write an incident report under ./incidents"
	@echo "make test       set up and run every test: lint, sanity, unit, integration, molecule, matrix"
	@echo "make bench      benchmarks (ratios against baselines measured in the same run)"

$(VENV)/.core: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 | { grep -v 'is ignored: it is neither a file' || true; }
	touch $@

$(VENV)/.test: $(VENV)/.core requirements-test.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-test.txt 2>&1 | { grep -v 'is ignored: it is neither a file' || true; }
	touch $@

$(LINK):
	mkdir -p $(dir $(LINK))
	ln -sfn ../../.. $(LINK)

.PHONY: .system-deps
.system-deps:
	bash scripts/system_deps.sh

# npm tools the tests run for real (pm2), pinned, under .cache/npm-tools; podman with its state and a tiny local
# image under .cache/podman (no registry).
.PHONY: .npm-tools .podman
.npm-tools: .system-deps
	bash scripts/npm_tools.sh >/dev/null
.podman: .system-deps
	bash scripts/podman_setup.sh >/dev/null
# ansible-rulebook (and ansible-builder) for the EDA and execution-environment tests, in .cache/venv-eda.
.PHONY: .eda
.eda: .system-deps
	bash scripts/eda_setup.sh >/dev/null
# moto's S3-compatible server for the report-upload tests, in .cache/venv-moto.
.PHONY: .moto
.moto: .system-deps
	bash scripts/moto_setup.sh >/dev/null

diagnose: $(VENV)/.core $(LINK)
	$(BIN)/ansible-playbook playbooks/diagnose.yml -i inventories/localhost.yml $(ARGS)

# Every layer runs (-k) so that the summary covers them all; the summary fails on any failure and on
# any layer or scenario that did not run.
test:
	rm -rf $(RESULTS)
	@status=0; $(MAKE) --no-print-directory -k lint sanity unit integration molecule matrix || status=$$?; \
	echo "Tests per layer (measured in this run):"; \
	$(BIN)/python scripts/test_summary.py $(RESULTS) $(filter-out default,$(notdir $(patsubst %/,%,$(wildcard extensions/molecule/*/)))) || status=1; \
	exit $$status

lint: $(VENV)/.test $(LINK)
	mkdir -p $(RESULTS)
	$(BIN)/ansible-lint --offline 2>&1 | tee $(RESULTS)/lint.log

docs: $(VENV)/.core $(LINK)
	$(BIN)/python scripts/gen_docs.py

build: $(VENV)/.core
	rm -rf $(BUILD)
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD)

# ansible-test runs on the built-and-installed collection, so it also proves that `ansible-galaxy
# collection build` and `install` work. ansible-test lists files with git when inside a checkout, so
# the installed copy lives in a fresh temporary directory (removed afterwards); its cache (the offline
# pip bootstrap, ~/.ansible/test/cache) lives under this checkout through HOME.
sanity: $(VENV)/.test build
	mkdir -p $(RESULTS) $(CURDIR)/.cache/ansible-test-home
	root=$$(mktemp -d) && trap 'rm -rf "$$root"' EXIT && \
	  $(BIN)/ansible-galaxy collection install --force -p "$$root" $(BUILD)/agentops-runbooks-$(VERSION).tar.gz && \
	  export HOME=$(CURDIR)/.cache/ansible-test-home && $(BIN)/python scripts/ansible_test_offline.py && \
	  cd "$$root/ansible_collections/agentops/runbooks" && \
	  $(BIN)/ansible-test sanity --venv --python 3.11 --color no $(SANITY_EXCLUDES) 2>&1 | tee $(RESULTS)/sanity.log

unit: $(VENV)/.test $(LINK) .system-deps
	$(PIDNS) $(BIN)/pytest -p no:cacheprovider --junitxml=$(RESULTS)/unit.xml tests/unit

integration: $(VENV)/.test $(LINK) .system-deps .npm-tools .podman .eda .moto
	$(PIDNS) $(BIN)/pytest -p no:cacheprovider --junitxml=$(RESULTS)/integration.xml tests/integration

# Every scenario runs (one failing does not hide the others), each in its own PID namespace, with
# Molecule's cache under this checkout; its exit code is recorded so that the summary counts a scenario
# that failed outside its verifier, or never ran, as failed.
molecule: $(VENV)/.test $(LINK) .system-deps
	mkdir -p $(RESULTS)
	failed=0; for scenario in extensions/molecule/*/; do \
	  name=$$(basename $$scenario); [ $$name != default ] || continue; \
	  XDG_CACHE_HOME=$(CURDIR)/.cache MOLECULE_JUNIT=$(RESULTS)/molecule-$$name.xml \
	    AGENTOPS_STRICT_EVIDENCE=1 $(PIDNS) $(BIN)/molecule test -s $$name && rc=0 || rc=$$?; \
	  echo $$rc > $(RESULTS)/molecule-$$name.rc; [ $$rc -eq 0 ] || failed=1; \
	done; exit $$failed

# The ansible-core version matrix (scripts/matrix.py): the layers above run everything on 2.19 (requirements.txt);
# this runs a smoke set on 2.15, 2.16, 2.17 and 2.18, each from its own venv under .cache/venv-core-2.NN
# (requirements-matrix/, made once): ansible-test sanity's API and schema tests on the built collection, the unit
# tests of the plugins that use ansible-core's internals, diagnose.yml and the reap_processes dry run. One JUnit
# testcase per line and step in matrix.xml, logs under tests/output/matrix.
matrix: $(VENV)/.core $(LINK)
	mkdir -p $(RESULTS)
	$(BIN)/python scripts/matrix.py --junit $(RESULTS)/matrix.xml

bench: $(VENV)/.test $(LINK) .system-deps
	$(BIN)/python tests/bench/run.py

clean:
	rm -rf $(BUILD) .collections tests/output .cache
