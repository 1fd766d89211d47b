"""The demo: three sample back-office systems and a config.yaml that wires screenpop to them.

    sales       a SQLite file (sales.db) read by the `sql` connector: customers and their purchases
    accounting  an HTTP server (subprocess): balances           GET /api/balance/{customer_id}
    credit      an HTTP server (subprocess): credit terms       GET /api/terms/{customer_id}
    crm         an HTTP server (subprocess): takes wrap-ups     POST /api/calls (can be made to fail:
                POST /admin/down {"down": true}); the `journal` connector writes there, "Open in CRM" links
                point there

    with DemoEnvironment() as env:      # builds sales.db, starts both servers, writes config.yaml
        serve(config=env.config_path)   # agents alice, bob (agents) and admin log in with DEMO_PASSWORD

`demo_numbers()` names the numbers to call: one known customer, an unknown caller, and a number that
two customers share.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import yaml

from screenpop.demo.data import ANCHOR, KNOWN_NUMBER, SEVERAL_NUMBER, UNKNOWN_NUMBER

DEMO_PASSWORD = "demo"
DEMO_WEBHOOK_SECRET = "demo-secret"
DEMO_AGENTS: dict[str, dict[str, Any]] = {
    "alice": {"name": "Alice Martin", "extensions": ["1001"], "addresses": ["client:alice"], "role": "agent"},
    "bob": {"name": "Bob Chen", "extensions": ["1002"], "addresses": ["client:bob"], "role": "agent"},
    "admin": {"name": "Ada Admin", "extensions": [], "addresses": [], "role": "admin"},
}
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
_BACKENDS = ("accounting", "credit", "crm")
_PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent

CUSTOMERS_QUERY = "SELECT id, name, company, phone, email, city FROM customers WHERE phone = :phone ORDER BY id"
PURCHASES_QUERY = (
    "SELECT date(o.ordered_at) AS date, p.name AS product, l.qty AS qty,"
    " round(l.qty * l.unit_price, 2) AS total, o.currency AS currency"
    " FROM orders o JOIN order_lines l ON l.order_id = o.id JOIN products p ON p.sku = l.sku"
    " WHERE o.customer_id = :customer_id"
    " ORDER BY o.ordered_at DESC, o.id DESC, p.name LIMIT 5"
)


def demo_numbers() -> dict[str, str]:
    """The numbers to call in the demo: a known customer, an unknown caller, several matches."""
    return {"known": KNOWN_NUMBER, "unknown": UNKNOWN_NUMBER, "several": SEVERAL_NUMBER}


# Every order line of every customer: the offers engine learns what each customer reorders and when, and
# what is bought together; the catalog says what is in stock, at what price, and what is bought once.
OFFERS_QUERY = (
    "SELECT o.customer_id AS customer_id, o.id AS order_id, o.ordered_at AS ordered_at, l.sku AS sku, "
    "p.name AS name FROM order_lines l JOIN orders o ON o.id = l.order_id JOIN products p ON p.sku = l.sku"
)
OFFERS_CATALOG_QUERY = "SELECT sku, price, 'USD' AS currency, in_stock, durable FROM products"


SEARCH_QUERY = ("SELECT id, name, company, phone, email, city FROM customers WHERE name LIKE :like"
                " OR company LIKE :like OR email LIKE :like OR replace(phone, '+', '') LIKE :digits ORDER BY name")
PURCHASES_ORDER = "o.id AS order_id"


def demo_config(db_path: Path, accounting_url: str, credit_url: str,
                password_hash: str | None = None, crm_url: str | None = None) -> dict[str, Any]:
    """The configuration (as data for config.yaml) that wires screenpop to the three demo systems.

    Every agent's password is DEMO_PASSWORD, hashed with argon2 (or `password_hash` when given).
    """
    from argon2 import PasswordHasher

    hasher = PasswordHasher()
    db_url = f"sqlite:///{Path(db_path).resolve()}"
    config = {
        "agents": [
            {"id": agent_id, "name": agent["name"], "password_hash": password_hash or hasher.hash(DEMO_PASSWORD),
             "extensions": list(agent["extensions"]), "addresses": list(agent["addresses"]), "role": agent["role"]}
            for agent_id, agent in DEMO_AGENTS.items()
        ],
        "connectors": [
            {"name": "customers", "kind": "sql", "role": "identity", "timeout_ms": 800,
             "cache": {"ttl_s": 600, "negative_ttl_s": 60},
             "options": {"url": db_url, "query": CUSTOMERS_QUERY}},
            {"name": "balance", "kind": "http", "role": "section", "title": "Balance", "timeout_ms": 800,
             "options": {"url": f"{accounting_url}/api/balance/{{customer_id}}",
                         "fields": {k: k for k in ("balance", "currency", "overdue", "last_payment")}},
             "view": {"kind": "fields", "columns": [{"key": "balance", "format": "money"},
                                                    {"key": "overdue", "format": "money"},
                                                    {"key": "last_payment", "format": "date"}]}},
            {"name": "purchases", "kind": "sql", "role": "section", "title": "Recent purchases", "timeout_ms": 800,
             "options": {"url": db_url, "query": PURCHASES_QUERY},
             "view": {"kind": "table", "columns": [{"key": "date", "format": "date"}, "product",
                                                   {"key": "qty", "label": "Qty", "format": "number"},
                                                   {"key": "total", "format": "money"}]}},
            {"name": "credit", "kind": "http", "role": "section", "title": "Credit terms", "timeout_ms": 800,
             "cache": {"ttl_s": 600, "stale_s": 3600, "stale_if_error_s": 86400}, "retries": 1,
             "options": {"url": f"{credit_url}/api/terms/{{customer_id}}",
                         "fields": {k: k for k in ("terms", "limit", "available", "currency", "hold",
                                                   "hold_reason")}},
             "view": {"kind": "fields", "columns": ["terms", {"key": "limit", "format": "money"},
                                                    {"key": "available", "format": "money"},
                                                    {"key": "hold", "format": "yesno"}, "hold_reason"]}},
            {"name": "offers", "kind": "offers", "role": "section", "title": "Suggested offers", "timeout_ms": 300,
             "options": {"url": db_url, "query": OFFERS_QUERY, "catalog_query": OFFERS_CATALOG_QUERY,
                         "today": ANCHOR.isoformat()}},
        ],
        "lookup": {"deadline_ms": 1500},
        "telephony": {"twilio": {"default_agents": ["alice", "bob"]}},
        "wrapup": {"dispositions": ["resolved", "callback", "sale", "complaint"], "history": 5,
                   "retry_base_s": 2, "retry_max_s": 30},
    }
    if crm_url:
        _with_crm(config, crm_url)
    return config


def _with_crm(config: dict[str, Any], crm_url: str) -> None:
    """The CRM's parts of the demo config: the journal, links to its pages, the new-customer link."""
    connectors = config["connectors"]
    identity = connectors[0]
    identity["options"]["search_query"] = SEARCH_QUERY
    identity["links"] = [{"label": "Open in CRM", "url": f"{crm_url}/customers/{{customer_id}}"}]
    purchases = next(c for c in connectors if c["name"] == "purchases")
    purchases["options"]["query"] = purchases["options"]["query"].replace(
        "SELECT date(o.ordered_at) AS date,", f"SELECT {PURCHASES_ORDER}, date(o.ordered_at) AS date,")
    purchases["row_links"] = {"product": f"{crm_url}/orders/{{order_id}}"}
    connectors.append({"name": "crm-journal", "kind": "http", "role": "journal", "timeout_ms": 3000,
                       "options": {"url": f"{crm_url}/api/calls",
                                   "body": {"customer_id": "{customer_id}", "customer": "{customer_name}",
                                            "phone": "{phone}", "agent": "{agent_name}",
                                            "disposition": "{disposition}", "notes": "{notes}",
                                            "follow_up": "{follow_up}", "saved_at": "{saved_at}",
                                            "call_id": "{call_id}"}}})
    config["console"] = {"new_customer_url": f"{crm_url}/customers/new?phone={{phone}}",
                         "translations": DEMO_TRANSLATIONS}


# The demo's own words (its section titles and column labels) in the console's other languages; screenpop's
# built-in words (Customer, History, the dispositions ...) are in web/i18n/<lang>.json.
DEMO_TRANSLATIONS: dict[str, dict[str, str]] = {
    "sv": {"Balance": "Saldo", "Recent purchases": "Senaste köp", "Credit terms": "Kreditvillkor",
           "Suggested offers": "Föreslagna erbjudanden", "Product": "Produkt", "Qty": "Antal", "Total": "Summa",
           "Overdue": "Förfallet", "Last payment": "Senaste betalning", "Terms": "Villkor", "Limit": "Gräns",
           "Available": "Tillgängligt", "Hold": "Spärr", "Hold reason": "Spärrorsak"},
    "fi": {"Balance": "Saldo", "Recent purchases": "Viimeisimmät ostot", "Credit terms": "Luottoehdot",
           "Suggested offers": "Ehdotetut tarjoukset", "Product": "Tuote", "Qty": "Määrä", "Total": "Yhteensä",
           "Overdue": "Erääntynyt", "Last payment": "Viimeisin maksu", "Terms": "Ehdot", "Limit": "Raja",
           "Available": "Käytettävissä", "Hold": "Esto", "Hold reason": "Eston syy"},
    "el": {"Balance": "Υπόλοιπο", "Recent purchases": "Πρόσφατες αγορές", "Credit terms": "Όροι πίστωσης",
           "Suggested offers": "Προτεινόμενες προσφορές", "Product": "Προϊόν", "Qty": "Ποσότητα",
           "Total": "Σύνολο", "Overdue": "Ληξιπρόθεσμο", "Last payment": "Τελευταία πληρωμή", "Terms": "Όροι",
           "Limit": "Όριο", "Available": "Διαθέσιμο", "Hold": "Δέσμευση", "Hold reason": "Αιτία δέσμευσης"},
    "tl": {"Balance": "Balanse", "Recent purchases": "Mga kamakailang binili",
           "Credit terms": "Mga tuntunin sa kredito",
           "Suggested offers": "Mga mungkahing alok", "Product": "Produkto", "Qty": "Dami", "Total": "Kabuuan",
           "Overdue": "Lampas sa takdang petsa", "Last payment": "Huling bayad", "Terms": "Mga tuntunin",
           "Limit": "Limitasyon", "Available": "Magagamit", "Hold": "Hold", "Hold reason": "Dahilan ng hold"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DemoEnvironment:
    """The demo's back offices on this machine: sales.db, two backend processes and config.yaml.

    `start()` builds everything and returns when both servers answer; `stop()` ends the processes and
    removes the working directory if it was a temporary one. Use it as a context manager.
    """

    def __init__(self, workdir: Path | None = None, latency_scale: float = 1.0) -> None:
        self._requested = Path(workdir) if workdir is not None else None
        self._workdir: Path | None = self._requested
        self._temporary = False
        self.latency_scale = latency_scale
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._urls: dict[str, str] = {}

    # -- paths and addresses ------------------------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("the demo environment is not started (no working directory yet)")
        return self._workdir

    @property
    def db_path(self) -> Path:
        return self.workdir / "sales.db"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"

    def _url(self, kind: str) -> str:
        if kind not in self._urls:
            raise RuntimeError(f"the {kind} backend is not running; call start() first")
        return self._urls[kind]

    @property
    def accounting_url(self) -> str:
        return self._url("accounting")

    @property
    def credit_url(self) -> str:
        return self._url("credit")

    @property
    def crm_url(self) -> str:
        return self._url("crm")

    @property
    def state_url(self) -> str:
        """screenpop's state store for the demo (its journal holds the past calls)."""
        return f"sqlite:///{self.workdir / 'state.db'}"

    # -- life cycle ---------------------------------------------------------------------------------------
    def start(self) -> DemoEnvironment:
        """Build sales.db, start both backends, wait (at most 15 s) until they answer, write config.yaml."""
        if any(proc.poll() is None for proc in self.processes.values()):
            raise RuntimeError("the demo environment is already started")
        self.processes = {}
        from screenpop.demo.data import build_sales_db

        try:
            if self._requested is None:
                self._workdir, self._temporary = Path(tempfile.mkdtemp(prefix="screenpop-demo-")), True
            else:
                self.workdir.mkdir(parents=True, exist_ok=True)
            build_sales_db(self.db_path)
            for kind in _BACKENDS:
                self._spawn(kind)
            self._wait_healthy(time.monotonic() + START_TIMEOUT_S)
            config = demo_config(self.db_path, self.accounting_url, self.credit_url, crm_url=self.crm_url)
            from screenpop.demo.history import seed_journal

            seed_journal(self.state_url)
            tmp = self.config_path.with_suffix(".yaml.tmp")
            tmp.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000), encoding="utf-8")
            os.replace(tmp, self.config_path)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, kind: str) -> None:
        port = _free_port()
        log = open(self.workdir / f"{kind}.log", "wb")  # closed in stop()
        self._logs[kind] = log
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (str(_PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)}
        cmd = [sys.executable, "-m", "screenpop.demo.backends", kind, "--host", "127.0.0.1", "--port", str(port),
               "--latency-scale", str(self.latency_scale), "--parent-pid", str(os.getpid())]
        self.processes[kind] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                env=env)
        self._urls[kind] = f"http://127.0.0.1:{port}"

    def _log_text(self, kind: str) -> str:
        try:
            text = (self.workdir / f"{kind}.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text[-4000:].strip()

    def _wait_healthy(self, deadline: float) -> None:
        import httpx

        waiting = set(_BACKENDS)
        with httpx.Client(timeout=0.5, trust_env=False) as client:
            while waiting:
                for kind in sorted(waiting):
                    code = self.processes[kind].poll()
                    if code is not None:
                        raise RuntimeError(f"the {kind} backend exited with code {code}: {self._log_text(kind)}")
                    try:
                        if client.get(f"{self._urls[kind]}/health").json().get("ok") is True:
                            waiting.discard(kind)
                    except (httpx.HTTPError, ValueError):
                        pass
                if waiting and time.monotonic() > deadline:
                    logs = "; ".join(f"{k}: {self._log_text(k) or '(no output)'}" for k in sorted(waiting))
                    raise RuntimeError(f"backend(s) {sorted(waiting)} did not answer within "
                                       f"{START_TIMEOUT_S:g} s: {logs}")
                if waiting:
                    time.sleep(0.05)

    def stop(self) -> None:
        """Stop both backends (SIGTERM, then SIGKILL after 5 s) and remove a temporary working directory."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        self._urls.clear()
        if self._temporary and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir, self._temporary = None, False

    def __enter__(self) -> DemoEnvironment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
