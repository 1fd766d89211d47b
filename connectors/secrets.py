"""What of a connector's options is secret, by declaration: masking for display, restoring on write-back.

A kind's `Options` model declares its secrets (see `ConnectorOptions` in connectors.base):

    SecretStr fields        always secret (also inside nested models, such as the http kind's `auth`)
    SECRET_URLS             fields holding a URL: its userinfo (the password, or the user when there is no
                            password) and every query parameter value are secret, except the parameters
                            named in PUBLIC_PARAMS or in the options' own `public_params` list
    SECRET_MAPS             fields holding a name -> value mapping (headers): every value is secret, except
                            the names in PUBLIC_HEADERS or in the options' own `public_headers` list

A value made only of lookup placeholders (`{phone}`) is never secret: it is filled per call.

`redact` gives the options as an administrator may see them, every secret replaced by MASK; options that do
not validate (an unknown kind, an older version's) have every string replaced. `restore` puts the stored
secret back wherever the administrator sent MASK unchanged, but only while every URL field still points at
the same destination (scheme, host, port): a secret is never sent somewhere else than where it was meant
to go. Otherwise it raises SecretKept naming the field, and the administrator enters the secret again.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from pydantic import BaseModel, SecretStr

if TYPE_CHECKING:
    from connectors.base import ConnectorOptions

__all__ = ["MASK", "SecretKept", "destination", "redact", "restore"]

MASK = "********"
_ONLY_PLACEHOLDERS = re.compile(r"^(\{[a-z_]+\})+$")
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306}


class SecretKept(ValueError):
    """A masked secret cannot be kept: the destination changed, or nothing is stored at that place."""


def _public_value(value: str) -> bool:
    return value == "" or bool(_ONLY_PLACEHOLDERS.match(value))


def _names(raw: dict[str, Any], key: str, declared: Iterable[str]) -> set[str]:
    listed = raw.get(key)
    names = {n.lower() for n in declared}
    if isinstance(listed, list):
        names |= {str(n).lower() for n in listed}
    return names


def mask_url(url: str, public_params: set[str]) -> str:
    """The URL with its userinfo secret and every query value not named in `public_params` masked."""
    try:
        u = urlsplit(url)
        if not u.scheme:
            return url
        host = u.netloc.rpartition("@")[2]
        user, password = u.username, u.password
    except ValueError:
        return MASK
    if password is None and not user and not u.query:
        return url
    netloc = host
    if password is not None:
        netloc = f"{quote(user or '', safe='')}:{MASK}@{host}"
    elif user:
        netloc = f"{MASK}@{host}"
    query = u.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, v if k.lower() in public_params or _public_value(v) else MASK) for k, v in pairs],
                          safe="{}*")
    return _join(u.scheme, netloc, u.path, query, u.fragment)


def _join(scheme: str, netloc: str, path: str, query: str, fragment: str) -> str:
    """A URL from its parts, as written (urlunsplit would drop the empty host of sqlite:////path)."""
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")


def _mask_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_all(v) for v in value]
    if isinstance(value, str):
        return MASK
    return value


def _mask_secret_fields(model: BaseModel, raw: Any) -> None:
    """Replace in `raw` (the options as written) every value that is a SecretStr in the validated model."""
    if not isinstance(raw, dict):
        return
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        if name not in raw:
            continue
        if isinstance(value, SecretStr):
            raw[name] = MASK
        elif isinstance(value, BaseModel):
            _mask_secret_fields(value, raw[name])


def redact(options_cls: type[ConnectorOptions] | None, raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of the options with every declared secret replaced by MASK (everything, if they do not validate)."""
    if options_cls is None:
        return {k: _mask_all(v) for k, v in raw.items()}
    try:
        model = options_cls.model_validate(raw)
    except Exception:  # invalid or refused: show no value at all
        return {k: _mask_all(v) for k, v in raw.items()}
    out = copy.deepcopy(raw)
    _mask_secret_fields(model, out)
    params = _names(raw, "public_params", options_cls.PUBLIC_PARAMS)
    for field in options_cls.SECRET_URLS:
        if isinstance(out.get(field), str):
            out[field] = mask_url(out[field], params)
    headers = _names(raw, "public_headers", options_cls.PUBLIC_HEADERS)
    for field in options_cls.SECRET_MAPS:
        mapping = out.get(field)
        if isinstance(mapping, dict):
            out[field] = {k: v if not isinstance(v, str) or k.lower() in headers or _public_value(v) else MASK
                          for k, v in mapping.items()}
    return out


def destination(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, lower case, the scheme's default port filled in."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        return ("", url, None)
    scheme = u.scheme.lower().partition("+")[0]
    return (scheme, (u.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme))


def _restore_url(new: str, old: str, where: str) -> str:
    """`new` with its masked userinfo and query values taken from `old`."""
    try:
        n, o = urlsplit(new), urlsplit(old)
        n_user, n_pass, o_user, o_pass = n.username, n.password, o.username, o.password
    except ValueError:
        raise SecretKept(f"{where}: not a URL; enter it again in full") from None
    host = n.netloc.rpartition("@")[2]
    netloc = n.netloc
    if n_pass == MASK:
        if o_pass is None:
            raise SecretKept(f"{where}: the password is {MASK} but none is stored; enter it")
        netloc = f"{quote(n_user or '', safe='')}:{quote(o_pass, safe='')}@{host}"
    elif n_user == MASK and n_pass is None:
        if not o_user:
            raise SecretKept(f"{where}: the user is {MASK} but none is stored; enter it")
        netloc = f"{quote(o_user, safe='')}@{host}"
    query = n.query
    if MASK in query or "%2A%2A%2A%2A" in query:
        olds = dict(parse_qsl(o.query, keep_blank_values=True))
        pairs = []
        for k, v in parse_qsl(query, keep_blank_values=True):
            if v == MASK:
                if k not in olds:
                    raise SecretKept(f"{where}: query parameter {k!r} is {MASK} but no value is stored; enter it")
                v = olds[k]
            pairs.append((k, v))
        query = urlencode(pairs, safe="{}")
    return _join(n.scheme, netloc, n.path, query, n.fragment)


def _restore(new: Any, old: Any, where: str, restored: list[str]) -> Any:
    if isinstance(new, dict):
        olds = old if isinstance(old, dict) else {}
        return {k: _restore(v, olds.get(k), f"{where}.{k}", restored) for k, v in new.items()}
    if isinstance(new, list):
        olds_l = old if isinstance(old, list) else []
        return [_restore(v, olds_l[i] if i < len(olds_l) else None, f"{where}[{i}]", restored)
                for i, v in enumerate(new)]
    if isinstance(new, str) and MASK in new:
        if not isinstance(old, str):
            raise SecretKept(f"{where}: holds {MASK} but no secret is stored there; enter the value")
        restored.append(where)
        if new == MASK:
            return old
        if "://" in new:
            return _restore_url(new, old, where)
    return new


def restore(options_cls: type[ConnectorOptions] | None, new: dict[str, Any],
            old: dict[str, Any] | None, where: str = "options") -> dict[str, Any]:
    """`new` options with every MASK replaced by the stored secret at the same place.

    Raises SecretKept when a MASK has nothing stored behind it, or when a URL field (the kind's SECRET_URLS)
    now points at another scheme, host or port than the stored one: the secret must then be entered again.
    """
    restored: list[str] = []
    out = _restore(new, old or {}, where, restored)
    if restored and old is not None and options_cls is not None:
        for field in options_cls.SECRET_URLS:
            was, now = old.get(field), new.get(field)
            if isinstance(was, str) and isinstance(now, str) and destination(was) != destination(now):
                s, h, p = destination(now)
                raise SecretKept(f"{restored[0]}: the stored secret is kept only while {where}.{field} points at "
                                 f"the same scheme, host and port; it now points at {s}://{h}:{p}, so enter "
                                 "the secret again")
    if not isinstance(out, dict):  # pragma: no cover - new is a dict
        raise SecretKept(f"{where}: expected a mapping")
    return out
