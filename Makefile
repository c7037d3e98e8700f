# The three commands of the README. Everything runs from the virtualenv in .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint typecheck pytest

setup:
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

# pytest exits 5 when it collects nothing; that is reported, not hidden, but is not a crash.
pytest:
	$(BIN)/python -m pytest -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

test: lint typecheck pytest
