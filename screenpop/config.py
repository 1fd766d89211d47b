"""The configuration file (YAML): agents, connectors and lookup limits.

    agents:
      - id: alice                       # the agent id (login name)
        name: Alice Martin
        password_hash: "$argon2id$..."  # made by `screenpop hash-password`
        extensions: ["1001"]            # phone extensions that ring for this agent
        addresses: ["client:alice"]     # other telephony addresses (Twilio client, SIP user ...)
        role: agent                     # agent | supervisor (the live view) | admin (the admin console)
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
    wrapup:                             # the agent's notes after a call (docs/wrapup.md)
      dispositions: [resolved, callback, sale, complaint]
      history: 5                        # the built-in `history` section: the customer's last 5 calls
    console:
      new_customer_url: "https://crm.example.com/customers/new?phone={phone}"
      translations: {sv: {Balance: Saldo}}   # section titles, column labels, dispositions per language

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
from screenpop.masking import MaskRule
from screenpop.models import CUSTOMER_SECTION, View
from screenpop.models import format_validation_error as format_validation_error  # re-exported, one formatter
from screenpop.names import canonical
from web import WEB_DIR

_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
Role = Literal["agent", "supervisor", "admin"]
ROLES: tuple[str, ...] = ("agent", "supervisor", "admin")


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
    role: Role = "agent"
    disabled: bool = False  # a disabled agent cannot sign in, and no call rings for them

    @field_validator("extensions", "addresses", mode="before")
    @classmethod
    def _as_strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [str(x) for x in v]
        return v


_LINK = r"^https?://[^\s{}]+[/?#]?"


class LinkConfig(Strict):
    """A link on the card to the record in another system: `url` is a template ({customer_id}, and for a
    row link any of the row's keys), always http:// or https:// with a fixed host."""

    label: str = Field(default="Open in CRM", min_length=1, max_length=60)
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+(/|\?|#|$)")


class BreakerConfig(Strict):
    failures: int = Field(default=5, ge=1, le=1000)  # consecutive failures that open the breaker
    cooldown_s: float = Field(default=30.0, gt=0, le=3600)  # how long the source is skipped


class ConnectorConfig(Strict):
    name: str = Field(pattern=_NAME)
    kind: str
    role: Literal["identity", "identity_fallback", "section", "journal"] = "section"
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
    masking: list[MaskRule] = Field(default_factory=list, max_length=100)  # fields masked by role (masking.py)
    links: list[LinkConfig] = Field(default_factory=list, max_length=5)  # on the section: {customer_id}
    row_links: dict[str, str] = Field(default_factory=dict)  # column key -> URL template from the row's keys

    @field_validator("row_links")
    @classmethod
    def _row_links(cls, v: dict[str, str]) -> dict[str, str]:
        for key, url in v.items():
            LinkConfig(url=url)  # the same rule: http(s), a fixed host
            if not key or len(key) > 100:
                raise ValueError("a row link's key is a column key")
        return v

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


class Disposition(Strict):
    id: str = Field(pattern=_NAME)
    label: str = ""  # shown to the agent (default: the id, capitalised); translatable in console.translations


class WrapUpConfig(Strict):
    """The wrap-up form: the dispositions an agent picks from, and how a journal entry is retried."""

    dispositions: list[Disposition] = Field(default_factory=lambda: [
        Disposition(id=d) for d in ("resolved", "callback", "sale", "complaint")], max_length=50)
    retry_base_s: float = Field(default=2.0, gt=0, le=3600)  # first retry after this; doubles each time
    retry_max_s: float = Field(default=300.0, gt=0, le=86_400)  # up to this between two tries
    history: int = Field(default=0, ge=0, le=50)  # past calls in the built-in `history` section (0: no section)

    @field_validator("dispositions", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> Any:
        return [{"id": d} if isinstance(d, str) else d for d in v] if isinstance(v, list) else v


class ConsoleConfig(Strict):
    """The agent console's settings: the new-customer link, and translations of the config's own words."""

    new_customer_url: str | None = Field(default=None, pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+(/|\?|#|$)")
    translations: dict[str, dict[str, str]] = Field(default_factory=dict)  # language -> English -> translated


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
    wrapup: WrapUpConfig = Field(default_factory=WrapUpConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)

    @model_validator(mode="after")
    def _unique(self) -> Config:
        """Agent ids and addresses are compared in canonical form (screenpop.names): `Alice` and `alice`, or
        `client:Alice` and `client:alice`, are the same, so two agents may not hold them."""
        problem = agent_collision(self.agents)
        if problem:
            raise ValueError(problem)
        names = [c.name for c in self.connectors]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"connector name(s) {sorted(dup)} appear more than once")
        sections = [c.section_name for c in self.connectors if c.role == "section"]
        dup = {n for n in sections if sections.count(n) > 1}
        if dup or CUSTOMER_SECTION in sections:
            taken = sorted(dup | ({CUSTOMER_SECTION} & set(sections)))
            raise ValueError(f"section name(s) {taken} used twice or reserved")
        for role in ("identity", "identity_fallback", "journal"):
            if sum(1 for c in self.connectors if c.role == role and c.enabled) > 1:
                raise ValueError(f"only one enabled connector may have role {role}")
        return self


def agent_collision(agents: list[AgentConfig]) -> str | None:
    """Why these agents cannot live together (an id twice, an address of two agents), compared in their
    canonical form (`screenpop.names`); None when they can."""
    seen: dict[str, str] = {}
    for a in agents:
        if canonical(a.id) in seen:
            other = seen[canonical(a.id)]
            if other == a.id:
                return f"agent id {a.id!r} appears twice"
            return f"agent id {a.id!r} is the same name as agent {other!r}"
        seen[canonical(a.id)] = a.id
    for a in agents:
        for what, values in (("extensions", a.extensions), ("addresses", a.addresses)):
            for addr in values:
                owner = seen.get(canonical(addr))
                if owner is not None and owner != a.id:
                    return f"{what}: address {addr!r} of agent {a.id!r} already belongs to {owner!r}"
                seen[canonical(addr)] = a.id
    return None


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
