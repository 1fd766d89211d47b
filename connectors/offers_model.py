"""The offers model: which products go together, from the order lines of all customers. Pure, no I/O.

For two products X and Y, counting customers (not orders, not quantities):

    buyers(X)            customers who bought X
    both(X, Y)           customers who bought X and Y
    confidence(X -> Y)   both(X, Y) / buyers(X)

A customer who owns the products O is offered the products Y outside O with the best score, where
score(Y) = the highest confidence(X -> Y) over the X in O, counting only pairs with
both(X, Y) >= min_customers (the support). That X is the reason shown to the agent:
"bought by 34 % of customers who bought Cross-Line Laser Level". Ties go to the larger support, then to
the smaller SKU, so a build is deterministic.

`build_model` does all the work once (in a thread: it is CPU work); `Model.offers_for` is a dict lookup.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


def percent(fraction: float) -> int:
    """A fraction as a whole percentage, halves rounded up (0.345 -> 35)."""
    return int(fraction * 100 + 0.5)


@dataclass(frozen=True)
class Model:
    """Ready offers per customer id, and what the model was built from."""

    offers: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    customers: int = 0
    products: int = 0
    lines: int = 0

    def offers_for(self, customer_id: str) -> list[dict[str, Any]] | None:
        """Copies of the customer's offers, best first; None when there is nothing to offer."""
        found = self.offers.get(customer_id)
        return [dict(o) for o in found] if found else None


def _baskets(lines: Iterable[tuple[Any, Any, Any]]) -> tuple[dict[str, set[str]], dict[str, str], int]:
    """Order lines (customer, sku, name) -> each customer's set of SKUs, each SKU's name, the line count."""
    owned: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    count = 0
    for customer, sku, name in lines:
        count += 1
        if customer is None or sku is None or str(customer) == "" or str(sku) == "":
            continue
        sku = str(sku)
        owned.setdefault(str(customer), set()).add(sku)
        if name is not None and str(name):
            names[sku] = str(name)
    return owned, names, count


def build_model(lines: Iterable[tuple[Any, Any, Any]], max_offers: int = 3, min_customers: int = 2) -> Model:
    """The model from order lines of all customers, as (customer_id, sku, product name) triples."""
    owned, names, count = _baskets(lines)
    buyers: Counter[str] = Counter()
    both: dict[str, Counter[str]] = {}
    for basket in owned.values():
        buyers.update(basket)
        for x in basket:
            both.setdefault(x, Counter()).update(y for y in basket if y != x)
    # for each X, the Ys bought with it by enough customers, best first (buyers(X) is the same for all)
    neighbours = {
        x: sorted(((y, n) for y, n in pairs.items() if n >= min_customers), key=lambda p: (-p[1], p[0]))
        for x, pairs in both.items()
    }
    offers: dict[str, tuple[dict[str, Any], ...]] = {}
    for customer, basket in owned.items():
        best: dict[str, tuple[float, int, str]] = {}  # y -> (confidence, support, x)
        for x in sorted(basket):
            taken = 0
            for y, n in neighbours.get(x, ()):
                if y in basket:
                    continue
                # enough: a Y further down X's list ranks below these `max_offers` whatever else happens
                taken += 1
                candidate = (n / buyers[x], n, x)
                held = best.get(y)
                if held is None or (candidate[0], candidate[1]) > (held[0], held[1]):
                    best[y] = candidate
                if taken >= max_offers:
                    break
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))[:max_offers]
        if ranked:
            offers[customer] = tuple(
                {"sku": y, "name": names.get(y, y), "score": round(conf, 3), "support": n,
                 "reason": f"bought by {percent(conf)} % of customers who bought {names.get(x, x)}"}
                for y, (conf, n, x) in ranked
            )
    return Model(offers=offers, customers=len(owned), products=len(buyers), lines=count)
