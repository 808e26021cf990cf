# The two commands the README starts with:
#   make run   installs the app and starts it on the embedded default (Milvus Lite, packaged models)
#   make test  installs the app with its test tools and runs the default test suite
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install install-test install-bench browser ocr postgres run test test-unit test-slow lint bench-small bench-1m

install:
	$(PIP) install -e .

install-test:
	$(PIP) install -e ".[test]"

install-bench:
	$(PIP) install -e ".[test,bench]"

# Headless Chromium from Debian for the browser tests (Playwright drives it; no browser download),
# and a CJK font so Chinese renders in the screenshots.
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi wqy; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null; \
	fi

# Tesseract from Debian for scanned PDFs and images (Chinese simplified/traditional and English).
# Without it (no apt, no root) the app still runs; such files are refused with the reason.
ocr:
	@if ! command -v tesseract >/dev/null 2>&1 || ! tesseract --list-langs 2>/dev/null | grep -q chi_tra; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr \
			tesseract-ocr-eng tesseract-ocr-chi-sim tesseract-ocr-chi-tra >/dev/null) \
		|| echo "warning: could not install tesseract-ocr; scanned PDFs and images will be refused"; \
	fi

# PostgreSQL from Debian: the test suite starts its own throwaway server (tests/support/postgres.py)
# to test the server shape's state database. Never started as a service here.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
		|| echo "warning: could not install postgresql; the PostgreSQL tests will be skipped"; \
	fi

run: install ocr
	rag-ingest samples
	rag-app

test: install-test browser ocr postgres
	$(PYTHON) -m pytest

# The fast unit layer alone (in-memory fakes, no model, no Milvus): well under a minute.
test-unit: install-test
	$(PYTHON) -m pytest -m "not integration and not slow"

# Style and types: ruff (pyflakes, pycodestyle, isort, bugbear, pyupgrade) and mypy (strict for rag_app.service).
lint: install-test
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy

# Heavy tests: the real packaged LLM, full benchmarks.
test-slow: install-test browser ocr postgres
	$(PYTHON) -m pytest -m slow

# Benchmarks (BENCHMARKS.md): every measurement at its small point; the 1M points (~30 minutes).
bench-small: install-bench
	$(PYTHON) benchmarks/run.py small

bench-1m: install-bench
	$(PYTHON) benchmarks/run.py 1m
