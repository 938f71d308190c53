# HealthCRM: `make run` serves the demo clinic, `make test` runs the whole suite. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)
export FLASK_APP := wsgi

.PHONY: install run test test-time-travel lint worker migrate demo clean
# Two test processes (pytest-xdist): each has its own app, database, outbox, queue and ports (tests/conftest.py);
# worksteal: a process that runs out of tests takes half of the other's, so one long browser test does not
# leave a core idle at the end.
TEST_PROCESSES ?= 2

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/flask db upgrade
	$(BIN)/flask icd10 load

demo: migrate
	$(BIN)/flask demo $(if $(DEMO_PASSWORD),--password "$(DEMO_PASSWORD)")

run: demo
	$(BIN)/flask periodic run sharing.sweep
	$(BIN)/flask run --host 127.0.0.1 --port 5000

worker: install
	$(BIN)/python worker.py

# The same checks as .pre-commit-config.yaml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/codespell healthcrm tests README.md

test: lint
	@if [ -x /usr/bin/chromium ] || [ -x /usr/lib/chromium/chromium ]; then \
		echo "Chromium found: browser tests will run."; \
	else \
		echo "NOTE: Chromium is not installed, so the browser tests will be SKIPPED (apt-get install -y chromium)."; \
	fi
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist worksteal $(PYTEST_ARGS)

# The whole suite at dates and times that break date arithmetic (tests/time_travel.sh says which and why).
test-time-travel: install
	tests/time_travel.sh $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
