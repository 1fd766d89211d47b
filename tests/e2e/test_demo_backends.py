"""The demo's back offices as real processes: DemoEnvironment starts them, they answer, stop() ends them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import screenpop.demo
from screenpop.config import load_config
from screenpop.demo import DemoEnvironment, data, demo_numbers

pytestmark = pytest.mark.e2e

PROJECT_ROOT = Path(screenpop.demo.__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def env() -> Iterator[DemoEnvironment]:
    """One running demo environment (realistic latency) shared by the read-only tests of this module."""
    with DemoEnvironment() as running:
        yield running


@pytest.fixture(scope="module")
def known_id(env: DemoEnvironment) -> str:
    """The id of the customer at the known demo number, read from sales.db like screenpop would."""
    import sqlite3

    con = sqlite3.connect(env.db_path)
    try:
        rows = con.execute(screenpop.demo.CUSTOMERS_QUERY, {"phone": demo_numbers()["known"]}).fetchall()
    finally:
        con.close()
    assert len(rows) == 1
    return rows[0][0]


def _client() -> httpx.Client:
    return httpx.Client(timeout=5.0, trust_env=False)


def _wait_health(url: str, proc: subprocess.Popen[bytes], limit_s: float = 15.0) -> None:
    deadline = time.monotonic() + limit_s
    with _client() as client:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the backend exited early"
            try:
                if client.get(f"{url}/health").json() == {"ok": True}:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    pytest.fail(f"{url} did not answer within {limit_s} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend(kind: str, port: int, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    with out.open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "screenpop.demo.backends", kind, "--port", str(port),
                                 "--latency-scale", "0", *extra], stdout=log, stderr=subprocess.STDOUT, env=env)


def test_balance_and_terms_of_the_known_customer(env: DemoEnvironment, known_id: str) -> None:
    """Accounting and credit answer for the +14155550100 customer with the facts of the sample data."""
    with _client() as client:
        balance = client.get(f"{env.accounting_url}/api/balance/{known_id}")
        terms = client.get(f"{env.credit_url}/api/terms/{known_id}")
    assert balance.status_code == 200 and balance.json() == data.accounting_facts(known_id)
    assert terms.status_code == 200 and terms.json() == data.credit_facts(known_id)
    assert balance.json()["currency"] == "USD" and terms.json()["hold"] is False


def test_unknown_customer_id_is_404(env: DemoEnvironment) -> None:
    """Both backends answer 404 {"error": "no such customer"} for an id they do not know."""
    with _client() as client:
        for url in (f"{env.accounting_url}/api/balance/C0000", f"{env.credit_url}/api/terms/C0000"):
            r = client.get(url)
            assert (r.status_code, r.json()) == (404, {"error": "no such customer"})


def test_config_yaml_loads_and_names_the_four_connectors(env: DemoEnvironment) -> None:
    """The written config.yaml is valid for screenpop.config and points at sales.db and the servers (the CRM
    takes the wrap-ups)."""
    config = load_config(env.config_path)
    conns = {c.name: c for c in config.connectors}
    assert list(conns) == ["customers", "balance", "purchases", "credit", "offers", "crm-journal"]
    assert conns["crm-journal"].role == "journal" and conns["crm-journal"].options["url"] == f"{env.crm_url}/api/calls"
    assert conns["customers"].options["url"] == f"sqlite:///{env.db_path.resolve()}"
    assert conns["balance"].options["url"] == f"{env.accounting_url}/api/balance/{{customer_id}}"
    assert conns["credit"].options["url"] == f"{env.credit_url}/api/terms/{{customer_id}}"
    assert [a.id for a in config.agents] == ["alice", "bob", "admin"]


def test_stop_ends_the_processes_and_removes_the_temp_dir() -> None:
    """stop() ends both backends cleanly (exit code 0 on SIGTERM) and deletes the temporary workdir."""
    demo = DemoEnvironment(latency_scale=0).start()
    workdir, procs = demo.workdir, dict(demo.processes)
    assert workdir.is_dir() and (workdir / "config.yaml").is_file() and set(procs) == {"accounting", "credit", "crm"}
    demo.stop()
    demo.stop()  # a second stop does nothing
    assert {kind: p.returncode for kind, p in procs.items()} == {"accounting": 0, "credit": 0, "crm": 0}
    for p in procs.values():
        with pytest.raises(ProcessLookupError):
            os.kill(p.pid, 0)
    assert not workdir.exists()
    with pytest.raises(RuntimeError):
        _ = demo.accounting_url


def test_a_given_workdir_is_kept(tmp_path: Path) -> None:
    """A workdir passed in is created and filled, and left in place by stop()."""
    with DemoEnvironment(tmp_path / "demo", latency_scale=0) as demo:
        assert demo.db_path == tmp_path / "demo" / "sales.db" and demo.db_path.is_file()
    assert (tmp_path / "demo" / "config.yaml").is_file()


def test_a_backend_that_cannot_start_raises_with_its_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """When a backend dies at start, start() raises RuntimeError with its stderr and cleans up."""
    created: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(**kwargs: str) -> str:
        created.append(real_mkdtemp(**kwargs))
        return created[-1]

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setattr(screenpop.demo, "_free_port", lambda: busy.getsockname()[1])
        monkeypatch.setattr(screenpop.demo.tempfile, "mkdtemp", mkdtemp)
        demo = DemoEnvironment(latency_scale=0)
        with pytest.raises(RuntimeError, match="exited with code 1.*cannot listen"):
            demo.start()
    assert all(p.returncode is not None for p in demo.processes.values())
    assert len(created) == 1 and not Path(created[0]).exists()


def test_backend_prints_its_address_and_stops_on_sigint(tmp_path: Path) -> None:
    """Run directly, a backend prints where it listens and exits with code 0 on SIGINT."""
    port = _free_port()
    proc = _backend("credit", port, tmp_path / "out.log")
    try:
        _wait_health(f"http://127.0.0.1:{port}", proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert (tmp_path / "out.log").read_text().splitlines()[0] == f"credit listening on http://127.0.0.1:{port}"


def test_backend_stops_when_its_parent_is_gone(tmp_path: Path) -> None:
    """A backend told to watch a process that is not its parent stops by itself, cleanly."""
    proc = _backend("accounting", _free_port(), tmp_path / "out.log", "--parent-pid", str(os.getpid() + 999_999))
    try:
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert "accounting listening on" in (tmp_path / "out.log").read_text()
