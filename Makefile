# The course's single entry point. `make lab` opens the course, `make test` runs every test,
# `make student-lab` opens the student edition. All create and reuse a local environment in .venv
# (Python >= 3.11).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INSTRUCTOR_STAMP := $(VENV)/.installed-instructor
TORCH_PIN := $(shell grep -E '^torch==' constraints.txt)
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
PYTEST_ARGS ?=
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

# make test-portable: MKL and ATen choose kernels by the CPU's instruction set at run time, so the last bits
# of float results differ between machines. On x86 these variables make this machine compute like others:
# AVX2 only, then SSE4.2 with MKL's reproducible mode and ATen's scalar kernels. Elsewhere (ARM) the MKL
# variables do nothing (no MKL) and ATEN_CPU_CAPABILITY=default, valid on every build, selects the scalar
# kernels; "avx2" is left out there, because torch would warn about it into the notebooks' outputs.
ifneq ($(filter x86_64 amd64 AMD64,$(shell uname -m)),)
PORTABLE_CPUS := "MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2" \
	"MKL_ENABLE_INSTRUCTIONS=SSE4_2 ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE"
else
PORTABLE_CPUS := "ATEN_CPU_CAPABILITY=default"
endif

.PHONY: setup setup-instructor lab test test-portable test-slow student student-lab bundle interview quiz notebooks benchmark lock clean

setup: $(STAMP)

# CPU-only machines must not pull a multi-GB CUDA build of torch: with no NVIDIA driver, torch comes
# from pip's own configuration (a local CPU wheel, where the machine has one) or PyTorch's CPU index;
# on Linux, where PyPI's torch is the CUDA build, the set-up stops when neither is available.
# Elsewhere (macOS, Windows) PyPI's torch is the CPU build.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 || $(BIN)/python -m pip install --dry-run --no-deps -q "$(TORCH_PIN)+cpu" >/dev/null 2>&1; then \
		$(BIN)/python -m pip install -q "$(TORCH_PIN)"; \
	elif curl -fsS --max-time 5 $(TORCH_CPU_INDEX)/ >/dev/null 2>&1; then \
		$(BIN)/python -m pip install -q "$(TORCH_PIN)" --extra-index-url $(TORCH_CPU_INDEX); \
	elif [ "$$(uname -s)" = Linux ]; then \
		echo "No CPU wheel of $(TORCH_PIN) is configured and $(TORCH_CPU_INDEX) cannot be reached:" \
		     "stopping rather than installing the multi-GB CUDA build from PyPI. Retry online." >&2; \
		exit 1; \
	else \
		$(BIN)/python -m pip install -q "$(TORCH_PIN)"; \
	fi
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# nbgrader, for instructors who generate and autograde the exercises (and for CI, which tests that).
setup-instructor: $(INSTRUCTOR_STAMP)

$(INSTRUCTOR_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,instructor]"
	@touch $(INSTRUCTOR_STAMP)

lab: setup
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb

test: setup
	$(BIN)/ruff check course_lib tests scripts
	COURSE_TORCH_THREADS=1 COURSE_CHECKS=raise $(BIN)/python -m pytest -n 2 --dist loadfile tests notebooks $(NBVAL) $(PYTEST_ARGS)

# Strict nbval again on every notebook, as if on other CPUs and with two torch threads: the committed
# outputs must not change.
test-portable: setup
	@for cpu in $(PORTABLE_CPUS); do \
		echo "strict nbval with $$cpu COURSE_TORCH_THREADS=2"; \
		env $$cpu COURSE_TORCH_THREADS=2 COURSE_CHECKS=raise $(BIN)/python -m pytest -n 2 --dist loadfile notebooks $(NBVAL) \
			$(PYTEST_ARGS) || exit 1; \
	done

test-slow: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile -m slow tests

# The student edition in student/: a notebook you changed there is kept, never overwritten.
student: setup
	$(BIN)/python -m course_lib.tooling.student_edition student

student-lab: student
	$(BIN)/jupyter lab student/00_start_here.ipynb

# A zip for a workshop: the student edition, the library as a wheel, the data, a README.
bundle: setup
	$(BIN)/python -m course_lib.tooling.bundle dist

# Interview preparation, built from the lessons' tagged cells into build/interview (not committed): an Anki
# deck, a cheat sheet (Markdown and HTML) and the cards as JSON. `make quiz` asks them one at a time; pass
# options with QUIZ, e.g. make quiz QUIZ="--mock --order random --parts 1".
interview: setup
	$(BIN)/python -m course_lib.tooling.interview build build/interview

quiz: setup
	$(BIN)/python -m course_lib.tooling.interview quiz $(QUIZ)

notebooks: setup
	$(BIN)/python scripts/run_notebooks.py --write $(NB)

benchmark: setup
	$(BIN)/python scripts/run_notebooks.py --repeat 3

lock: setup
	{ echo "# Exact versions the committed notebook outputs were made with (make lock writes this)."; \
	  $(BIN)/python -m pip freeze --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/'; } > constraints.txt

# Never student/: it holds the learners' work.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist
