"""fleet's v1 discovery document (Google API discovery format), built from tables (pure).

fleet served this at ``/fleet/v1/discovery`` for client generators; like
fleet's, its ``rootUrl`` is a placeholder the client replaces.
"""

from __future__ import annotations

from functools import cache
from typing import Any

_STRING = {"type": "string"}
_STATES = {"type": "string", "enum": ["inactive", "loaded", "launched"]}


def _obj(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def _array(ref: str) -> dict[str, Any]:
    return {"type": "array", "items": {"$ref": ref}}


def _page(item: str, field: str) -> dict[str, Any]:
    return _obj(**{field: _array(item), "nextPageToken": _STRING})


_SCHEMAS: dict[str, dict[str, Any]] = {
    "Machine": _obj(
        id=_STRING,
        primaryIP=_STRING,
        metadata={"type": "object", "additionalProperties": _STRING},
    ),
    "MachinePage": _page("Machine", "machines"),
    "UnitOption": _obj(section=_STRING, name=_STRING, value=_STRING),
    "Unit": _obj(
        name=_STRING,
        options=_array("UnitOption"),
        desiredState=_STATES,
        currentState=_STATES,
        machineID=_STRING,
    ),
    "UnitPage": _page("Unit", "units"),
    "UnitState": _obj(
        name=_STRING,
        hash=_STRING,
        machineID=_STRING,
        systemdLoadState=_STRING,
        systemdActiveState=_STRING,
        systemdSubState=_STRING,
    ),
    "UnitStatePage": _page("UnitState", "states"),
}

_TOKEN = {"nextPageToken": {"type": "string", "location": "query"}}
_NAME = {"unitName": {"type": "string", "location": "path", "required": True}}

# resource -> method -> (http method, path, description, parameters, request, response)
_METHODS: dict[str, dict[str, tuple[str, str, str, dict[str, Any], str | None, str | None]]] = {
    "Machines": {
        "List": (
            "GET",
            "machines",
            "Retrieve a page of Machine objects.",
            _TOKEN,
            None,
            "MachinePage",
        ),
    },
    "Units": {
        "List": ("GET", "units", "Retrieve a page of Unit objects.", _TOKEN, None, "UnitPage"),
        "Get": ("GET", "units/{unitName}", "Retrieve a single Unit object.", _NAME, None, "Unit"),
        "Delete": (
            "DELETE",
            "units/{unitName}",
            "Delete the referenced Unit object.",
            _NAME,
            None,
            None,
        ),
        "Set": ("PUT", "units/{unitName}", "Create or update a Unit.", _NAME, "Unit", None),
    },
    "UnitState": {
        "List": (
            "GET",
            "state",
            "Retrieve a page of UnitState objects.",
            {
                **_TOKEN,
                "unitName": {"type": "string", "location": "query"},
                "machineID": {"type": "string", "location": "query"},
            },
            None,
            "UnitStatePage",
        ),
    },
}


@cache
def _document() -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for resource, methods in _METHODS.items():
        entries: dict[str, Any] = {}
        for method, (http, path, text, params, request, response) in methods.items():
            entry: dict[str, Any] = {
                "id": f"fleet.{resource}.{method}",
                "description": text,
                "httpMethod": http,
                "path": path,
                "parameters": params,
            }
            if "unitName" in params and params["unitName"].get("location") == "path":
                entry["parameterOrder"] = ["unitName"]
            if request:
                entry["request"] = {"$ref": request}
            if response:
                entry["response"] = {"$ref": response}
            entries[method] = entry
        resources[resource] = {"methods": entries}
    return {
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": "fleet:v1",
        "name": "schema",
        "version": "v1",
        "title": "fleet API",
        "description": "fleetd's fleet-compatible v1 API",
        "protocol": "rest",
        "baseUrl": "$ENDPOINT/fleet/v1/",
        "basePath": "/fleet/v1/",
        "rootUrl": "$ENDPOINT/",
        "servicePath": "fleet/v1/",
        "batchPath": "batch",
        "parameters": {},
        "auth": {},
        "schemas": {name: {"id": name, **schema} for name, schema in _SCHEMAS.items()},
        "resources": resources,
    }


def discovery_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may not mutate the cached one)."""
    import copy

    return copy.deepcopy(_document())
