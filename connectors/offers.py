"""The `offers` connector kind: the products a customer will likely buy next, with the reason why.

    url             sqlite:////srv/sales.db, postgresql://..., mysql://...   (as for the `sql` kind)
    query           SELECT o.customer_id, l.sku, p.name FROM order_lines l JOIN orders o ON ...
                    the order lines of ALL customers; no parameters; read-only like the `sql` kind
    customer_column "customer_id"   sku_column "sku"   name_column "name"   (the query's column names;
                    without a name column the SKU is shown)
    refresh_s 600   max_offers 3   min_customers 2 (a pair counts once that many customers bought both)
    max_rows 1000000   (a bigger sales query fails the build rather than eat the memory)

`start()` starts a background task that loads the order lines, builds the model in a thread (see
connectors.offers_model for the scoring) and rebuilds it every `refresh_s` seconds (every 30 s at most
after a failed build). `fetch(customer_id)` only reads the model in memory: it never touches the database.
It answers a list of offers `{"sku", "name", "score", "support", "reason"}`, best first, or None when the
customer has no purchase history or already owns everything that goes with it.

Before the first build completes, `fetch` raises ConnectorError("offers model is still being built"), so
the section says `error` with that reason for the first seconds after a start (an honest "not yet" rather
than `empty`, which would claim there is nothing to offer). A failed rebuild keeps serving the last model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, field_validator
from sqlalchemy import text

from connectors.base import Connector, ConnectorError, ConnectorOptions
from connectors.offers_model import Model, build_model
from connectors.sql import SqlConnector, SqlOptions, check_query, normalize_url
from screenpop.models import Column, LookupQuery, View

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_S = 30.0


class OffersOptions(ConnectorOptions):
    """Options of the `offers` kind (see the module docstring)."""

    model_config = ConfigDict(hide_input_in_errors=True)  # the URL may carry a password

    SECRET_URLS: ClassVar[tuple[str, ...]] = SqlOptions.SECRET_URLS
    PUBLIC_PARAMS: ClassVar[tuple[str, ...]] = SqlOptions.PUBLIC_PARAMS

    url: str
    query: str
    customer_column: str = "customer_id"
    sku_column: str = "sku"
    name_column: str = "name"
    refresh_s: float = Field(default=600.0, gt=0, le=7 * 86400)
    max_offers: int = Field(default=3, ge=1, le=50)
    min_customers: int = Field(default=2, ge=1)
    max_rows: int = Field(default=1_000_000, ge=1)
    first_build_wait_s: float = Field(default=3.0, ge=0, le=60)  # start() waits this long for the first model

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        return normalize_url(v)

    @field_validator("query")
    @classmethod
    def _check_query(cls, v: str) -> str:
        v = check_query(v)
        if text(v).compile().params:
            raise ValueError("the offers query reads the sales of all customers; it takes no parameters")
        return v


def _build(columns: list[str], rows: list[Sequence[Any]], opts: OffersOptions) -> Model:
    """The model from the query's result (CPU work: run it in a thread)."""
    where = {name: i for i, name in enumerate(columns)}
    for column in (opts.customer_column, opts.sku_column):
        if column not in where:
            raise ConnectorError(f"the sales query has no column {column!r} (it has {', '.join(columns)})")
    c, s = where[opts.customer_column], where[opts.sku_column]
    n = where.get(opts.name_column)
    lines = ((row[c], row[s], row[n] if n is not None else None) for row in rows)
    return build_model(lines, opts.max_offers, opts.min_customers)


class OffersConnector(Connector):
    """Offers from a co-purchase model kept in memory and rebuilt in the background."""

    kind: ClassVar[str] = "offers"
    Options: ClassVar[type[ConnectorOptions]] = OffersOptions
    view: ClassVar[View | None] = View(kind="offers", columns=(
        Column(key="name", label="Product"), Column(key="reason", label="Why"), Column(key="sku", label="SKU"),
        Column(key="score", label="Score", format="percent")))
    options: OffersOptions

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        super().__init__(name, options)
        opts = self.options
        self._sql = SqlConnector(name, SqlOptions(url=opts.url, query=opts.query, pool_size=1))
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
        columns, rows, more = await self._sql.select(LookupQuery(phone=""), opts.max_rows, batch=5000)
        if more:
            raise ConnectorError(f"the sales query returned more than {opts.max_rows} rows (max_rows)")
        model = await asyncio.to_thread(_build, columns, rows, opts)
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
