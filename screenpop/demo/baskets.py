"""Generated order histories with the buying patterns of real customers, for the demo and the offers tests.

A customer orders every so often, on their own rhythm with jitter: their mean gap between orders is the
period over their number of orders, and each gap is that mean times a gamma draw of mean 1 and shape
`Style.rhythm` (4 by default: a coefficient of variation of 1/sqrt(4) = 0.5; a customer who orders every
3 weeks on average orders again after 1 to 6 weeks 9 times in 10, and within 3 days of the last order
about once in 350). Real reorders are periodic per customer (grocery reorder data peaks at a week, two
weeks, a month; consumer-panel models of purchase timing use Erlang, i.e. gamma, gaps rather than
exponential ones since Chatfield and Goodhardt, JASA 1973); shape 4 is between their Erlang-2 for one
product and a fixed schedule, a shopping trip being more regular than any one product in it. An
exponential gap (shape 1) has no memory: the next order's day would be as unknown 3 days after the last
order as 30 days after it. Each order holds:
- the consumables they reorder regularly, each on its own cycle ("coffee every 14 days"): a product is in
  the order when it is due (days since last bought >= its cycle, give or take 15 %), most of the time;
- now and then something new: a complement of what they bought (the drill brings screws, the paint a
  roller) or a popular product; durables (a drill, a saw) are bought once and never again;
- products whose popularity follows a trend: some grow over the period, some fade.

`Catalog` describes the products (kind: "consumable" or "durable", complements, popularity); `shop()`
writes the orders. `catalog_of(n)` makes a large catalog for benchmarks; `EXPLORERS` shop mostly new
products (few repeats, like an office-supply store), `REGULARS` mostly reorder (like groceries),
`DRIFTING` reorder over longer histories while their staples change.
Everything comes from the seed: the same arguments give the same orders.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path


@dataclass(frozen=True)
class Item:
    sku: str
    durable: bool = False
    weight: float = 1.0  # popularity
    trend: float = 0.0  # -1 fades over the period, +1 grows
    complements: tuple[str, ...] = ()


@dataclass(frozen=True)
class Style:
    """How a population of customers shops."""

    orders: tuple[int, int] = (2, 14)  # orders per customer (uniform in the range, heavy tail below)
    staples: tuple[int, int] = (2, 6)  # consumables reordered on a cycle
    cycle_days: tuple[int, int] = (10, 60)
    keep_staple: float = 0.85  # chance a due staple is in the order
    new_items: tuple[int, int] = (0, 2)  # new products per order
    complement_share: float = 0.5  # of the new products, the share that complements what they own
    switch: float = 0.03  # chance per order that a staple is replaced by another (tastes drift)
    max_lines: int = 1000  # products per order at most (the staples first)
    rhythm: float = 4.0  # gamma shape of the gaps between a customer's orders (1: exponential, no rhythm)


REGULARS = Style(staples=(3, 20), keep_staple=0.7)
DRIFTING = Style(orders=(4, 30), staples=(3, 20), keep_staple=0.7, switch=0.05)  # longer histories, tastes change
EXPLORERS = Style(orders=(1, 9), staples=(0, 1), cycle_days=(60, 200), keep_staple=0.4, new_items=(1, 4),
                  complement_share=0.3)


@dataclass(frozen=True)
class Catalog:
    items: tuple[Item, ...]
    by_sku: dict[str, Item] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.by_sku.update({i.sku: i for i in self.items})


def catalog_of(n: int, seed: int = 1, durable_share: float = 0.2) -> Catalog:
    """A catalog of `n` products P00001..: Zipf popularity, trends, a few complements each."""
    rng = random.Random(seed)
    skus = [f"P{i + 1:05d}" for i in range(n)]
    items = []
    for rank, sku in enumerate(skus):
        complements = tuple(rng.sample(skus, 3)) if rng.random() < 0.5 else ()
        items.append(Item(sku, durable=rng.random() < durable_share, weight=1.0 / (rank + 1) ** 0.9,
                          trend=rng.uniform(-1, 1) if rng.random() < 0.3 else 0.0,
                          complements=tuple(c for c in complements if c != sku)))
    return Catalog(tuple(items))


class _Picker:
    """Draws products by popularity at a point of the period (trends move it), in O(log n) a draw."""

    STEPS = 12

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = list(items)
        self.cum: list[list[float]] = []
        for step in range(self.STEPS):
            progress = step / (self.STEPS - 1)
            total, cum = 0.0, []
            for i in self.items:
                total += i.weight * math.exp(i.trend * (progress - 0.5) * 2.0)
                cum.append(total)
            self.cum.append(cum)

    def __call__(self, rng: random.Random, progress: float) -> Item:
        step = min(self.STEPS - 1, max(0, round(progress * (self.STEPS - 1))))
        return rng.choices(self.items, cum_weights=self.cum[step])[0]


def shop(catalog: Catalog, customers: Sequence[str], start: date, end: date, style: Style = REGULARS,
         seed: int = 0, orders_of: dict[str, tuple[int, date]] | None = None
         ) -> Iterator[tuple[str, str, date, list[str]]]:
    """(customer_id, order_id, day, skus) for each order, by customer then day. `orders_of` may fix a
    customer's order count and first day."""
    rng = random.Random(seed)
    span = (end - start).days
    consumables = [i for i in catalog.items if not i.durable]
    pick_any, pick_consumable = _Picker(catalog.items), _Picker(consumables)
    n = 0
    for customer in customers:
        lo, hi = style.orders
        count = rng.randint(lo, hi) if rng.random() < 0.7 else rng.randint(lo, max(lo, (lo + hi) // 3))
        first = start + timedelta(days=rng.randint(0, span // 3))
        if orders_of and customer in orders_of:
            count, first = orders_of[customer]
        gap = max(1.0, (end - first).days / max(count, 1))
        k = rng.randint(*style.staples) if consumables else 0
        staples = {pick_consumable(rng, 0.5).sku: float(rng.randint(*style.cycle_days)) for _ in range(k)}
        keep = {sku: rng.uniform(style.keep_staple - 0.3, min(1.0, style.keep_staple + 0.3)) for sku in staples}
        owned: set[str] = set()
        last: dict[str, date] = {}
        day = first
        for _ in range(count):
            if day >= end:
                break
            basket: list[str] = []
            for sku, cycle in staples.items():
                due = sku not in last or (day - last[sku]).days >= cycle * rng.uniform(0.85, 1.15)
                if due and rng.random() < keep.get(sku, style.keep_staple):
                    basket.append(sku)
            if staples and rng.random() < style.switch * len(staples):
                staples.pop(rng.choice(sorted(staples)))
                staples[pick_consumable(rng, 0.5).sku] = float(rng.randint(*style.cycle_days))
            for _ in range(rng.randint(*style.new_items)):
                progress = (day - start).days / max(span, 1)
                hooks = [c for o in sorted(owned) for c in catalog.by_sku[o].complements if c not in owned] \
                    if len(owned) < 200 else [c for o in sorted(owned)[-200:] for c in catalog.by_sku[o].complements]
                item = (catalog.by_sku[rng.choice(hooks)] if hooks and rng.random() < style.complement_share
                        else pick_any(rng, progress))
                if item.sku in owned and item.durable:
                    continue
                basket.append(item.sku)
            if not basket:
                basket.append(pick_any(rng, (day - start).days / max(span, 1)).sku)
            basket = sorted(list(dict.fromkeys(basket))[:style.max_lines])
            for sku in basket:
                owned.add(sku)
                last[sku] = day
            n += 1
            yield customer, f"O{n:07d}", day, basket
            day += timedelta(days=max(1, round(gap * rng.gammavariate(style.rhythm, 1.0 / style.rhythm))))


def write_csv(path: str | Path, orders: Iterator[tuple[str, str, date, list[str]]]) -> int:
    """Write orders in the evaluation's CSV form; returns the number of order lines."""
    lines = 0
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["customer_id", "order_id", "ordered_at", "product_id"])
        for customer, order, day, skus in orders:
            for sku in skus:
                out.writerow([customer, order, day.isoformat(), sku])
                lines += 1
    return lines
