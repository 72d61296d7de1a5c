# memberflow — `make run` starts the local stack, `make test` runs every check.
SHELL := /bin/bash
VENV ?= .venv
STAGE ?= dev
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)

.PHONY: install browser run demo mail test lint typecheck unit integration package schema clean bench bench-smoke

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

browser:  ## headless Chromium for the member page tests (Debian packages, installed when missing)
	@bash scripts/ensure_browser.sh

run: install  ## the embedded local stack on http://127.0.0.1:$${LOCAL_APP_PORT:-8000}
	$(PY) -m devstack

demo: install  ## replay sample webhooks against a running `make run`
	$(PY) -m devstack.demo

mail: install  ## the emails a running `make run` sent (to TO=<email> if given), as sent: with working links
	$(PY) -m devstack.mailbox $(if $(TO),--to '$(TO)')

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: install
	$(PY) -m mypy

unit: install
	$(PY) -m pytest tests/unit -q

test: lint typecheck browser  ## ruff, mypy, the whole pytest suite (incl. package + cfn-lint and the browser tests), the bench smoke run
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory bench-smoke

bench: install  ## scenarios on moto, the Kit launch burst, cold import, bundle sizes -> bench/results/latest.json + latest.md
	$(PY) -m bench

bench-smoke: install  ## the bench's scenarios once, into a temp dir (proves the harness still runs)
	$(PY) -m bench --smoke > /dev/null

package: install  ## chalice package + merge template + cfn-lint + zip size check, into out/
	$(PY) scripts/package.py --stage $(STAGE) --out out

schema: install  ## regenerate schema/memberflow.schema.json from the config models
	$(PY) -m chalicelib.cli config schema --output schema/memberflow.schema.json

clean:
	rm -rf out build vendor .mypy_cache .ruff_cache .pytest_cache .hypothesis
