# agentops.runbooks — the two commands of the README are `make diagnose` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
BUILD := $(CURDIR)/build
# ansible-test lists files with git when inside a checkout, so the installed
# copy it tests must live outside this one.
INSTALL_ROOT ?= $(or $(TMPDIR),/tmp)/agentops-runbooks-install
LINK := .collections/ansible_collections/agentops/runbooks
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
# Everything below runs the collection from this checkout.
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_HOME := $(CURDIR)/.ansible
export PATH := $(BIN):$(PATH)
ARGS ?=
RESULTS := $(CURDIR)/tests/output/junit

.PHONY: help diagnose test lint sanity unit integration molecule bench docs docs-check build clean

help:
	@echo "make diagnose   set up, diagnose this machine, write an incident report under ./incidents"
	@echo "make test       set up and run every test: lint, sanity, unit, integration, molecule"
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

diagnose: $(VENV)/.core $(LINK)
	$(BIN)/ansible-playbook playbooks/diagnose.yml -i inventories/localhost.yml $(ARGS)

test:
	rm -rf $(RESULTS)
	$(MAKE) --no-print-directory lint sanity unit integration molecule
	@echo "Tests per layer (ansible-lint and all 24 ansible-test sanity tests passed above):"
	@$(BIN)/python scripts/test_summary.py $(RESULTS)

lint: $(VENV)/.test $(LINK)
	$(BIN)/ansible-lint --offline

docs: $(VENV)/.core $(LINK)
	$(BIN)/python scripts/gen_docs.py

build: $(VENV)/.core
	rm -rf $(BUILD) $(INSTALL_ROOT)
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD)
	$(BIN)/ansible-galaxy collection install --force -p $(INSTALL_ROOT) $(BUILD)/agentops-runbooks-$(VERSION).tar.gz

# ansible-test runs on the built-and-installed collection, so it also proves
# that `ansible-galaxy collection build` and `install` work.
sanity: $(VENV)/.test build
	$(BIN)/python scripts/ansible_test_offline.py
	cd $(INSTALL_ROOT)/ansible_collections/agentops/runbooks && \
	  $(BIN)/ansible-test sanity --venv --python 3.11 --color no $(SANITY_EXCLUDES)

unit: $(VENV)/.test $(LINK)
	$(BIN)/pytest -p no:cacheprovider --junitxml=$(RESULTS)/unit.xml tests/unit

integration: $(VENV)/.test $(LINK) .system-deps
	$(BIN)/pytest -p no:cacheprovider --junitxml=$(RESULTS)/integration.xml tests/integration

molecule: $(VENV)/.test $(LINK) .system-deps
	for scenario in molecule/*/; do \
	  name=$$(basename $$scenario); \
	  MOLECULE_JUNIT=$(RESULTS)/molecule-$$name.xml $(BIN)/molecule test -s $$name || exit 1; \
	done

bench: $(VENV)/.test $(LINK) .system-deps
	$(BIN)/python tests/bench/run.py

clean:
	rm -rf $(BUILD) .collections tests/output
