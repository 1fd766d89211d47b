"""Connectors: one module per kind of data source. Each turns a lookup into a section's data.

Kinds are found by screenpop.plugins through the entry point group `screenpop.connectors`.
"""

from connectors.base import Connector, ConnectorError, ConnectorOptions

__all__ = ["Connector", "ConnectorError", "ConnectorOptions"]
