# kit — the README's commands. `make setup` is implied by the others.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.kit-setup-done
SETUP_INPUTS := scripts/setup.sh scripts/kit-launcher.c pyproject.toml setup.py kit/engines/build.py kit/engines/sources.py \
                $(wildcard kit/engines/*.c kit/engines/*.cpp kit/engines/*.h)

.PHONY: setup test report lab bench bench-net clean

setup: $(STAMP)

$(STAMP): $(SETUP_INPUTS)
	bash scripts/setup.sh
	touch $@

# kit's bytecode written once, up front: where Python may not write it itself
# (PYTHONDONTWRITEBYTECODE), each of the hundreds of kit processes and notebook
# kernels the tests start would compile kit's modules again (0.17 s each here)
test: setup
	$(PY) -m compileall -q kit
	$(PY) -m pytest -q $(PYTEST_ARGS)

report: setup
	$(VENV)/bin/kit report $(REPORT_ARGS)

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

bench: setup
	$(PY) bench/overhead.py

# the network half: kit's load generator against sockperf, epoll/io_uring/asio at 1, 16, 256 connections
bench-net: setup
	$(PY) bench/net.py

clean:
	rm -rf $(VENV) build kit-scratch *.egg-info kit/engines/_native*.so kit/engines/*.o kit/engines/_native.c
