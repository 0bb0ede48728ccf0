# Two commands on a fresh machine:
#   make demo   set everything up, run the slow-client scenario on the reference backend
#   make test   set everything up, run the test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: setup demo test test-fast browser bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m instrument.run --scenario slow-client

# The HTML report is checked in a real headless Chromium from the distribution;
# install it when we can (root with apt), otherwise that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium not installed: the browser test will skip"; }

# Three workers on two cores: much of an end-to-end test is waiting (a check's
# hold, a restart's grace period, a hang's timeout), and a third worker fills it
# (533 s with two, 444 s with three, on one machine). The runs that must have the
# machine to themselves take it (tests/host_share.py).
test: setup browser
	$(PY) -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/audio_detection.py
	$(PY) benchmarks/analysis_searches.py
	$(PY) benchmarks/load_capacity.py

clean:
	rm -rf $(VENV) runs .pytest_cache
