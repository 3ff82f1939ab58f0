# BlockZoo developer commands. `make run` and `make test` set everything up on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
FASHION = /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: run test install datasets browser lint clean

install: $(VENV)/.installed

# Re-install when the dependency list changes. torch/torchvision are pinned (2.14.1/0.29.1).
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

# Fashion-MNIST comes from Debian's dataset-fashion-mnist; best effort, tests skip what is absent.
datasets:
	@if [ ! -f $(FASHION) ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -q && apt-get install -y -q dataset-fashion-mnist) >/dev/null 2>&1 \
		|| echo "warning: could not install dataset-fashion-mnist; its tests will be skipped"; \
	fi

# Headless Chromium for the dashboard's browser tests, from Debian's packages (Playwright never
# downloads a browser here); best effort, those tests skip when it is absent.
browser:
	@if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null 2>&1 \
		|| echo "warning: could not install chromium; the browser tests will be skipped"; \
	fi

# One torch/OpenMP thread per process: tests start servers and workers beside pytest.
test: install datasets browser
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q --durations=15

run: install datasets
	$(BIN)/blockzoo serve

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
