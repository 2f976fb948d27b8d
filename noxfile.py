"""Developer sessions. ``nox`` alone runs tests, lint and typecheck."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
# ASYNC910/911 (a checkpoint on every path), which ruff does not implement; keep in step
# with the dev extra in pyproject.toml.
FLAKE8_ASYNC = "flake8-async[flake8]>=26.8,<27"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite, with the default (fast) hypothesis profile."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def thorough(session: nox.Session) -> None:
    """The test suite with many more hypothesis examples (minutes, not seconds)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs, env={"HYPOTHESIS_PROFILE": "thorough"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check, then flake8-async's checkpoint rules (config: .flake8)."""
    session.install("ruff>=0.6", FLAKE8_ASYNC)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("flake8")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy in strict mode over the package and the tests; pyright over the package."""
    session.install("-e", ".[test]", "mypy>=1.11", "nox>=2024.4")
    session.run("mypy")
    session.run("python", "-m", "pyright", "-p", "pyproject.toml")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site, into docs/_build/html: offline, every warning an error.

    Nitpicky (docs/conf.py): a reference that does not resolve is a warning. The intersphinx
    inventories are files in docs/_inv/, so the build needs no network.
    """
    session.install("-e", ".", "-r", "docs/requirements.txt")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-n",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks, side by side with the official client (not part of the tests).

    ``nox -s bench`` runs them all (~30 min, the soak included); ``nox -s bench -- --quick``
    is the smoke run. Other arguments go to bench/bench_calls.py (see bench/README.md).
    """
    session.install("-e", ".[test]", "matplotlib")  # the chart; not a runtime dependency
    quick = ["--quick"] if "--quick" in session.posargs else []
    session.run("python", "bench/bench_buffer.py", *quick)
    session.run("python", "bench/bench_calls.py", *session.posargs)
    if not quick:  # the README shows the committed results' tables
        session.run("python", "bench/readme_figures.py")
    soak = ["--calls", "20", "--concurrency", "5", "--seconds", "0.5", "--time-scale", "5"]
    session.run("python", "bench/soak.py", *(soak if quick else []))
    if quick:  # its full run (2,000 tries, minutes) is run on its own: see bench/README.md
        session.run("python", "bench/cancel_anywhere.py", "--quick")
