"""The public API that connector plugins import is pinned: changing it breaks this test first, on purpose.

A plugin (see tests/plugins/screenpop-sample-plugin and docs/connectors.md) imports `connectors.base` and
`screenpop.models`. Names, the seam's methods and their parameters, and the fields of the models a connector
reads or returns are part of the contract; add to them freely, change or remove them only with the docs.
"""

from __future__ import annotations

import inspect

import connectors.base
import screenpop.models
from connectors.base import Connector, Journal
from screenpop.models import Card, LookupQuery, Section


def test_connector_seam_exports() -> None:
    """connectors.base exports exactly the seam: the base class, its options model, its errors (CannotSearch:
    no search by hand), the journal role's base class, and the lanes (files and addresses) a connector may
    reach."""
    assert sorted(connectors.base.__all__) == ["CannotSearch", "Connector", "ConnectorError", "ConnectorOptions",
                                               "Journal", "Lanes"]
    assert all(hasattr(connectors.base, name) for name in connectors.base.__all__)


def test_models_exports() -> None:
    """screenpop.models exports the shared vocabulary, and every exported name exists."""
    assert sorted(screenpop.models.__all__) == sorted([
        "CUSTOMER_SECTION", "SETTLED", "CallEvent", "CallState", "Caller", "Card", "Column", "ColumnFormat",
        "Customer", "EventKind", "LookupQuery", "Section", "SectionStatus", "View", "ViewKind", "WrapUp",
        "format_validation_error",
    ])
    assert all(hasattr(screenpop.models, name) for name in screenpop.models.__all__)


def test_connector_methods_and_parameters() -> None:
    """The methods a kind overrides or screenpop calls keep their names and parameters."""
    expected = {
        "__init__": ["self", "name", "options"],
        "from_config": ["name", "options", "lanes"],
        "check_lanes": ["self"],
        "default_view": ["role"],
        "start": ["self"],
        "close": ["self"],
        "fetch": ["self", "query"],
        "ping": ["self"],
        "search": ["self", "text", "limit"],
    }
    for name, params in expected.items():
        assert list(inspect.signature(getattr(Connector, name)).parameters) == params, name
    assert {"fetch", "ping"} <= Connector.__abstractmethods__
    assert "search" not in Connector.__abstractmethods__  # optional: the default says it cannot search
    assert list(inspect.signature(Journal.write).parameters) == ["self", "entry"]
    assert Journal.__abstractmethods__ == {"write", "ping"}
    assert {"kind", "Options", "view"} <= set(Connector.__annotations__)


def test_model_fields() -> None:
    """The fields a connector reads (LookupQuery) and the section/card fields the socket sends stay."""
    assert set(LookupQuery.model_fields) >= {"phone", "raw", "called", "customer_id", "suffix"}
    assert set(Section.model_fields) >= {"name", "title", "status", "data", "source", "latency_ms", "cached",
                                         "age_s", "reason", "view"}
    assert set(Card.model_fields) >= {"call_id", "state", "caller", "called", "customer", "candidates",
                                      "sections", "answered_by", "transferred_from", "started_at"}
