"""Connectors: one module per kind of data source. Each turns a lookup into a section's data."""

from connectors.base import Connector, ConnectorError, available_kinds, get_kind

__all__ = ["Connector", "ConnectorError", "available_kinds", "get_kind"]
