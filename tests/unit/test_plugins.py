"""The plugin registry: connector kinds and CTI adapters come from entry points, CTI adapters by URL scheme."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from importlib.metadata import EntryPoint, EntryPoints
from typing import Self

import pytest

from screenpop import plugins
from screenpop.config import ConfigError
from screenpop.models import CallEvent
from screenpop.plugins import PluginError, connector_kind, connector_kinds, cti_adapter
from screenpop.settings import Settings
from screenpop.wiring import build_cti
from telephony.asterisk import AmiAdapter
from telephony.base import CtiAdapter
from telephony.freeswitch import EslAdapter


class FakeAdapter(CtiAdapter):
    """A third-party CTI adapter: one module and one entry point line is all a new protocol needs."""

    name = "fake"

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def from_url(cls, url: str) -> Self:
        return cls(url)

    async def events(self) -> AsyncIterator[CallEvent]:  # pragma: no cover - never run here
        return
        yield

    async def close(self) -> None:  # pragma: no cover - never run here
        pass


def with_entry_points(monkeypatch: pytest.MonkeyPatch, *extra: EntryPoint) -> None:
    """The installed entry points plus `extra` (as if another package declared them)."""
    real = plugins.entry_points

    def fake(*, group: str) -> EntryPoints:
        return EntryPoints([*real(group=group), *(ep for ep in extra if ep.group == group)])

    monkeypatch.setattr(plugins, "entry_points", fake)


def test_the_built_in_kinds_come_through_their_entry_points() -> None:
    """csv, http, offers and sql are found in the group `screenpop.connectors`, like any plugin."""
    kinds = connector_kinds()
    assert {k: v.__module__ for k, v in kinds.items()} == {
        "csv": "connectors.csvfile", "http": "connectors.http", "offers": "connectors.offers", "sql": "connectors.sql"}
    assert all(connector_kind(name) is cls and cls.kind == name for name, cls in kinds.items())


def test_an_unknown_kind_names_the_known_ones() -> None:
    """Asking for a kind nobody declared raises PluginError listing every known kind."""
    with pytest.raises(PluginError, match=r"unknown connector kind 'nope'; known kinds: csv, http, offers, sql"):
        connector_kind("nope")


def test_only_the_kind_asked_for_is_imported() -> None:
    """Loading the csv kind imports its module and not the other kinds' (a fresh interpreter shows it)."""
    script = ("import sys; from screenpop.plugins import connector_kind; connector_kind('csv'); "
              "print(sorted(m for m in sys.modules if m.startswith(('connectors.', 'telephony.'))))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "connectors.csvfile" in done.stdout
    assert "connectors.http'" not in done.stdout and "connectors.sql" not in done.stdout
    assert "telephony.asterisk" not in done.stdout


def test_a_plugin_cannot_shadow_a_built_in_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another package declaring `http` does not replace screenpop's own http kind."""
    with_entry_points(monkeypatch, EntryPoint("http", "tests.unit.test_plugins:FakeAdapter", "screenpop.connectors"))
    assert connector_kind("http").__module__ == "connectors.http"


def test_a_broken_plugin_is_named_and_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind whose module does not load: asking for it says so; the listing leaves it out."""
    with_entry_points(monkeypatch, EntryPoint("broken", "no_such_module_xyz:Kind", "screenpop.connectors"),
                      EntryPoint("wrong", "tests.unit.test_plugins:FakeAdapter", "screenpop.connectors"))
    with pytest.raises(PluginError, match="'broken' .* did not load: ModuleNotFoundError"):
        connector_kind("broken")
    with pytest.raises(PluginError, match="'wrong' .* is not a subclass of Connector"):
        connector_kind("wrong")
    assert sorted(connector_kinds()) == ["csv", "http", "offers", "sql"]


@pytest.mark.parametrize(("url", "cls"), [("ami://u:p@pbx:5038", AmiAdapter), ("esl://:ClueCon@pbx:8021", EslAdapter),
                                          ("AMI://u:p@pbx", AmiAdapter)])
def test_the_url_scheme_picks_the_cti_adapter(url: str, cls: type[CtiAdapter]) -> None:
    """ami:// builds the Asterisk adapter, esl:// the FreeSWITCH one (the scheme in any case)."""
    assert type(cti_adapter(url)) is cls


@pytest.mark.parametrize("url", ["amy://u:topsecret@pbx:5038", "u:topsecret@pbx", "topsecret", "http://u:topsecret@x"])
def test_an_unknown_cti_scheme_is_refused_without_the_secret(url: str) -> None:
    """A URL of no known scheme raises PluginError listing the schemes, never quoting the URL."""
    with pytest.raises(PluginError, match=r"expected one of ami://, esl://") as err:
        cti_adapter(url)
    assert "topsecret" not in str(err.value)


def test_a_new_protocol_is_one_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapter declared under the group `screenpop.cti` is chosen by its scheme, like the built-ins."""
    with_entry_points(monkeypatch, EntryPoint("fake", "tests.unit.test_plugins:FakeAdapter", "screenpop.cti"))
    adapter = cti_adapter("fake://pbx:1234")
    assert isinstance(adapter, FakeAdapter) and adapter.url == "fake://pbx:1234"


def test_cti_urls_list_and_the_older_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """SCREENPOP_CTI_URLS (comma-separated) gives one adapter per URL; SCREENPOP_AMI_URL / ESL_URL still add theirs."""
    monkeypatch.setenv("SCREENPOP_CTI_URLS", "esl://:pw@pbx1:8021, ami://u:p@pbx2:5038")
    monkeypatch.setenv("SCREENPOP_AMI_URL", "ami://u:p@pbx3:5038")
    monkeypatch.setenv("SCREENPOP_ESL_URL", "esl://:pw@pbx4:8021")
    adapters = build_cti(Settings())
    assert [(type(a), a.host) for a in adapters] == [  # type: ignore[attr-defined]
        (EslAdapter, "pbx1"), (AmiAdapter, "pbx2"), (AmiAdapter, "pbx3"), (EslAdapter, "pbx4")]
    assert "pw" not in repr(Settings())


def test_a_bad_cti_url_names_its_setting_not_its_secret() -> None:
    """A wrong scheme or a malformed URL is a ConfigError naming the setting (and its place in the list) only."""
    with pytest.raises(ConfigError, match=r"SCREENPOP_CTI_URLS\[1\]: unsupported CTI URL scheme 'amy'") as err:
        build_cti(Settings(cti_urls="ami://u:p@pbx, amy://u:topsecret@pbx"))  # type: ignore[arg-type]
    assert "topsecret" not in str(err.value)
    with pytest.raises(ConfigError, match=r"SCREENPOP_ESL_URL: .*expected") as err:
        build_cti(Settings(esl_url="esl://:topsecret@pbx:99999"))
    assert "topsecret" not in str(err.value)
