"""The command line fails with one line and exit code 2 for any error of screenpop's tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m screenpop.cli ARGS` with these SCREENPOP_* settings; bounded."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SCREENPOP_")}
    return subprocess.run([sys.executable, "-m", "screenpop.cli", *args], capture_output=True, text=True,
                          env={**clean, "SCREENPOP_LOG_LEVEL": "ERROR", **env}, timeout=60)


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["serve"], {"SCREENPOP_PORT": "abc"}, "screenpop: error: bad setting: SCREENPOP_PORT: "),
        (["serve", "--port", "{free port}"], {"SCREENPOP_BUS_URL": "nats://x"},
         "screenpop: error: bus: unsupported bus URL"),
        (["check-config", "/nonexistent/screenpop.yaml"], {}, "screenpop: error: /nonexistent/screenpop.yaml: "),
    ],
)
def test_errors_are_one_line_and_exit_code_2(args: list[str], env: dict[str, str], line: str) -> None:
    """A bad setting, a bad bus URL, a missing config file: one line on stderr, no stack trace, exit code 2."""
    done = cli(*(str(free_port()) if a == "{free port}" else a for a in args), **env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(line) and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_bad_config_file_names_file_and_field(tmp_path: Path) -> None:
    """check-config of a file with a wrong field prints `file: field: reason` on one line."""
    path = tmp_path / "screenpop.yaml"
    path.write_text("agents: [{id: alice}]\n")
    done = cli("check-config", str(path))
    assert done.returncode == 2 and f"{path}: agents[0].password_hash: Field required" in done.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """Output into a pipe nobody reads any more (`... --json | head`): exit code 141 and no stack trace."""
    path = tmp_path / "orders.csv"
    path.write_text("customer_id,order_id,ordered_at,product_id\nA,1,2024-01-01,x\nA,2,2024-01-05,x\n")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SCREENPOP_")}
    try:
        done = subprocess.run([sys.executable, "-m", "screenpop.cli", "offers", "evaluate", str(path), "--json"],
                              stdout=write, stderr=subprocess.PIPE, text=True, env=clean, timeout=60)
    finally:
        os.close(write)
    assert done.returncode == 141 and "Traceback" not in done.stderr, done.stderr
