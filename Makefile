# Set-up is part of every target: a fresh machine needs only `make study` or `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1
export WANDB_MODE ?= offline

.PHONY: setup study test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then \
		echo "installing Debian's dataset-fashion-mnist"; \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
			|| echo "dataset-fashion-mnist not installed: Fashion-MNIST will be downloaded by torchvision"; \
	fi
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

study: $(STAMP)
	$(VENV)/bin/transferability-study --config experiments/configs/studies/fmnist_default.yaml

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) runs studies wandb
