# `make run` and `make test` each set up everything they need on a fresh machine:
# a virtual environment with the package, and (built once into .tools/) FerretDB and MinIO.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test fsck tools schema web-assets clean

# Reinstalled when pyproject.toml changes.
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(INSTALLED)
	$(PY) -m scripts.run_service

# What crashes left between the database and the storage (FSCK_ARGS=--repair to fix it).
fsck: $(INSTALLED)
	$(PY) -m app.fsck $(FSCK_ARGS)

# Servers given in the environment (MONGODB_CONNECTION_STRING, S3_ENDPOINT) need no build.
test: $(INSTALLED)
	@if [ -z "$$MONGODB_CONNECTION_STRING" ]; then $(PY) -m scripts.servers build ferretdb; fi
	@if [ -z "$$S3_ENDPOINT" ]; then $(PY) -m scripts.servers build minio; fi
	@bash scripts/ensure_chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

# The checked-in GraphQL schema, regenerated from the code (never edited by hand).
schema: $(INSTALLED)
	$(VENV)/bin/strawberry export-schema app.graphql.schema:schema --output schema.graphql

# The files GraphiQL, /docs and /redoc load, in app/static/, fetched again from the npm
# registry: needed only when a Strawberry upgrade changes the versions its GraphiQL page loads,
# or a version pinned in app/rest/docs.py changes.
web-assets: $(INSTALLED)
	$(PY) -m scripts.web_assets

tools: $(INSTALLED)
	$(PY) -m scripts.servers build all

clean:
	rm -rf $(VENV) .tools .pytest_cache
