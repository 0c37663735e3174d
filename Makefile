# Developer and CI entry points. `make test` is what CI runs (.ci/run): system packages, the venv, then pytest,
# which starts the real services (docker-registry, moto S3) itself on loopback ports and stops them at the end.
#
#   make test     everything (integration tests included)     make unit    only tests not marked integration
#   make lint     ruff                                         make demo    examples/demo.py
#   make bench    every bench/[!_]*.py                        make venv    (re)install .venv when the pins change

SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
PYTEST := $(VPY) -m pytest -q -p no:cacheprovider
# apt packages, and one command each provides: install only when a command is missing
APT_PACKAGES := docker-registry skopeo apache2-utils golang-go graphviz curl
SYSTEM_COMMANDS := docker-registry skopeo htpasswd go dot curl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test unit lint demo bench venv system-deps

venv: $(STAMP)

# The stamp is newer than the pins when the venv is current, so a second `make venv` does nothing.
$(STAMP): requirements-ci.txt pyproject.toml
	[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	UV_COMPILE_BYTECODE=1 $(UV) pip install -q -p $(VPY) -r requirements-ci.txt
	$(UV) pip install -q -p $(VPY) --no-deps -e .
	touch $@

system-deps:
	@missing=""; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  echo "system-deps: missing$$missing; installing $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES); \
	fi

# pytest's exit code 5 (nothing collected) is non-zero, so an empty run fails too.
test: system-deps venv
	$(PYTEST)

unit: venv
	$(PYTEST) -m "not integration"

lint: venv
	$(VENV)/bin/ruff check .

demo: venv
	$(VPY) examples/demo.py

bench: system-deps venv
	@set -e; for f in bench/[!_]*.py; do echo "== $$f"; $(VPY) $$f; done
