# Two commands on a fresh machine:  make run   (local AWS on moto, no account)   and   make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt lambda/*/requirements.txt package-lock.json 2>/dev/null | sha256sum | cut -c1-12)

# the browser test drives Debian's Chromium: Playwright must never download a browser of its own
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
CHROMIUM := /usr/bin/chromium

.PHONY: setup browser run demo compare test test-fast lint bench synth sample assets web clean

setup: $(STAMP) browser

# Debian's chromium for the headless page test (tests/functional/test_web_page.py skips, saying so, without it)
browser:
	@[ -x $(CHROMIUM) ] || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "could not install chromium (needs root): the browser test will skip"; }

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; fi
	rm -f $(VENV)/.installed-*
	touch $@

sample: setup
	@[ -f models/sample/manifest.json ] || $(PY) -m devtools build-sample

run: setup
	$(PY) -m devtools run $(ARGS)

demo: setup
	$(PY) -m devtools demo $(ARGS)

# champion vs challenger (docs/versions.md): ARGS="--mode ab" for an A/B split
compare: setup
	$(PY) -m devtools compare $(ARGS)

# the Lambda assets, built once without Docker (downloads the wheels; cached by a hash of the requirements)
assets: sample
	@mkdir -p .build
	$(PY) benchmarks/bench_bundle_size.py --bundle models/sample > .build/assets-report.txt || (cat .build/assets-report.txt; exit 1)

# every test, then the lint CI holds a change to: `make test` is the one command, here and in CI
test: setup assets
	MS_REAL_BUNDLING=1 $(PY) -m pytest -q -n auto $(ARGS)
	@$(MAKE) --no-print-directory lint

# the inner loop: no real bundling, no tests marked slow (about 20 s here)
test-fast: setup
	$(PY) -m pytest -q -n auto -m "not slow" $(ARGS)

# style (ruff: lint, complexity <= 15, line length; ruff format), types of the shipped packages (mypy),
# the layer contracts (import-linter, pyproject.toml) and no import cycle in the project
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -p no:xdist tests/unit/test_import_cycles.py
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) benchmarks/bench_inference.py
	$(PY) benchmarks/bench_cold_start.py
	$(PY) benchmarks/bench_capture.py
	$(PY) benchmarks/bench_post_response.py
	$(PY) benchmarks/bench_drift_stats.py
	$(PY) benchmarks/bench_drift.py
	$(PY) benchmarks/bench_drift_read_cost.py
	$(PY) benchmarks/bench_reject_rate.py
	$(PY) benchmarks/bench_load.py
	$(PY) benchmarks/bench_protocols.py
	$(PY) benchmarks/bench_explain.py

# the browser page for the stack's web_page setting (read from web_site_dir, .build/web by default); the model is
# checked in onnxruntime-web under Node first. Another bundle: make web BUNDLE=path/to/bundle
BUNDLE ?= models/sample
web: sample
	$(PY) -m devtools web --bundle $(BUNDLE) --out .build/web

synth: sample
	npx cdk synth --quiet

clean:
	rm -rf $(VENV) cdk.out .build node_modules
