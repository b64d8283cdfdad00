# taskservice: `make run` starts the server, `make test` runs the tests. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO := protos/taskservice/v1/task_service.proto
GENERATED := taskservice/v1/task_service_pb2.py taskservice/v1/task_service_pb2.pyi \
             taskservice/v1/task_service_pb2_grpc.py taskservice/v1/task_service_pb2_grpc.pyi

.PHONY: run test test-node lint proto proto-check unasync unasync-check buf-lint buf-breaking typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/taskservice serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	    $(MAKE) --no-print-directory test-node; \
	else echo "node/npm not found: skipping the Node client tests (clients/node)"; fi

# The Node client against real servers; npm ci installs exactly what package-lock.json pins.
test-node: $(STAMP)
	cd clients/node && npm ci --no-audit --no-fund --loglevel=error && npm test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Generated code is committed; CI runs proto-check to fail when it is stale.
proto: $(GENERATED)

$(GENERATED) &: $(PROTO) | $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I protos \
	    --python_out=. --grpc_python_out=. \
	    --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --mypy_out=. \
	    --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=. \
	    $(PROTO)
	touch $(GENERATED)

proto-check: $(STAMP)
	rm -f $(GENERATED)
	$(MAKE) proto
	git diff --exit-code -- taskservice/v1 || \
	    (echo "taskservice/v1 is stale: run 'make proto' and commit the result" >&2; exit 1)

# The sync Python client is written from the async one (taskservice/client/async_client.py); CI checks it is fresh.
unasync: $(STAMP)
	$(BIN)/python scripts/unasync.py

unasync-check: $(STAMP)
	$(BIN)/python scripts/unasync.py --check

buf-lint: $(STAMP)
	$(BIN)/buf lint

# The contract only grows: the proto must not break any version committed before.
buf-breaking: $(STAMP)
	scripts/buf-breaking.sh

typecheck: $(STAMP)
	scripts/typecheck.sh

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info
