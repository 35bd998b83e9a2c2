# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,ray]'
	touch $(STAMP)

# The main job on the bundled profile tables: a short HC-MAPPO-L run, then the trained policy
# against every heuristic baseline on fresh seeds. A full run is `cli.py train` (1000 iterations).
DEMO_STAMP := $(shell date +%Y%m%d-%H%M%S)
DEMO_RUN ?= runs/demo-$(DEMO_STAMP)
demo: $(STAMP)
	$(BIN)/python cli.py train --profiles data/profiles --iterations 10 --seed 0 --out $(DEMO_RUN)
	$(BIN)/python cli.py evaluate --profiles data/profiles --checkpoint $(DEMO_RUN) --policy all --episodes 3 --seed 100

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
