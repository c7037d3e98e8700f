# The three commands of the README. Everything runs from the virtualenv in .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint typecheck pytest

# System packages the run command and the tests use, installed when this user can
# (root with apt-get); otherwise setup says what is missing.
SYSTEM_PACKAGES := prometheus prometheus-alertmanager

setup:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "note: install the Debian packages$$missing for live metrics and alert tests"; fi; \
	fi
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/python manage.py migrate --verbosity 0
	@echo "setup done: now run 'make run'"

run:
	$(BIN)/python manage.py runcontrolplane

lint:
	$(BIN)/ruff check apps controlplane celery_worker tests bench manage.py

typecheck:
	$(BIN)/mypy apps controlplane celery_worker

# PYTEST_ARGS adds pytest options (e.g. a path, -k, --database-tests-only).
# pytest exits 5 when it collects nothing: a broken collection or a wrong path, so a failure.
pytest:
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; fi; exit $$rc

test: lint typecheck pytest
