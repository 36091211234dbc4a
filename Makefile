# Set-up is part of every target: a fresh machine needs only `make study` or `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1
export WANDB_MODE ?= offline
# Where torch and torchvision come from. Empty: the default index (on Linux, PyPI's CUDA wheels). A CPU-only or
# another CUDA build: PyTorch's index for it, e.g. make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: setup demo study test docs lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then \
		echo "installing Debian's dataset-fashion-mnist"; \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
			|| echo "dataset-fashion-mnist not installed: Fashion-MNIST will be downloaded by torchvision"; \
	fi
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_INDEX)" ]; then set -x; \
		$(PY) -m pip install -q -c constraints.txt --extra-index-url $(TORCH_INDEX) torch torchvision; fi
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/transferability-study --config experiments/configs/studies/fmnist_demo.yaml

study: $(STAMP)
	$(VENV)/bin/transferability-study --config experiments/configs/studies/fmnist_default.yaml

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile tests  # two workers: the 2-core machine CI runs on

# The generated pages (docs/results.md, docs/transferability_prediction.md, the README's two generated blocks and
# the shipped studies' report files) from the committed tables in docs/: never edit those by hand.
docs: $(STAMP)
	$(PY) -m experiments.report.pages --figures
	$(PY) -m experiments.predict.validate --write docs/

# After changing pyproject.toml's dependencies: `make lock` installs what the venv lacks, unpinned, and
# rewrites constraints.txt with the versions of the project's requirements and what they require (no torch-build
# packages: python -m experiments.lock); run `make test` before committing the new pins.
lock:
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,cluster]'
	$(PY) -m experiments.lock
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs studies wandb
