"""The configuration file (YAML): agents, connectors and lookup limits.

    agents:
      - id: alice                       # the agent id (login name)
        name: Alice Martin
        password_hash: "$argon2id$..."  # made by `screenpop hash-password`
        extensions: ["1001"]            # phone extensions that ring for this agent
        addresses: ["client:alice"]     # other telephony addresses (Twilio client, SIP user ...)
        role: agent                     # agent | admin
    connectors:
      - name: customers                 # unique; used in logs and as the section's source
        kind: sql                       # http | sql | any installed plugin kind
        role: identity                  # identity (phone -> customer) | section (customer -> data)
        timeout_ms: 600                 # default 600
        options: {url: "sqlite+aiosqlite:///sales.db", query: "SELECT ..."}
      - name: balance
        kind: http
        role: section
        section: balance                # the section's name on the card (default: the connector name)
        title: Balance                  # shown to the agent (default: the section name, capitalised)
        timeout_ms: 800
        options: {url: "http://accounting/api/balance/{customer_id}"}
    lookup:
      deadline_ms: 800                  # every section settles within this, from the start (default 800)

A bad file raises ConfigError whose message names the file, the field and the reason.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from screenpop.cache.policy import CachePolicy
from screenpop.errors import ConfigError as ConfigError  # re-exported: the errors are defined in one tree
from screenpop.models import CUSTOMER_SECTION, View
from screenpop.models import format_validation_error as format_validation_error  # re-exported, one formatter
from screenpop.names import canonical
from web import WEB_DIR

_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


@functools.cache
def view_kinds() -> tuple[str, ...]:
    """The console's views: each module `web/js/views/<kind>.js` that exports `render` is one."""
    return tuple(sorted(p.stem for p in (WEB_DIR / "js" / "views").glob("*.js")
                        if "export function render(" in p.read_text(encoding="utf-8")))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentConfig(Strict):
    id: str = Field(pattern=_NAME)
    name: str = ""
    password_hash: str = Field(min_length=10)
    extensions: list[str] = Field(default_factory=list)
    addresses: list[str] = Field(default_factory=list)
    role: Literal["agent", "admin"] = "agent"

    @field_validator("extensions", "addresses", mode="before")
    @classmethod
    def _as_strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [str(x) for x in v]
        return v


class BreakerConfig(Strict):
    failures: int = Field(default=5, ge=1, le=1000)  # consecutive failures that open the breaker
    cooldown_s: float = Field(default=30.0, gt=0, le=3600)  # how long the source is skipped


class ConnectorConfig(Strict):
    name: str = Field(pattern=_NAME)
    kind: str
    role: Literal["identity", "identity_fallback", "section"] = "section"
    section: str | None = Field(default=None, pattern=_NAME)
    title: str | None = None
    timeout_ms: int = Field(default=600, gt=0, le=60_000)
    retries: int = Field(default=0, ge=0, le=3)  # extra tries of a failed read, only within the deadline
    max_in_flight: int = Field(default=50, ge=1, le=10_000)  # bulkhead
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    cache: CachePolicy = Field(default_factory=CachePolicy)  # the connector's `cache:` section
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)
    view: View | None = None  # how the console shows the section (default: the kind's; see docs/connectors.md)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`cache_ttl_s: 60` is short for `cache: {ttl_s: 60}`."""
        if isinstance(data, dict) and "cache_ttl_s" in data and isinstance(data.get("cache") or {}, dict):
            data = dict(data)
            ttl = data.pop("cache_ttl_s")
            cache = dict(data.get("cache") or {})
            cache.setdefault("ttl_s", ttl)
            data["cache"] = cache
        return data

    @model_validator(mode="after")
    def _view_fits_role(self) -> ConnectorConfig:
        """The view is one the console has; `customer` shows the identity match, and the identity roles
        have no other."""
        if self.view is None:
            return self
        kinds = view_kinds()
        if self.view.kind not in kinds:
            raise ValueError(f"view {self.view.kind!r}: the console has no such view; expected one of "
                             + ", ".join(repr(k) for k in kinds))
        identity = self.role in ("identity", "identity_fallback")
        if identity and self.view.kind != "customer":
            raise ValueError(f"view {self.view.kind!r}: the identity roles fill the customer section, "
                             "whose view is 'customer'; leave `view` out")
        if not identity and self.view.kind == "customer":
            raise ValueError("view 'customer' shows the identity match; a section connector has "
                             "'fields', 'table' or 'offers'")
        return self

    @property
    def section_name(self) -> str:
        return self.section or self.name

    @property
    def section_title(self) -> str:
        return self.title or self.section_name.replace("_", " ").capitalize()


class LookupConfig(Strict):
    deadline_ms: int = Field(default=800, gt=0, le=60_000)
    suffix_digits: int = Field(default=7, ge=4, le=15)  # the identity_fallback source gets the last N digits
    rank_called_field: str = "dnis"  # a customer whose record lists the called number ranks first
    rank_activity_field: str = "last_activity"  # then the most recent activity (ISO date) first


class TwilioConfig(Strict):
    """Who rings for which of your Twilio numbers when screenpop answers the voice webhook with <Dial>."""

    numbers: dict[str, list[str]] = Field(default_factory=dict)  # "+18005550100": [alice, bob]
    default_agents: list[str] = Field(default_factory=list)  # for numbers not listed
    ring_timeout_s: int = Field(default=30, gt=0, le=600)


class TelephonyConfig(Strict):
    twilio: TwilioConfig = Field(default_factory=TwilioConfig)


class Config(Strict):
    agents: list[AgentConfig] = Field(default_factory=list)
    connectors: list[ConnectorConfig] = Field(default_factory=list)
    lookup: LookupConfig = Field(default_factory=LookupConfig)
    telephony: TelephonyConfig = Field(default_factory=TelephonyConfig)

    @model_validator(mode="after")
    def _unique(self) -> Config:
        """Agent ids and addresses are compared in canonical form (screenpop.names): `Alice` and `alice`, or
        `client:Alice` and `client:alice`, are the same, so two agents may not hold them."""
        seen: dict[str, str] = {}
        for a in self.agents:
            owner = seen.get(canonical(a.id))
            if owner is not None:
                same = "appears twice" if owner == a.id else f"is the same as {owner!r} (ids ignore case)"
                raise ValueError(f"agent id {a.id!r} {same}")
            seen[canonical(a.id)] = a.id
        for a in self.agents:
            for addr in [*a.extensions, *a.addresses]:
                owner = seen.get(canonical(addr))
                if owner is not None and owner != a.id:
                    raise ValueError(f"address {addr!r} of agent {a.id!r} already belongs to {owner!r} "
                                     "(addresses are compared ignoring case and surrounding spaces)")
                seen[canonical(addr)] = a.id
        names = [c.name for c in self.connectors]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"connector name(s) {sorted(dup)} appear more than once")
        sections = [c.section_name for c in self.connectors if c.role == "section"]
        dup = {n for n in sections if sections.count(n) > 1}
        if dup or CUSTOMER_SECTION in sections:
            taken = sorted(dup | ({CUSTOMER_SECTION} & set(sections)))
            raise ValueError(f"section name(s) {taken} used twice or reserved")
        for role in ("identity", "identity_fallback"):
            if sum(1 for c in self.connectors if c.role == role and c.enabled) > 1:
                raise ValueError(f"only one enabled connector may have role {role}")
        return self


def parse_config(data: Any, source: str = "<config>") -> Config:
    """Validate already-loaded data; raises ConfigError naming `source`, the field and the reason."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with agents and connectors, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {format_validation_error(err)}") from None


def load_config(path: str | Path | None) -> Config:
    """Read and validate the YAML file at `path` (None gives an empty configuration)."""
    if path is None or str(path) == "":
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{p}: cannot read the config file: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
    return parse_config(data, str(p))
