# hf-gateway developer commands. A newcomer needs two: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-tools spaces-streamlit lint format system-deps check-examples check-deploy bench bench-routing docs clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## system-deps: redis-server, chromium, nginx and caddy (installed with apt-get on Debian as root)
system-deps:
	@scripts/ensure-system-deps.sh redis-server chromium nginx caddy

## demo: fake Hugging Face, a sample upstream and the gateway; prints the URL to open.
## It needs only the runtime install: its own venv, .venv/demo, with `pip install -e .` (no
## dev tools). DEMO_PORT=8081 asks for another port (a taken one is replaced and named).
DEMO_VENV ?= $(VENV)/demo
DEMO_STAMP := $(DEMO_VENV)/.installed
DEMO_PORT ?= 8080

$(DEMO_STAMP): pyproject.toml
	@test -x $(DEMO_VENV)/bin/python || $(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEMO_VENV)/bin/python -m pip install --quiet -e .
	@touch $@

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/hf-gateway demo --port $(DEMO_PORT)

## lint: ruff (lint + format check), mypy strict on gateway/, hf_gateway/ and hf_gateway_client/, import layering, hadolint
lint: $(STAMP)
	$(VENV)/bin/ruff check gateway hf_gateway hf_gateway_client tests benchmarks
	$(VENV)/bin/ruff format --check gateway hf_gateway hf_gateway_client tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile

format: $(STAMP)
	$(VENV)/bin/ruff format gateway hf_gateway hf_gateway_client tests benchmarks
	$(VENV)/bin/ruff check --fix gateway hf_gateway hf_gateway_client tests benchmarks

## check-examples: every example config validates
check-examples: $(STAMP)
	@for f in config/*.yaml; do \
	  echo "check-config $$f"; \
	  GATEWAY_SECRET=example-secret-example-secret-example OAUTH_CLIENT_ID=example \
	  OAUTH_CLIENT_SECRET=example $(VENV)/bin/hf-gateway check-config $$f || exit 1; \
	done

## check-deploy: the image, compose and Kubernetes examples validated offline (no engine, no
## cluster; docs/deployment.md): yamllint, compose-spec schema, kubectl kustomize + Kubernetes
## schemas. tests/unit/test_deploy_artifacts.py and the compose playground test do the rest.
check-deploy: $(STAMP)
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/yamllint --strict -c examples/.yamllint.yaml examples config/image
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec examples/compose/compose.yaml
	$(VENV)/bin/kubectl kustomize examples/kubernetes > $(VENV)/kubernetes-rendered.yaml
	$(VENV)/bin/kubernetes-validate --strict --quiet $(VENV)/kubernetes-rendered.yaml \
	  examples/kubernetes/secret.example.yaml

## test: everything CI runs
test: $(STAMP) system-deps lint check-examples check-deploy
	$(PY) -m pytest

## docs: regenerate what docs derive from the code (docs/security.md's case table, docs/metrics.md's series)
docs: $(STAMP)
	$(PY) scripts/security_cases.py --write
	$(PY) scripts/metrics_reference.py --write
	$(PY) scripts/config_reference.py --write

## bench: throughput, latency, streaming and RSS against nginx and bare aiohttp.web (docs/benchmarks.md)
bench: $(STAMP)
	@scripts/ensure-system-deps.sh wrk nginx redis-server curl
	$(PY) benchmarks/throughput.py

## spaces-streamlit: examples/spaces/ with a real Streamlit in Chromium, framed, signed in from the frame (installs streamlit; not part of test)
spaces-streamlit: $(STAMP) system-deps
	$(PY) -m pip install --quiet streamlit==1.67.0
	$(PY) scripts/spaces_streamlit.py

## test-tools: tests/tools against real Gradio, Streamlit, JupyterLab, TensorBoard and MLflow
## behind the gateway (docs/tools/, docs/client.md). They are large: they go into their own
## venv, .venv/tools, never into .venv, and `make test` collects nothing in tests/tools
## (HF_GATEWAY_TOOL_TESTS unset).
TOOLS_VENV ?= $(VENV)/tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed

$(TOOLS_STAMP): pyproject.toml
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet -e '.[dev,gradio,jupyter,tools]'
	@touch $@

test-tools: $(TOOLS_STAMP)
	HF_GATEWAY_TOOL_TESTS=1 $(TOOLS_VENV)/bin/python -m pytest tests/tools

## bench-routing: route lookup with 3, 100 and 1,000 routes; fails when 1,000 cost over 2x of 3
bench-routing: $(STAMP)
	$(PY) benchmarks/routing_scale.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
