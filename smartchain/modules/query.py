"""HTTP queries a module declares next to its handlers; the API serves and documents them.

A module's ``queries.py`` lists ``HttpQuery`` declarations (path, parameters, a handler over
a read-only state view, the response schema, summary, tag, operationId) and the component
schemas they name. ``smartchain/app.py`` collects them from the module list; the API builds
its routes and its OpenAPI document from that collection, so adding a query touches only
the module's folder. Nothing here imports the web framework.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from smartchain.crypto.address import AddressError, from_bech32
from smartchain.state.store import StateReader

# --- schema pieces shared by the core routes and the modules' queries -----------------------

HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
UNITS = {"type": "string", "pattern": "^[0-9]+$",
         "description": "integer base units (1 HPC = 10^8)"}
ADDRESS = {"type": "string", "format": "smart-address", "pattern": "^smart1[02-9ac-hj-np-z]{38}$",
           "description": "bech32 (with a valid checksum)"}
U64 = {"type": "string", "pattern": "^[0-9]+$", "description": "unsigned 64-bit integer"}
U64_INT = {"type": "integer", "minimum": 0, "maximum": (1 << 64) - 1}
FLAG = {"enum": ["0", "1", "true", "false"]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_body(description: str) -> dict[str, Any]:
    return json_body(ref("Error"), description)


class QueryError(Exception):
    """A client error: the API answers ``{"error": {"code", "message", "details"?}}`` with
    ``status``; ``code`` is one of ``smartchain.jsoncontract.ERROR_CODES``."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


# --- parameter parsers: text in, value out, or a QueryError (400) ---------------------------


def parse_address(text: str) -> bytes:
    try:
        return from_bech32(text)
    except AddressError as exc:
        raise QueryError(400, "invalid_address", str(exc)) from exc


def parse_u64(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isascii() or not text.isdigit() or len(text) > 20 or int(text) >= 1 << 64:
            raise QueryError(400, "malformed", f"{what} must be a non-negative integer")
        return int(text)
    return parse


def parse_hex32(what: str) -> Callable[[str], bytes]:
    def parse(text: str) -> bytes:
        try:
            raw = binascii.unhexlify(text)
        except (binascii.Error, ValueError) as exc:
            raise QueryError(400, "malformed", f"{what} must be 64 hex characters") from exc
        if len(raw) != 32:
            raise QueryError(400, "malformed", f"{what} must be 64 hex characters")
        return raw
    return parse


def parse_flag(name: str) -> Callable[[str], bool]:
    def parse(text: str) -> bool:
        if text not in ("0", "1", "true", "false"):
            raise QueryError(400, "malformed", f"{name} must be 0 or 1")
        return text in ("1", "true")
    return parse


@dataclass(frozen=True, slots=True)
class Param:
    """A path parameter, or (``where="query"``) a query-string one."""

    name: str
    schema: Mapping[str, Any]
    parse: Callable[[str], Any]
    where: str = "path"
    default: str | None = None  # an optional query parameter's value when absent
    missing: str = ""  # the message when a required query parameter is absent
    description: str = ""

    def value(self, given: str | None) -> Any:
        if given is None or (given == "" and self.where == "query" and self.default is None):
            if self.default is None:  # a required one given empty counts as absent
                raise QueryError(400, "malformed", self.missing or f"give ?{self.name}=")
            given = self.default
        return self.parse(given)

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "in": self.where,
                               "required": self.where == "path" or self.default is None,
                               "schema": dict(self.schema)}
        if self.description:
            out["description"] = self.description
        return out


Handler = Callable[[StateReader, dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class HttpQuery:
    """One read-only GET operation over the latest committed state."""

    path: str
    operation_id: str
    tag: str
    summary: str
    handler: Handler  # (state view, parsed parameters) -> the JSON body; QueryError for 4xx
    response: Mapping[str, Any]  # schema of the 200 body
    response_description: str
    params: tuple[Param, ...] = ()
    errors: Mapping[int, str] = field(default_factory=dict)  # status -> when

    def parse(self, path: Mapping[str, str], query: Mapping[str, str]) -> dict[str, Any]:
        """Every parameter parsed in declaration order (the first bad one answers)."""
        return {p.name: p.value(path[p.name] if p.where == "path" else query.get(p.name))
                for p in self.params}

    def spec(self) -> dict[str, Any]:
        """Its OpenAPI operation object."""
        op: dict[str, Any] = {"operationId": self.operation_id, "tags": [self.tag],
                              "summary": self.summary}
        if self.params:
            op["parameters"] = [p.spec() for p in self.params]
        responses = {"200": json_body(dict(self.response), self.response_description)}
        responses.update({str(s): error_body(d) for s, d in sorted(self.errors.items())})
        op["responses"] = responses
        return op


@dataclass(frozen=True, slots=True)
class ModuleApi:
    """What a module adds to the node API: its queries and the schemas they name."""

    queries: tuple[HttpQuery, ...]
    schemas: Mapping[str, Any] = field(default_factory=dict)
