# The one entry point. `make run` and `make test` each set up everything they need first.
.PHONY: help install migrate train run shell test test-fast lint format eval bench validate tickets report purge clean

RASA := .venv/bin/rasa
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONWARNINGS ?= ignore::DeprecationWarning

help:
	@echo "make run    set up, train if the data changed, start the assistant (REST + socket.io)"
	@echo "make test   set up, train if the data changed, lint, run the whole test suite"
	@echo "make test-fast  the tests that start no process and need no model (the edit loop)"
	@echo "make lint   ruff (lint, import order, docstrings, format check) and mypy; make format fixes"
	@echo "make shell  chat in this terminal (starts the action server too)"
	@echo "make train  train only if the training data, domain or config changed"
	@echo "make eval   NLU report: hold-out, subsets, cross-validation, two baselines (results/)"
	@echo "make bench  latency, throughput, memory, start-up, training: this project beside the"
	@echo "            documented Chinese pipeline (results/bench/, about 10 minutes)"
	@echo "make tickets / make report / make purge   staff: open tickets, unanswered questions"
	@echo "            and feedback, delete conversations older than RETENTION_DAYS (90)"
	@echo "Settings (environment): DATABASE_URL (default sqlite:///var/assistant.db), REDIS_URL,"
	@echo "            RETENTION_DAYS"

install:
	@scripts/setup.sh

migrate: install
	@scripts/migrate.sh

train: install
	@scripts/train.sh

run: train
	@scripts/run.sh

shell: train
	@scripts/shell.sh

tickets: migrate
	@.venv/bin/python -m staff tickets list

report: migrate
	@.venv/bin/python -m staff report

purge: migrate
	@.venv/bin/python -m staff purge

validate: install
	$(RASA) data validate --fail-on-warnings

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: install
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

# Two at a time (most of a test that starts servers is waiting for them), then the tests that
# time things under load with the machine to themselves (`alone`, pytest.ini).
test: train lint
	@scripts/browser.sh
	.venv/bin/python -m pytest -m "not alone" -n 2 --dist loadfile --no-loadscope-reorder --durations=15
	.venv/bin/python -m pytest -m alone --durations=5

# The edit loop: no training, no servers, no browser (tests/conftest.py: `processes`).
test-fast: install
	CHSI_FAST_TESTS=1 .venv/bin/python -m pytest -m "not processes" -q -n auto --dist loadfile

eval: train
	.venv/bin/python -m evaluation

bench: install
	@scripts/browser.sh
	.venv/bin/python -m bench

clean:
	rm -rf models/*.tar.gz models/.assistant.sha256 .rasa results var/*.db logs
