"""The `offers` connector kind: what the customer will likely order again, and what fits what they bought.

    url             sqlite:////srv/sales.db, postgresql://..., mysql://...   (as for the `sql` kind)
    query           SELECT o.customer_id, o.id AS order_id, o.ordered_at, l.sku, p.name FROM order_lines l ...
                    the order lines of ALL customers; no parameters; read-only like the `sql` kind
    customer_column "customer_id"   order_column "order_id"   time_column "ordered_at"   sku_column "sku"
    name_column "name"   (the query's column names; without a name column the SKU is shown)
    catalog_query   optional: SELECT sku, price, currency, in_stock, durable FROM products   (what the company has: a
                    SKU it does not list, or lists with in_stock false, is never offered; durable true: bought
                    once, never offered again to a customer who has it; price is shown; every column but sku
                    optional)
    refresh_s 600   max_offers 3 (per list)   min_customers 2 (a "fits" reason names a product at least that
                    many customers bought with it)   max_rows 1000000   (a bigger sales query fails the build
                    rather than eat the memory)   today (an ISO date the lists are for; default: the day of
                    the build)   learn true (learn the engine's mix on the sales: offers_tune.tune)

`start()` starts a background task that loads the order lines, builds the model in a thread (see
connectors.offers_model and connectors.offers_engine) and rebuilds it every `refresh_s` seconds (every 30 s
at most after a failed build). `fetch(customer_id)` only reads the model in memory: it never touches the
database. It answers the offers `{"list": "again" | "fits", "sku", "name", "reason", "due", "price"?}`,
each list best first, or None when the customer has no history and nothing is available.

Before the first build completes, `fetch` raises ConnectorError("offers model is still being built"), so
the section says `error` with that reason for the first seconds after a start (an honest "not yet" rather
than `empty`, which would claim there is nothing to offer). A failed rebuild keeps serving the last model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, field_validator
from sqlalchemy import text

from connectors.base import Connector, ConnectorError, ConnectorOptions
from connectors.offers_model import Catalog, Model, Sales, build_model
from connectors.sql import SqlConnector, SqlOptions, check_query, normalize_url
from screenpop.models import Column, LookupQuery, View

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_S = 30.0
BATCH = 20000  # sales rows read, then encoded in a thread, at a time


class OffersOptions(ConnectorOptions):
    """Options of the `offers` kind (see the module docstring)."""

    model_config = ConfigDict(hide_input_in_errors=True)  # the URL may carry a password

    SECRET_URLS: ClassVar[tuple[str, ...]] = SqlOptions.SECRET_URLS
    PUBLIC_PARAMS: ClassVar[tuple[str, ...]] = SqlOptions.PUBLIC_PARAMS

    url: str
    query: str
    customer_column: str = "customer_id"
    order_column: str = "order_id"
    time_column: str = "ordered_at"
    sku_column: str = "sku"
    name_column: str = "name"
    catalog_query: str | None = None
    refresh_s: float = Field(default=600.0, gt=0, le=7 * 86400)
    max_offers: int = Field(default=3, ge=1, le=50)
    min_customers: int = Field(default=2, ge=1)
    max_rows: int = Field(default=1_000_000, ge=1)
    today: date | None = None
    learn: bool = True
    first_build_wait_s: float = Field(default=3.0, ge=0, le=60)  # start() waits this long for the first model

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        return normalize_url(v)

    @field_validator("query", "catalog_query")
    @classmethod
    def _check_query(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = check_query(v)
        if text(v).compile().params:
            raise ValueError("the offers queries read the sales (or the catalog) as a whole; they take no parameters")
        return v


def _yes(value: Any) -> bool:
    """A database's truth value: true, 1, "yes", "true", "y", "1"."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "t")
    return bool(value)


def _catalog(columns: list[str], rows: list[Sequence[Any]]) -> Catalog:
    """The catalog from the catalog query's result: sku, and optional price, in_stock, durable."""
    where = {name.lower(): i for i, name in enumerate(columns)}
    if "sku" not in where:
        raise ConnectorError(f"the catalog query has no column 'sku' (it has {', '.join(columns)})")
    s, p, k, d = where["sku"], where.get("price"), where.get("in_stock"), where.get("durable")
    cur = where.get("currency")
    products: dict[str, dict[str, Any]] = {}
    durables = set()
    for row in rows:
        sku = str(row[s])
        entry: dict[str, Any] = {}
        if p is not None and row[p] is not None:
            entry["price"] = float(row[p])
            if cur is not None and row[cur]:
                entry["currency"] = str(row[cur])
        if k is not None and row[k] is not None:
            entry["in_stock"] = _yes(row[k])
        if d is not None and _yes(row[d]):
            durables.add(sku)
        products[sku] = entry
    return Catalog(products, frozenset(durables), complete=True)


def _add(sales: Sales, columns: list[str], rows: list[Sequence[Any]], opts: OffersOptions) -> None:
    """Add a batch of the sales query's rows (CPU work: run it in a thread)."""
    where = {name: i for i, name in enumerate(columns)}
    for column in (opts.customer_column, opts.order_column, opts.time_column, opts.sku_column):
        if column not in where:
            raise ConnectorError(f"the sales query has no column {column!r} (it has {', '.join(columns)})")
    c, o, t, s = (where[x] for x in (opts.customer_column, opts.order_column, opts.time_column, opts.sku_column))
    n = where.get(opts.name_column)
    try:
        sales.add((row[c], row[o], row[t], row[s], row[n] if n is not None else None) for row in rows)
    except ValueError as err:
        raise ConnectorError(f"the sales query's {opts.time_column} is not a date or time: {err}"[:200]) from None


def _build(sales: Sales, opts: OffersOptions, catalog: Catalog | None) -> Model:
    """The model from the collected sales (CPU work: run it in a thread)."""
    today = opts.today or datetime.now(UTC)
    return build_model(sales, today, opts.max_offers, opts.min_customers, catalog, learn=opts.learn)


class OffersConnector(Connector):
    """Offers from a model of the sales kept in memory and rebuilt in the background."""

    kind: ClassVar[str] = "offers"
    Options: ClassVar[type[ConnectorOptions]] = OffersOptions
    view: ClassVar[View | None] = View(kind="offers", columns=(
        Column(key="name", label="Product"), Column(key="reason", label="Why"), Column(key="sku", label="SKU"),
        Column(key="price", label="Price", format="money")))
    options: OffersOptions

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        super().__init__(name, options)
        opts = self.options
        self._sql = SqlConnector(name, SqlOptions(url=opts.url, query=opts.query, pool_size=1))
        self._catalog_sql = (SqlConnector(name, SqlOptions(url=opts.url, query=opts.catalog_query, pool_size=1))
                             if opts.catalog_query else None)
        self._model: Model | None = None
        self._error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.generation = 0  # successful builds so far
        self._next_build = asyncio.Event()

    def check_lanes(self) -> None:
        """The database's lanes are the connector's (a SQLite file inside the data folders)."""
        self._sql.lanes = self.lanes
        self._sql.check_lanes()

    async def start(self) -> None:
        """Open the database engine and start the background builds; wait a little for the first one, so a
        service that just started already has offers (a slow first build goes on in the background)."""
        if self._task is not None:
            return
        await self._sql.start()
        if self._catalog_sql is not None:
            await self._catalog_sql.start()
        self._task = asyncio.create_task(self._run(), name=f"offers-model-{self.name}")
        if self.options.first_build_wait_s <= 0:
            return
        try:
            async with asyncio.timeout(self.options.first_build_wait_s):
                await self.wait_built()
        except TimeoutError:
            log.info("offers connector %s: first model build still running; offers come when it is done", self.name)

    async def _run(self) -> None:
        while True:
            try:
                await self.rebuild()
                delay = self.options.refresh_s
            except ConnectorError as err:
                self._error = str(err)
                log.warning("offers connector %s: model not built: %s", self.name, err)
                delay = min(self.options.refresh_s, RETRY_AFTER_FAILURE_S)
            except Exception:  # a bug here must not end the rebuilds
                self._error = "the model build failed unexpectedly"
                log.exception("offers connector %s: model build failed", self.name)
                delay = min(self.options.refresh_s, RETRY_AFTER_FAILURE_S)
            await asyncio.sleep(delay)

    async def rebuild(self) -> Model:
        """Load every order line and build a new model, then serve it. Raises ConnectorError."""
        opts = self.options
        sales = Sales()
        async with contextlib.aclosing(self._sql.batches(LookupQuery(phone=""), batch=BATCH)) as batches:
            async for columns, rows in batches:
                if sales.lines + len(rows) > opts.max_rows:
                    raise ConnectorError(f"the sales query returned more than {opts.max_rows} rows (max_rows)")
                await asyncio.to_thread(_add, sales, columns, rows, opts)
        catalog = None
        if self._catalog_sql is not None:
            names, items, more = await self._catalog_sql.select(LookupQuery(phone=""), opts.max_rows, batch=5000)
            if more:
                raise ConnectorError(f"the catalog query returned more than {opts.max_rows} rows (max_rows)")
            catalog = _catalog(names, items)
        model = await asyncio.to_thread(_build, sales, opts, catalog)
        self._model, self._error = model, None
        self.generation += 1
        done, self._next_build = self._next_build, asyncio.Event()
        done.set()
        log.info("offers connector %s: model built from %d lines, %d customers, %d products",
                 self.name, model.lines, model.customers, model.products)
        return model

    @property
    def last_error(self) -> str | None:
        """Why the last build failed, or None when it succeeded (or none has finished yet)."""
        return self._error

    async def wait_built(self, after: int = 0) -> int:
        """Wait until more than `after` builds have succeeded; returns the build count. For tests and tools:
        bound it with a timeout, a build that keeps failing never comes."""
        while self.generation <= after:
            await self._next_build.wait()
        return self.generation

    async def close(self) -> None:
        """Stop the background builds and close the database engine."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._sql.close()
        if self._catalog_sql is not None:
            await self._catalog_sql.close()

    async def fetch(self, query: LookupQuery) -> dict[str, Any] | list[Any] | None:
        """The customer's offers from the model in memory (see the module docstring)."""
        model = self._model
        if model is None:
            if self._error is not None:
                raise ConnectorError(f"offers model not built: {self._error}"[:200])
            raise ConnectorError("offers model is still being built")
        if not query.customer_id:
            return None
        return model.offers_for(query.customer_id)

    async def ping(self) -> None:
        """The database answers `SELECT 1`, and the model is built (or still on its first build)."""
        if self._model is None and self._error is not None:
            raise ConnectorError(f"offers model not built: {self._error}"[:200])
        await self._sql.ping()
