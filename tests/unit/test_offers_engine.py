"""The offers engine and its evaluation on small synthetic data with known answers.

The metrics are checked against values computed by hand; the held-out orders are shown never to reach the
model; the card's lists are checked for a regular reorder (coffee every 14 days), a planted complement and a
durable.
"""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from connectors import offers_engine, offers_eval, offers_tune
from connectors.offers_data import encode, parse_time, read_orders_csv, split_last
from connectors.offers_engine import Engine, Mix, due_factor
from connectors.offers_eval import evaluate, metrics
from connectors.offers_model import Catalog, build_model, interval_text
from screenpop.cli import main

DAY0 = date(2026, 1, 1)


def line(customer: str, order: str, day: int, sku: str, name: str | None = None) -> tuple[Any, ...]:
    return (customer, order, (DAY0 + timedelta(days=day)).isoformat(), sku, name)


def coffee_drinker(days: int = 10) -> list[tuple[Any, ...]]:
    """K buys coffee every 14 days and filters every 28; others buy coffee and tea now and then."""
    out = [line("K", f"K{n}", 14 * n, "COFFEE", "Coffee beans 1 kg") for n in range(days)]
    out += [line("K", f"K{n}", 14 * n, "FILTER", "Filters") for n in range(0, days, 2)]
    out += [line(f"O{c}", f"O{c}-{n}", 5 * n + c, sku) for c in range(6) for n in range(3) for sku in ("COFFEE", "TEA")]
    return out


def again(model: Any, customer: str) -> dict[str, dict[str, Any]]:
    return {o["sku"]: o for o in model.offers_for(customer) or [] if o["list"] == "again"}


def fits(model: Any, customer: str) -> list[dict[str, Any]]:
    return [o for o in model.offers_for(customer) or [] if o["list"] == "fits"]


def test_coffee_every_14_days_is_due_on_day_15_and_not_on_day_3() -> None:
    """Bought every 14 days, last on day L: on L + 15 coffee is due ("usually every 2 weeks"), on L + 3 not."""
    lines = coffee_drinker()
    last = 14 * 9
    late = build_model(lines, DAY0 + timedelta(days=last + 15), learn=False)
    early = build_model(lines, DAY0 + timedelta(days=last + 3), learn=False)
    assert again(late, "K")["COFFEE"]["due"] is True
    assert again(late, "K")["COFFEE"]["reason"] == "usually every 2 weeks, last bought 15 days ago, due now"
    assert again(early, "K")["COFFEE"]["due"] is False
    assert again(early, "K")["COFFEE"]["reason"] == ("usually every 2 weeks, last bought 3 days ago, "
                                                     "due in about 11 days")
    # the filters (every 28 days, last bought on day 112) are due on day 141, not on day 129
    assert again(late, "K")["FILTER"]["due"] is True and again(early, "K")["FILTER"]["due"] is False


def test_due_factor_ranks_the_due_product_first() -> None:
    """With the due factor on, the product that is due outranks the one just bought, and not the other way."""
    orders = encode([(c, o, parse_time(t), s) for c, o, t, s, _ in coffee_drinker()])
    k = orders.customers.index("K")
    mix = Mix(decay=1.0, shrink=0.0, item_repeat=0.0, due=1.0, neighbours=0.0, popularity=1e-6, recent=0.0)
    # filters (every 28 days) last bought on day 112, coffee (every 14 days) on day 126
    tops = {}
    for day in (129, 138):
        engine = Engine(orders, np.full(orders.n_customers, parse_time(DAY0) + day))
        who = np.array([k])
        tops[day] = [orders.products[i] for i in engine.candidates(who, mix, 4).top(mix, 2, who)[0]]
    assert tops[129] == ["FILTER", "COFFEE"]  # coffee 3 days ago (q = 0.2), filters 17 days ago (q = 0.6)
    assert tops[138] == ["COFFEE", "FILTER"]  # coffee 12 days ago (q = 0.86), filters 26 days ago (q = 0.93)
    assert due_factor(np.array([3 / 14]))[0] < due_factor(np.array([15 / 14]))[0]


def test_planted_complement_is_found_with_its_reason() -> None:
    """Most who bought the drill also bought the screws: a drill owner without screws is offered them first."""
    lines = []
    for c in range(30):
        lines.append(line(f"D{c}", f"D{c}-1", c, "DRILL", "Cordless drill"))
        if c < 24:
            lines.append(line(f"D{c}", f"D{c}-2", c + 7, "SCREWS", "Wood screws"))
        lines.append(line(f"D{c}", f"D{c}-3", c + 9, f"X{c % 7}"))
    for c in range(30):  # a crowd that buys the popular X products, never screws
        for n in range(3):
            lines.append(line(f"P{c}", f"P{c}-{n}", c + n, f"X{(c + n) % 7}"))
    lines.append(line("NEW", "NEW-1", 60, "DRILL", "Cordless drill"))
    model = build_model(lines, DAY0 + timedelta(days=61), learn=False)
    offered = fits(model, "NEW")
    assert offered[0]["sku"] == "SCREWS"
    assert offered[0]["reason"] == "bought by 77 % of customers who bought Cordless drill (by 39 % of all customers)"
    assert all(o["sku"] != "DRILL" for o in offered)  # what they have is no "new" product


def test_durable_is_never_proposed_twice_and_the_catalog_filters() -> None:
    """A durable a customer has never comes back; a product out of stock or not listed is never offered."""
    lines = [line(f"C{c}", f"C{c}-{n}", 10 * n + c, sku) for c in range(12) for n in range(4)
             for sku in ("SAW", "BLADE", "GLOVES", "OLD")]
    lines += [line("FRESH", "F-1", 5, "GLOVES")]
    catalog = Catalog({"SAW": {"price": 99.0, "currency": "USD"}, "BLADE": {"price": 9.5}, "GLOVES": {},
                       "GONE": {"in_stock": False}}, frozenset({"SAW"}), complete=True)
    model = build_model(lines, DAY0 + timedelta(days=60), max_offers=5, catalog=catalog, learn=False)
    for customer in model.index:
        offered = model.offers_for(customer) or []
        skus = [o["sku"] for o in offered]
        assert "OLD" not in skus and "GONE" not in skus  # not listed / out of stock
        if customer != "FRESH":
            assert "SAW" not in skus  # the durable they have
    fresh = {o["sku"]: o for o in model.offers_for("FRESH") or []}
    assert fresh["SAW"]["list"] == "fits" and fresh["SAW"]["price"] == 99.0 and fresh["SAW"]["currency"] == "USD"
    assert fresh["GLOVES"]["list"] == "again" and "price" not in fresh["GLOVES"]  # listed without a price


def test_metrics_match_hand_computed_values() -> None:
    """Recall, NDCG and PHR of two lists, against values worked out by hand."""
    # customer 0: truth {1, 2, 3}, list [1, 9, 3] -> hits at ranks 1 and 3
    # customer 1: truth {5}, list [6, 7, 8] -> no hit; customer 2 has no truth and is not counted
    top = np.array([[1, 9, 3], [6, 7, 8], [1, 2, 3]])
    who = np.array([0, 1, 2])
    n = 10
    truth = np.array([0 * n + 1, 0 * n + 2, 0 * n + 3, 1 * n + 5])
    got, customers = metrics(top, who, truth, n)
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert customers == 2
    assert got["recall"] == pytest.approx((2 / 3 + 0) / 2)
    assert got["ndcg"] == pytest.approx((dcg / idcg + 0) / 2)
    assert got["phr"] == pytest.approx(0.5)
    # a truth larger than k: the ideal counts k hits
    got, _ = metrics(np.array([[4, 5]]), np.array([0]), np.array([1, 2, 3, 4]), n)
    assert got["ndcg"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert got["recall"] == pytest.approx(1 / 4)


def test_baselines_by_hand() -> None:
    """G-, P- and GP-TopFreq on a tiny history give the lists worked out by hand."""
    # A: orders {x, y}, {x}, {z}; B: {y}; C: {y, w}. Orders with: y 3, x 2, z 1, w 1
    rows = [("A", "a1", 1.0, "x"), ("A", "a1", 1.0, "y"), ("A", "a2", 2.0, "x"), ("A", "a3", 3.0, "z"),
            ("B", "b1", 1.0, "y"), ("C", "c1", 1.0, "y"), ("C", "c1", 1.0, "w")]
    orders = encode(rows)
    engine = Engine(orders, np.full(orders.n_customers, 4.0))
    who = np.array([orders.customers.index("A")])
    lists = {name: [orders.products[i] if i >= 0 else None for i in top[0]]
             for name, top in offers_eval.baselines(engine, who, 3).items()}
    assert lists["G-TopFreq"] == ["y", "x", "z"]
    assert lists["P-TopFreq"] == ["x", "y", "z"]  # x twice; y and z once, y the more popular
    assert lists["GP-TopFreq"] == ["x", "y", "z"]
    who = np.array([orders.customers.index("B")])
    lists = {name: [orders.products[i] if i >= 0 else None for i in top[0]]
             for name, top in offers_eval.baselines(engine, who, 3).items()}
    assert lists["P-TopFreq"] == ["y", None, None] and lists["GP-TopFreq"] == ["y", "x", "z"]


def _write(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    path.write_text("customer_id,order_id,ordered_at,product_id,qty\n"
                    + "".join(f"{c},{o},{t},{p},1\n" for c, o, t, p in rows), encoding="utf-8")
    return path


def _shop(n: int = 40) -> list[tuple[str, str, str, str]]:
    """Customers with 2-5 orders; every last order holds the product SECRET, which no other order has."""
    rows = []
    for c in range(n):
        count = 2 + c % 4
        for k in range(count):
            day = (DAY0 + timedelta(days=7 * k + c % 5)).isoformat()
            skus = [f"S{(c + k) % 6}", f"S{c % 3}"] + (["SECRET"] if k == count - 1 else [])
            rows += [(f"C{c}", f"C{c}-{k}", day, s) for s in dict.fromkeys(skus)]
    return rows


def test_held_out_orders_never_reach_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every order set the engine learns from or tunes on lacks the held-out orders (SECRET is only there)."""
    seen: list[set[str]] = []
    real_init = Engine.__init__

    def spy(self: Engine, orders: Any, *args: Any, **kwargs: Any) -> None:
        seen.append({orders.products[i] for i in orders.line_product})
        real_init(self, orders, *args, **kwargs)

    lists: list[np.ndarray] = []
    real_metrics = offers_eval.metrics

    def keep(top: np.ndarray, *args: Any) -> Any:
        lists.append(top)
        return real_metrics(top, *args)

    monkeypatch.setattr(offers_engine.Engine, "__init__", spy)
    monkeypatch.setattr(offers_eval, "metrics", keep)
    orders = read_orders_csv(_write(tmp_path / "orders.csv", _shop()))
    result = evaluate(orders, k=3)
    assert len(seen) >= 2 and all("SECRET" not in products for products in seen)
    # had the model seen them, SECRET (in every held-out order) would top every list; it is in none
    assert result.customers == 40 and len(lists) == 6
    assert not any((top == orders.products.index("SECRET")).any() for top in lists)


def test_a_product_only_in_held_out_orders_is_never_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """A product that only held-out orders hold is unknown to the model: no list offers it, so no hit."""
    path = _write(tmp_path / "orders.csv", [("A", "a1", "2024-01-01", "x"), ("A", "a2", "2024-01-08", "y"),
                                            ("B", "b1", "2024-01-02", "x"), ("B", "b2", "2024-01-09", "y")])
    assert main(["offers", "evaluate", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["customers"] == 2
    assert out["engine"]["recall"] == 0.0 and out["baselines"]["G-TopFreq"]["recall"] == 0.0
    assert out["baselines"]["GP-TopFreq"]["recall"] == 0.0


def test_split_keeps_one_order_customers_and_holds_out_the_last() -> None:
    """split_last holds out exactly the last order of each customer with two or more, by time."""
    orders = encode([("A", "a2", 2.0, "x"), ("A", "a1", 1.0, "y"), ("B", "b1", 5.0, "z")])
    train, held = split_last(orders)
    assert held.sum() == 1 and orders.order_time[held].tolist() == [2.0]
    assert sorted(orders.products[i] for i in train.line_product) == ["y", "z"]


def test_of_two_orders_on_the_same_day_the_later_in_the_file_is_held_out() -> None:
    """Orders at the same time (dates only): the one whose first line comes later in the file is the last."""
    orders = encode([("A", "a9", 3.0, "x"), ("A", "a1", 1.0, "y"), ("A", "a2", 3.0, "z"), ("A", "a9", 3.0, "w")])
    train, held = split_last(orders)
    assert held.sum() == 1
    assert sorted(orders.products[i] for i in train.line_product) == ["w", "x", "y"]


def test_evaluate_json_has_the_promised_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`screenpop offers evaluate --json` prints exactly the documented keys, each figure within [0, 1]."""
    path = _write(tmp_path / "orders.csv", _shop())
    assert main(["offers", "evaluate", str(path), "--k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["customers", "k", "engine", "baselines", "repeat", "explore"]
    assert out["customers"] == 40 and out["k"] == 5
    assert list(out["baselines"]) == ["G-TopFreq", "P-TopFreq", "GP-TopFreq"]
    for figures in [out["engine"], out["repeat"], out["explore"], *out["baselines"].values()]:
        assert list(figures) == ["recall", "ndcg", "phr"]
        assert all(0.0 <= v <= 1.0 for v in figures.values())


@pytest.mark.parametrize(("content", "message"), [
    ("customer_id,order_id,product_id\nA,1,x\n", "no column ordered_at in the header"),
    ("customer_id,order_id,ordered_at,product_id\nA,1,2024-13-01,x\n", "line 2: ordered_at '2024-13-01' is not an ISO"),
    ("customer_id,order_id,ordered_at,product_id\nA,1,,x\n", "line 2: empty ordered_at"),
    ("", "the file is empty"),
    ("customer_id,order_id,ordered_at,product_id\nA,1,2024-01-01,x\nA,1,2024-01-02,y\nB,2,2024-01-01,x\n",
     "no customer has two orders or more, so there is no last order to hold out (2 customers"),
])
def test_bad_csv_is_one_line_and_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                             message: str) -> None:
    """A missing column, no usable line (a bad date, an empty field), an empty file or nobody with a second order:
    one line on stderr naming it, exit code 2."""
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    assert main(["offers", "evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_lines_with_an_empty_field_or_a_bad_date_are_skipped_with_one_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Dirty lines are left out and counted in one warning naming the first; the figures are those without them."""
    clean = _write(tmp_path / "clean.csv", _shop())
    dirty = tmp_path / "dirty.csv"
    dirty.write_text(clean.read_text(encoding="utf-8") + "C1,X9,,P1\nC2,X8,31/12/2024,P2\n,X7,2024-01-01,P3\n",
                     encoding="utf-8")
    assert main(["offers", "evaluate", str(clean), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert main(["offers", "evaluate", str(dirty), "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == expected
    lines = clean.read_text(encoding="utf-8").count("\n")
    assert out.err.strip() == (f"screenpop: warning: {dirty}: 3 lines skipped (the first: line {lines + 1}: "
                               "empty ordered_at)")


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolons_or_tabs_read_as_commas(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           delimiter: str) -> None:
    """A file separated by semicolons or tabs gives the same figures as its comma-separated twin."""
    clean = _write(tmp_path / "clean.csv", _shop())
    other = tmp_path / "other.csv"
    other.write_text(clean.read_text(encoding="utf-8").replace(",", delimiter), encoding="utf-8")
    assert main(["offers", "evaluate", str(clean), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert main(["offers", "evaluate", str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected


def test_interval_said_out_loud() -> None:
    """Intervals are said in days, weeks or months as a person would."""
    assert [interval_text(d) for d in (1, 5, 14, 21, 40, 90, 365)] == [
        "every day", "every 5 days", "every 2 weeks", "every 3 weeks", "every 6 weeks", "every 3 months",
        "every 12 months"]


def _noise(customers: int = 300, seed: int = 3) -> list[tuple[str, str, float, str]]:
    """Baskets of products drawn at random: nothing to learn beyond popularity."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(customers):
        for k in range(int(rng.integers(2, 6))):
            for p in dict.fromkeys(rng.integers(0, 40, size=3).tolist()):
                rows.append((f"C{c}", f"C{c}-{k}", float(10 * k + c % 7), f"P{p}"))
    return rows


def test_tuning_never_reports_a_mix_worse_than_gp_topfreq_on_its_validation() -> None:
    """The learnt mix scores at least GP-TopFreq's validation NDCG, and falls back to it when the gain is thin."""
    orders = encode(_noise())
    mix, found = offers_tune.tune(orders)
    assert found["ndcg"] >= found["gp_topfreq_ndcg"]
    loose, _ = offers_tune.tune(orders, z=0.0, z_final=0.0)
    assert loose != offers_engine.GP_TOPFREQ  # with no threshold noise moves the mix
    strict, found = offers_tune.tune(orders, z=0.0, z_final=50.0)
    assert strict == offers_engine.GP_TOPFREQ and found["ndcg"] == found["gp_topfreq_ndcg"]


def test_venture_lifts_new_products_for_the_customer_who_rarely_rebuys() -> None:
    """With venture > 0 the explore and popular part weighs more for a low-loyalty customer than a loyal one."""
    rows = [("L", f"L{k}", float(k), "MILK") for k in range(6)]
    rows += [("X", f"X{k}", float(k), f"NEW{k}") for k in range(6)]
    rows += [(f"O{c}", f"O{c}", 1.0, "BREAD") for c in range(5)]
    orders = encode(rows)
    engine = Engine(orders, np.full(orders.n_customers, 7.0))
    who = np.array(sorted(orders.customers.index(c) for c in ("L", "X")))
    cands = engine.candidates(who, Mix(), popular_per_customer=3)
    bread = cands.product == orders.products.index("BREAD")
    loyal_row = bread & (cands.customer == orders.customers.index("L"))
    rover_row = bread & (cands.customer == orders.customers.index("X"))
    _, flat = cands.parts(Mix(venture=0.0))
    assert flat[loyal_row][0] == pytest.approx(flat[rover_row][0])
    _, lifted = cands.parts(Mix(venture=2.0))
    assert engine.loyal[orders.customers.index("L")] > engine.loyal[orders.customers.index("X")]
    assert lifted[rover_row][0] > lifted[loyal_row][0]
