"""A sample connector kind `sample`: the smallest complete plugin, with no dependencies.

It answers the same record for every lookup (with the greeting from its options), so it can stand in
for the identity source or for a section. Installed with `pip install`, it is found through the entry
point group `screenpop.connectors` declared in this package's pyproject.toml.
"""

from __future__ import annotations

from typing import Any, ClassVar

from connectors.base import Connector, ConnectorError, ConnectorOptions
from screenpop.models import LookupQuery


class SampleOptions(ConnectorOptions):
    """Options of the `sample` kind."""

    greeting: str = "hello"


class SampleConnector(Connector):
    """Answers a constant customer record; never fails unless it is not started."""

    kind: ClassVar[str] = "sample"
    Options: ClassVar[type[ConnectorOptions]] = SampleOptions
    options: SampleOptions

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        super().__init__(name, options)
        self._started = False

    async def start(self) -> None:
        """Nothing to open; remember that we started."""
        self._started = True

    async def close(self) -> None:
        """Nothing to release."""
        self._started = False

    async def fetch(self, query: LookupQuery) -> dict[str, Any] | list[Any] | None:
        """The same record for every lookup."""
        if not self._started:
            raise ConnectorError("connector is not started")
        return {"id": "S-1", "name": "Sample Customer", "greeting": self.options.greeting}

    async def ping(self) -> None:
        """Always reachable once started."""
        if not self._started:
            raise ConnectorError("connector is not started")
