# SmolRGPT for ROS 2: one-command setup, tests and demo.
#   make setup   .venv with Python 3.11, pinned deps, ROS 2 Jazzy from PyPI wheels, the built
#                msg/srv interfaces and `pip install -e .` (idempotent; a re-run is quick)
#   make test    setup if needed, then the test suite
#   make demo    the main job on the embedded default
# With a system ROS 2 sourced (ROS_DISTRO set), the ROS wheels are skipped: see README.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BIN ?= python3.11
VENV ?= .venv
VENV_ABS := $(abspath $(VENV))
PY := $(VENV_ABS)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
BUILD_DIR ?= build/cmake
STAMPS := $(VENV)/.stamps
PYTEST_ARGS ?=
# pip configs that name local file:// indexes which are absent warn on every call: drop that noise only
QUIET_PIP := 2>&1 | { grep -v "^WARNING: Location 'file://" || true; }

# pypi: ROS 2 Jazzy from the ros-jazzy-* wheels into the venv; system: a sourced /opt/ros install
ROS_SOURCE ?= $(if $(ROS_DISTRO),system,pypi)

INTERFACE_SOURCES := CMakeLists.txt package.xml $(wildcard msg/*.msg srv/*.srv action/*.action) \
	smolrgpt_ros/__init__.py scripts/spatial_query_node

.PHONY: help setup test test-all lint demo embedded-model clean distclean

help:
	@echo 'make setup | test | test-all | lint | demo | clean | distclean'

setup: $(STAMPS)/editable

$(STAMPS)/venv:
	@if [ ! -x $(PY) ]; then \
	  command -v $(PYTHON_BIN) >/dev/null || { echo "make setup: $(PYTHON_BIN) not found (set PYTHON_BIN=...)" >&2; exit 1; }; \
	  echo ">> creating $(VENV) with $$($(PYTHON_BIN) --version)"; \
	  $(PYTHON_BIN) -m venv $(if $(filter system,$(ROS_SOURCE)),--system-site-packages) $(VENV); \
	fi
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/deps: $(STAMPS)/venv requirements/base.txt requirements/dev.txt
	@echo '>> installing pinned Python dependencies'
	$(PIP) install -q -r requirements/base.txt -r requirements/dev.txt $(QUIET_PIP)
	@touch $@

ifeq ($(ROS_SOURCE),pypi)
$(STAMPS)/ros: $(STAMPS)/deps requirements/ros-jazzy.txt scripts/fix_wheel_cmake.sh
	@echo '>> installing ROS 2 Jazzy from the ros-jazzy-* wheels'
	$(PIP) install -q -r requirements/ros-jazzy.txt $(QUIET_PIP)
	scripts/fix_wheel_cmake.sh $(VENV_ABS)
	@touch $@

# Generate and build the msg/srv interfaces, install them into the venv prefix (where the
# wheels' ament index and LD_LIBRARY_PATH already look). The Python sources are served by
# `pip install -e .`, so CMake does not install copies of them.
$(STAMPS)/interfaces: $(STAMPS)/ros $(INTERFACE_SOURCES)
	@echo '>> building the smolrgpt_ros interfaces'
	@mkdir -p $(BUILD_DIR)
	PATH=$(VENV_ABS)/bin:$$PATH cmake -S . -B $(BUILD_DIR) -Wno-dev \
	  -DCMAKE_PREFIX_PATH=$(VENV_ABS) -DCMAKE_INSTALL_PREFIX=$(VENV_ABS) \
	  -DPython3_EXECUTABLE=$(PY) -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
	  -DSMOLRGPT_INSTALL_PYTHON_SOURCES=OFF > $(BUILD_DIR).configure.log 2>&1 \
	  || { cat $(BUILD_DIR).configure.log >&2; exit 1; }
	PATH=$(VENV_ABS)/bin:$$PATH cmake --build $(BUILD_DIR) -j$$(nproc) > $(BUILD_DIR).build.log 2>&1 \
	  || { tail -n 50 $(BUILD_DIR).build.log >&2; exit 1; }
	cmake --install $(BUILD_DIR) > $(BUILD_DIR).install.log 2>&1 \
	  || { cat $(BUILD_DIR).install.log >&2; exit 1; }
	@touch $@
else
$(STAMPS)/interfaces: $(STAMPS)/deps
	@echo ">> system ROS 2 ($(ROS_DISTRO)): build the interfaces with colcon (see README)"
	@touch $@
endif

$(STAMPS)/editable: $(STAMPS)/interfaces setup.py pyproject.toml
	@echo '>> pip install -e .'
	$(PIP) install -q --no-deps --no-build-isolation -e . $(QUIET_PIP)
	@touch $@

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# everything, including the slow tests (gpu/tensorrt ones skip themselves when absent)
test-all: setup
	$(PY) -m pytest -m '' $(PYTEST_ARGS)

lint: setup
	$(VENV_ABS)/bin/ruff check .
	$(VENV_ABS)/bin/ruff format --check .

# synthetic scenes -> rosbag2 -> spatial_query_node (embedded model) over DDS -> scored answers
DEMO_ARGS ?=
demo: setup
	$(VENV_ABS)/bin/smolrgpt info
	$(VENV_ABS)/bin/smolrgpt demo --out demo_output $(DEMO_ARGS)

# retrain the embedded default model from scratch (synthetic data, 1-2 h on 2 CPU cores)
EMBEDDED_ARGS ?=
embedded-model: setup
	PYTHON=$(PY) scripts/train_embedded_model.sh $(EMBEDDED_ARGS)

clean:
	rm -rf build install log .pytest_cache .ruff_cache

distclean: clean
	rm -rf $(VENV)
