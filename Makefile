# Điểm Cầu — the two commands a fresh Debian machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
STAMP   = $(VENV)/.installed
TEST_STAMP = $(VENV)/.installed-test
APT_PACKAGES = ffmpeg
TEST_APT_PACKAGES = chromium ffmpeg redis-server coturn nginx caddy fonts-dejavu-core

.PHONY: run test test-fast bench bench-quick screenshots soak install install-test system-deps test-system-deps clean lint lock

# -c constraints.txt: the versions tested together (pyproject.toml has the ranges; `make lock`).
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || (apt-get update && apt-get install -y python3 python3-venv)
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV) || (apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV))
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $@

# The relay's C fan-out loop (media/native/fastpath.c). `pip install` builds it when a compiler is
# there; this builds it again, in place, once one is installed or after the C changed. Without a
# compiler the Python loop is used.
FASTPATH = media/native/_fastpath.abi3.so
$(FASTPATH): media/native/fastpath.c media/native/fastpath.h media/native/build.py | $(STAMP)
	@command -v cc >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev) || true
	@$(PY) -c "import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
		|| (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-dev) || true
	$(PY) -m media.native.build || echo "warning: C fast path not built; the relay forwards with its Python loop"

# The load generator's receive loop (bench/rx_build.py): keeps `make bench`'s own CPU low.
RXFAST = bench/_rxfast.so
$(RXFAST): bench/rx_build.py $(FASTPATH)
	$(PY) -m bench.rx_build || echo "warning: C receive loop not built; the load generator counts in Python"

install: $(STAMP) $(FASTPATH)
install-test: $(TEST_STAMP) $(FASTPATH) $(RXFAST)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

test-system-deps:
	@missing=""; for p in $(TEST_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

run: install system-deps
	$(VENV)/bin/diemcau serve

test: install-test test-system-deps
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# `make test-fast`: everything but the test files marked slow (each over ~10 s on two cores).
test-fast: install-test test-system-deps
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

# `make bench` runs the full fan-out/recorder benchmark, then the floor switch (bench/floor_switch.py),
# whose section goes into the same report; `make bench ARGS=--quick` or `make bench-quick` is the short
# one. FLOOR_ARGS go to the floor switch (e.g. FLOOR_ARGS="--rounds 5"), HLS_ARGS to the live HLS viewers
# (bench/hls_viewers.py, e.g. HLS_ARGS="--steps 100,500"); all always run.
bench: install-test test-system-deps
	status=0; $(PY) -m bench.run $(ARGS) || status=$$?; \
	$(PY) -m bench.floor_switch $(if $(filter --quick,$(ARGS)),--quick) $(FLOOR_ARGS) || status=$$?; \
	$(PY) -m bench.hls_viewers $(if $(filter --quick,$(ARGS)),--quick) $(HLS_ARGS) || status=$$?; \
	exit $$status

bench-quick: install-test test-system-deps
	status=0; $(PY) -m bench.run --quick || status=$$?; \
	$(PY) -m bench.floor_switch --quick $(FLOOR_ARGS) || status=$$?; \
	$(PY) -m bench.hls_viewers --quick $(HLS_ARGS) || status=$$?; \
	exit $$status

# `make screenshots`: the pictures of the Vietnamese guide (docs/vi/img), from a real server and Chromium.
screenshots: install-test test-system-deps
	$(PY) -m tests.support.screenshots docs/vi/img

# `make soak`: 20 minutes of WHEP/WebSocket/HLS churn, watched for leaks; `make soak ARGS="--minutes 5"`.
soak: install-test test-system-deps
	$(PY) -m bench.soak $(ARGS)

# Writes the versions installed in $(VENV) (after `make install-test`) to constraints.txt.
lock: $(TEST_STAMP)
	{ sed -n '/^#/p' constraints.txt; $(PIP) freeze --exclude-editable | grep -v '^diemcau'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) data bench/.cache build media/native/_fastpath*.so $(RXFAST)
