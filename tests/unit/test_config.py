"""The config file: valid files load, bad ones are refused naming file, field and reason."""

from pathlib import Path

import pytest

from screenpop.config import ConfigError, load_config
from screenpop.wiring import build_sources

GOOD = """
agents:
  - {id: alice, name: Alice, password_hash: "$argon2id$v=19$m=65536,t=3,p=4$xx", extensions: [1001]}
connectors:
  - name: customers
    kind: sql
    role: identity
    options: {url: "sqlite:///x.db", query: "SELECT id, name FROM customers WHERE phone = :phone"}
lookup: {deadline_ms: 900}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "screenpop.yaml"
    p.write_text(text)
    return p


def test_good_file_loads(tmp_path: Path) -> None:
    """A valid file gives agents (extensions as strings), connectors and limits."""
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.agents[0].extensions == ["1001"]
    assert cfg.connectors[0].role == "identity"
    assert cfg.lookup.deadline_ms == 900


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("agents: [{id: alice}]", "agents[0].password_hash: Field required"),
        ("agents: 5", "agents: Input should be a valid list"),
        ("connectors: [{name: x, kind: http, timeout_ms: -1}]", "connectors[0].timeout_ms"),
        ("colour: red", "colour: unknown field"),
        ("agents: [\n  - {id: a, password_hash: 'xxxxxxxxxxxx'\n", "not valid YAML at line"),
        ("- 1\n- 2", "expected a mapping"),
        ("agents:\n - {id: a, password_hash: xxxxxxxxxxxx, extensions: [1]}\n"
         " - {id: b, password_hash: xxxxxxxxxxxx, extensions: [1]}", "already belongs to 'a'"),
    ],
)
def test_bad_file_names_file_field_and_reason(tmp_path: Path, text: str, where: str) -> None:
    """Each kind of mistake gives one message with the path and the field."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert where in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A path that does not exist says so."""
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yaml")


def test_bad_connector_options_name_the_option(tmp_path: Path) -> None:
    """A connector option error names the connector and the option."""
    text = GOOD.replace('query: "SELECT', 'qurey: "SELECT')
    cfg = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"connectors\[0\] \(customers\): options\.(qurey|query)"):
        build_sources(cfg, "screenpop.yaml")


def test_unknown_kind_lists_the_known_ones(tmp_path: Path) -> None:
    """An unknown connector kind names the kinds that exist."""
    cfg = load_config(write(tmp_path, GOOD.replace("kind: sql", "kind: soap")))
    with pytest.raises(ConfigError, match="unknown connector kind 'soap'; known kinds: .*http.*sql"):
        build_sources(cfg, "screenpop.yaml")


def test_cache_ttl_shorthand_and_defaults(tmp_path: Path) -> None:
    """`cache_ttl_s` is short for cache.ttl_s; a connector's timeout and the card's deadline stay under a second."""
    cfg = load_config(write(tmp_path, "connectors: [{name: b, kind: http, cache_ttl_s: 30}]"))
    assert cfg.connectors[0].cache.ttl_s == 30
    assert cfg.connectors[0].timeout_ms < 1000 and cfg.lookup.deadline_ms < 1000
