# Set-up is part of every target: a fresh machine needs only `make study` or `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1
export WANDB_MODE ?= offline

.PHONY: setup study test lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then \
		echo "installing Debian's dataset-fashion-mnist"; \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
			|| echo "dataset-fashion-mnist not installed: Fashion-MNIST will be downloaded by torchvision"; \
	fi
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

study: $(STAMP)
	$(VENV)/bin/transferability-study --config experiments/configs/studies/fmnist_default.yaml

test: $(STAMP)
	$(PY) -m pytest -q tests

# After changing pyproject.toml's dependencies: `make lock` installs what the venv lacks, unpinned, and
# rewrites constraints.txt from the venv; run `make test` before committing the new pins.
lock:
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,cluster]'
	(echo "# The tested versions of every dependency (\`make lock\` rewrote it); \`make setup\` installs with"; \
	 echo "# pip install -c constraints.txt, so a fresh machine gets the same environment."; \
	 $(PY) -m pip freeze --exclude-editable) > constraints.txt
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs studies wandb
