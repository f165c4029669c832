# Two entry points that work on a fresh machine with nothing installed:
#   make demo   installs linseq into .venv and runs `linseq bench` on its embedded default
#   make test   installs linseq with its test extras into .venv and runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
PIP    := $(VENV)/bin/pip
PY     := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test install install-test clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(VENV)/bin/activate
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[triton]"

install-test: $(VENV)/bin/activate
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test]"

demo: install
	$(VENV)/bin/linseq bench

test: install-test
	$(PY) -m pytest -q -ra

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
