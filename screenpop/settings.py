"""Service settings from the environment (prefix SCREENPOP_) or arguments.

Built by the CLI or by the caller of `create_app(settings)`; never at import time.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from screenpop.redisurl import SCHEMES as REDIS_SCHEMES


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="SCREENPOP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    bus_url: str = "memory://"
    state_url: str | None = None  # admin changes: sqlite:////path/state.db or postgresql://... (memory if unset)
    cache_url: str = "memory://"  # section cache: memory:// (per instance) or redis://... (shared)
    # the calls' shared state: memory:// (one instance) or redis://...; unset: the bus URL if it is Redis
    calls_url: str | None = None
    bus_prefix: str = Field(default="screenpop", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")  # channel names on the bus
    webhook_secret: SecretStr | None = None
    session_secret: SecretStr | None = None  # signs login tokens; set the same value on every instance
    session_ttl_s: int = Field(default=12 * 3600, gt=0)
    default_region: str = "US"
    config: str | None = None  # path of the YAML file with agents and connectors
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)  # more socket origins
    cookie_secure: bool = False  # set on HTTPS deployments
    call_ttl_s: int = Field(default=4 * 3600, gt=0)  # a call with no `ended` is dropped after this
    max_calls: int = Field(default=20_000, gt=0)
    demo: bool = False
    access_retention_days: float = Field(default=90, gt=0, le=3650)  # the access audit keeps rows this long
    # Twilio (telephony/twilio.py): the account's auth token validates X-Twilio-Signature
    twilio_auth_token: SecretStr | None = None
    twilio_public_url: str | None = None  # e.g. https://pop.example.com when behind a proxy
    twilio_redirect_url: str | None = None  # your own TwiML app: callers are redirected there
    # CTI connections, comma-separated, the adapter chosen by the scheme (screenpop/plugins.py):
    # ami://user:secret@host:5038 (Asterisk), esl://:password@host:8021 (FreeSWITCH)
    cti_urls: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    ami_url: SecretStr | None = None  # older single-connection settings, added after cti_urls
    esl_url: SecretStr | None = None
    # a cluster runs each CTI connection on one instance at a time (a lease in the bus's Redis): another
    # instance takes over within this many seconds after the holder dies (screenpop/lease.py)
    cti_lease_s: float = Field(default=10.0, ge=2, le=3600)
    # SIGTERM: seconds of failing /readyz and answering webhooks 503 before the port closes (the balancer
    # takes the instance out meanwhile), then at most shutdown_timeout_s for what is in flight
    drain_s: float = Field(default=2.0, ge=0, le=120)
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=600)
    # trust boundaries (docs/security.md)
    data_dirs: Annotated[list[str], NoDecode] = Field(default_factory=list)  # SQLite/CSV files only under these
    connector_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)  # outbound hosts / networks
    max_sockets_per_agent: int = Field(default=10, ge=1, le=1000)
    login_failures_per_user: int = Field(default=5, ge=1, le=1000)  # then the back-off doubles per failure
    login_failures_per_address: int = Field(default=20, ge=1, le=100_000)
    login_hashes_at_once: int = Field(default=2, ge=1, le=64)  # argon2 uses 64 MiB each
    log_level: str = "INFO"
    log_format: str = Field(default="auto", pattern="^(auto|json|text)$")  # auto: JSON unless on a terminal

    def calls_store_url(self) -> str:
        """SCREENPOP_CALLS_URL, else the bus URL when the bus is Redis (the instances share calls), else memory://."""
        if self.calls_url:
            return self.calls_url
        return self.bus_url if urlsplit(self.bus_url).scheme in REDIS_SCHEMES else "memory://"

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        import phonenumbers

        v = v.upper()
        if v not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {v!r}; expected a two-letter country code such as US or GB")
        return v

    @field_validator("cti_urls", mode="before")
    @classmethod
    def _cti_urls(cls, v: object) -> object:
        if isinstance(v, str):
            return [u.strip() for u in v.split(",") if u.strip()]
        return v

    def cti_connections(self) -> list[tuple[str, SecretStr]]:
        """Every CTI connection URL with the setting it comes from: SCREENPOP_CTI_URLS, then the older
        SCREENPOP_AMI_URL and SCREENPOP_ESL_URL."""
        found = [(f"SCREENPOP_CTI_URLS[{i}]", url) for i, url in enumerate(self.cti_urls)]
        older = (("SCREENPOP_AMI_URL", self.ami_url), ("SCREENPOP_ESL_URL", self.esl_url))
        found += [(name, url) for name, url in older if url is not None]
        return found

    @field_validator("data_dirs", "connector_allow", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, v: object) -> object:
        if isinstance(v, str):
            return [o.strip().rstrip("/") for o in v.split(",") if o.strip()]
        return v
