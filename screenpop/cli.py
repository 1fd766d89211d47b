"""The command line: `screenpop serve | demo | call | hash-password | check-config | offers evaluate`."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from screenpop import __version__
from screenpop.errors import ConfigError, ScreenpopError
from screenpop.logs import setup_logging
from screenpop.models import format_validation_error

if TYPE_CHECKING:  # imported lazily below, for a fast --help
    from screenpop.app import App
    from screenpop.settings import Settings

EVENTS = ("ring", "offered", "ringing", "answered", "ended")


def _fail(message: str, code: int = 2) -> int:
    """Print one line to stderr and return `code`."""
    print(f"screenpop: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def _settings(**overrides: Any) -> Settings:
    """The settings from SCREENPOP_* and `overrides`; ConfigError naming the variable when one is wrong."""
    from screenpop.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as err:
        raise ConfigError("bad setting: " + format_validation_error(err, where=_variable)) from None


def _variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable of a setting's path: ("bus_url",) is SCREENPOP_BUS_URL."""
    return "SCREENPOP_" + "_".join(map(str, loc)).upper()


def _port_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port. SO_REUSEADDR as uvicorn sets it: connections of an earlier
    run left in TIME_WAIT do not hold the port (a restart on the same port starts at once)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


async def _check_bus(app: App) -> None:
    """Open the bus and the state store once before serving, so a wrong or unreachable one is one clear line."""
    services = app.state.services
    await services.bus.connect()
    await services.bus.disconnect()
    await services.store.start()
    await services.store.close()


def _run(settings: Settings) -> None:
    import asyncio

    import uvicorn

    from screenpop.app import create_app
    from screenpop.gcpace import tune_for_serving
    from screenpop.serving import DrainingServer

    app = create_app(settings)
    asyncio.run(_check_bus(app))
    tune_for_serving()  # the GC policy (screenpop.gcpace): fewer, cheaper collections while serving
    app.state.services.freeze_gc = True
    config = uvicorn.Config(app, host=settings.host, port=settings.port, ws_max_size=64 * 1024,
                            log_level=settings.log_level.lower(), proxy_headers=True, log_config=None,
                            access_log=settings.log_level.upper() == "DEBUG",
                            timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_s)))
    server = DrainingServer(config, app.state.services.drain, settings.drain_s)  # SIGTERM: screenpop/serving.py
    server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's own exit code when the start failed (it logged why)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(host=args.host, port=args.port, config=args.config)
    if not _port_free(settings.host, settings.port):
        return _fail(f"port {settings.port} on {settings.host} is already in use; choose another with --port")
    _run(settings)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from screenpop.demo import DEMO_PASSWORD, DEMO_WEBHOOK_SECRET, DemoEnvironment, demo_numbers

    if not _port_free(args.host, args.port):
        return _fail(f"port {args.port} on {args.host} is already in use; try: screenpop demo --port {args.port + 1}")
    # SIGTERM as Ctrl-C: leave through the `with` below, which stops the backends and removes the temporary
    # folder (state database, config with password hashes). uvicorn re-raises a SIGTERM it handled once it has
    # shut down, with this handler back in place.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with DemoEnvironment(latency_scale=args.latency_scale) as env:
        settings = _settings(host=args.host, port=args.port, config=str(env.config_path), demo=True,
                             webhook_secret=DEMO_WEBHOOK_SECRET, session_secret=secrets.token_hex(16),
                             state_url=env.state_url,
                             twilio_auth_token="demo-twilio-token",
                             bus_url=os.environ.get("SCREENPOP_BUS_URL"))
        url = f"http://{args.host}:{args.port}"
        n = demo_numbers()
        port_arg = "" if args.port == 8000 else f" --url {url}"
        here = Path(sys.executable).parent / "screenpop"
        command = "screenpop" if shutil.which("screenpop") == str(here) or not here.exists() else str(here)
        print(f"""
  screenpop {__version__} demo  (DEMO ONLY: these logins and secrets are public, never use them in production)

    console:  {url}/      admin console: {url}/admin (log in as admin)
    logins:   alice / {DEMO_PASSWORD}  (ext. 1001)    bob / {DEMO_PASSWORD}  (ext. 1002)    admin / {DEMO_PASSWORD}
    webhook:  {url}/telephony/webhook   secret: {DEMO_WEBHOOK_SECRET}
    twilio:   voice {url}/telephony/twilio/voice   status {url}/telephony/twilio/status   token: demo-twilio-token
    backends: accounting {env.accounting_url}   credit {env.credit_url}   crm {env.crm_url}   sales {env.db_path}
    crm down: curl -X POST {env.crm_url}/admin/down -d '{{"down": true}}'   (screenpop retries the wrap-ups)

  Log in as alice, then ring her from another terminal:
    {command} call {n['known']} --agent 1001{port_arg}
  Try also {n['unknown']} (unknown caller) and {n['several']} (two customers share it).
""", flush=True)
        _run(settings)
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def cmd_call(args: argparse.Namespace) -> int:
    import httpx

    from telephony.generic import sign

    secret = args.secret or os.environ.get("SCREENPOP_WEBHOOK_SECRET") or "demo-secret"
    call_id = args.call_id or f"cli-{uuid.uuid4().hex[:12]}"
    events = ["offered", "ringing"] if args.event == "ring" else [args.event]
    url = args.url.rstrip("/") + "/telephony/webhook"
    try:
        with httpx.Client(timeout=10) as client:
            for event in events:
                body: dict[str, object] = {"call_id": call_id, "event": event, "caller": args.number}
                if args.agent and event != "offered":
                    body["agents"] = args.agent
                if args.called:
                    body["called"] = args.called
                raw = json.dumps(body).encode()
                r = client.post(url, content=raw, headers={"Content-Type": "application/json",
                                                           "X-Screenpop-Signature": sign(raw, secret)})
                agents = f" at {', '.join(args.agent)}" if args.agent and event != "offered" else ""
                print(f"{event:<9} call {call_id} from {args.number}{agents}: HTTP {r.status_code}")
                if r.status_code != 202:
                    try:
                        reason = r.json().get("error", r.text)
                    except ValueError:
                        reason = r.text[:200]
                    return _fail(f"the server refused the {event} event: {reason}", 1)
    except httpx.HTTPError as err:
        return _fail(f"cannot reach {url}: {err}. Is screenpop running (screenpop demo)?", 1)
    answer = f"answered --agent {args.agent[0]}" if args.agent else None
    step = {"ring": answer, "ringing": answer, "answered": "ended"}.get(args.event)  # the call's next event
    print(f"done. Continue this call with: screenpop call {args.number} --call-id {call_id} --event {step}"
          if step else "done.")
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    from screenpop.auth import hash_password

    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("password: ")
    if not password:
        return _fail("empty password")
    print(hash_password(password))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from screenpop.config import load_config
    from screenpop.wiring import SourceFactory, lanes_from_settings

    config = load_config(args.path)
    SourceFactory(lanes=lanes_from_settings(_settings(config=args.path))).lookup(config, args.path)
    print(f"{args.path}: ok ({len(config.agents)} agents, {len(config.connectors)} connectors)")
    return 0


class _Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done = max(total, 1), label, 0
        self.on = sys.stderr.isatty()

    def set(self, done: float, label: str | None = None) -> None:
        self.done = min(int(done), self.total)
        self.label = label or self.label
        if self.on:
            width = 30
            filled = width * self.done // self.total
            print(f"\r{self.label:<28} [{'#' * filled}{'.' * (width - filled)}] {100 * self.done // self.total:3d} %",
                  end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.on:
            print("\r" + " " * 72 + "\r", end="", file=sys.stderr, flush=True)


def cmd_offers_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from connectors.offers_data import OrdersFileError, Skipped, read_orders_csv
    from connectors.offers_eval import evaluate, evaluate_steps

    if args.k < 1 or args.k > 100:
        return _fail(f"--k {args.k}: expected a number of offers from 1 to 100")
    path = Path(args.orders)
    try:
        size = path.stat().st_size
    except OSError as err:
        return _fail(f"{path}: {err.strerror or err}")
    bar = _Progress(1000, "reading orders")
    skipped = Skipped()
    try:
        orders = read_orders_csv(path, progress=lambda n: bar.set(300 * n / max(size, 1)), skipped=skipped)
        if orders.n_customers and int(np.diff(orders.order_start()).max()) < 2:
            raise OrdersFileError(f"{path}: no customer has two orders or more, so there is no last order to "
                                  f"hold out ({orders.n_customers} customers, one order each; an order is one "
                                  "order_id of one customer)")
        total = evaluate_steps()
        done = [0]

        def step() -> None:
            done[0] += 1
            bar.set(300 + 700 * done[0] / total, "learning and evaluating")

        result = evaluate(orders, args.k, step=step)
    except OrdersFileError as err:
        bar.close()
        return _fail(str(err))
    finally:
        bar.close()
    if skipped.count:
        print(f"screenpop: warning: {path}: {skipped}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.as_json()))
        return 0
    k = args.k
    rows = [("engine", result.engine), *result.baselines.items(),
            (f"engine, repeat ({result.repeat_customers})", result.repeat),
            (f"engine, explore ({result.explore_customers})", result.explore)]
    print(f"{path}: {result.customers} customers with a held-out last order, k = {k}")
    print(f"{'':<28}{'Recall@' + str(k):>12}{'NDCG@' + str(k):>12}{'PHR@' + str(k):>12}")
    for name, m in rows:
        print(f"{name:<28}{m['recall']:>12.4f}{m['ndcg']:>12.4f}{m['phr']:>12.4f}")
    gp = result.baselines["GP-TopFreq"]["ndcg"]
    if gp > 0:
        print(f"engine NDCG@{k} / GP-TopFreq: {result.engine['ndcg'] / gp:.3f}")
    print(f"mix learnt on the training orders: {result.mix}"
          f"{' with a learnt due curve' if result.tuning.get('curve') is not None else ''}; "
          f"{result.seconds['total']:.1f} s")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="screenpop", description="Call-center screen pop: the caller's card, live.")
    p.add_argument("--version", action="version", version=f"screenpop {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the service (settings from SCREENPOP_* variables)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--config", help="YAML file with agents and connectors (SCREENPOP_CONFIG)")
    s.set_defaults(func=cmd_serve)
    d = sub.add_parser("demo", help="run the service with three sample back-office systems")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8000)
    d.add_argument("--latency-scale", type=float, default=1.0, help="scale the backends' simulated latency")
    d.set_defaults(func=cmd_demo)
    c = sub.add_parser("call", help="send a signed test call to a running screenpop")
    c.add_argument("number", help="the caller's number, e.g. +14155550100")
    c.add_argument("--agent", action="append", default=[], help="agent id or extension that rings (repeatable)")
    c.add_argument("--url", default=os.environ.get("SCREENPOP_URL", "http://127.0.0.1:8000"))
    c.add_argument("--secret", help="webhook secret (default: SCREENPOP_WEBHOOK_SECRET, else demo-secret)")
    c.add_argument("--call-id")
    c.add_argument("--called", help="the number that was dialled (DNIS)")
    c.add_argument("--event", choices=EVENTS, default="ring", help="ring = offered then ringing (default)")
    c.set_defaults(func=cmd_call)
    h = sub.add_parser("hash-password", help="print an argon2 hash for the config file")
    h.add_argument("--stdin", action="store_true", help="read the password from standard input")
    h.set_defaults(func=cmd_hash_password)
    k = sub.add_parser("check-config", help="validate a config file and its connectors")
    k.add_argument("path")
    k.set_defaults(func=cmd_check_config)
    o = sub.add_parser("offers", help="the offers engine: measure it on your sales data")
    osub = o.add_subparsers(dest="offers_command", required=True)
    e = osub.add_parser("evaluate", help="leave-last-order-out: the engine against G-, P- and GP-TopFreq",
                        description="ORDERS.csv: one order line per row with the columns customer_id, order_id, "
                                    "ordered_at (ISO date or date-time), product_id; others are ignored.")
    e.add_argument("orders", metavar="ORDERS.csv")
    e.add_argument("--k", type=int, default=10, help="products recommended per customer (default 10)")
    e.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    e.set_defaults(func=cmd_offers_evaluate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(os.environ.get("SCREENPOP_LOG_LEVEL", "INFO"), os.environ.get("SCREENPOP_LOG_FORMAT", "auto"))
    if args.command == "call" and not args.agent and args.event not in ("offered", "ended"):
        return _fail("--agent is required: the agent id or extension whose phone rings (e.g. --agent 1001)")
    try:
        code: int = args.func(args)
        return code
    except ScreenpopError as err:  # the tree of screenpop/errors.py: one line, no stack trace
        return _fail(f"{err.area}: {err}" if err.area else str(err))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`... --json | head`): nothing more to say, and no trace
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())
