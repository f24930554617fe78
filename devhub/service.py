"""The service API over HTTPS: registry, twins, methods, telemetry.

Paths, status codes and the error body follow IoT Hub's REST API as the
``azure-iot-hub`` service SDK calls it (reference §10.2). Every request
needs an ``api-version`` IoT Hub knows; the dev hub serves all of them the
same way. ``/devhub/telemetry/...`` is specific to the dev hub: IoT Hub
itself hands telemetry to Event Hubs, not to a REST path.
"""

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from devhub import auth, views
from devhub.core import DEFAULT_METHOD_TIMEOUT_S, HubCore
from devhub.errors import BadRequest, DevHubError, Unauthorized
from devhub.store import RegistryEntry
from devhub.twins import JsonObject, ModuleTwin, parse_json_object

_LOGGER = logging.getLogger(__name__)

DEFAULT_TELEMETRY_LIMIT = 100
MAX_TELEMETRY_LIMIT = 10_000
# Service API versions of the REST reference and the SDKs (reference §10.2).
API_VERSIONS = frozenset(
    {"2018-06-30", "2019-10-01", "2020-03-13", "2020-09-30", "2021-04-12"}
)
_CORE: web.AppKey[HubCore] = web.AppKey("core", HubCore)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(core: HubCore) -> web.Application:
    """Return the aiohttp application serving ``core``."""
    app = web.Application(middlewares=[_errors, _authorize, _api_version])
    app[_CORE] = core
    routes = web.RouteTableDef()
    device = "/devices/{device_id}"
    module = device + "/modules/{module_id}"
    for path in (device, module):
        routes.put(path)(_put_identity)
        routes.get(path)(_get_identity)
        routes.delete(path)(_delete_identity)
    routes.get("/devices")(_list_devices)
    routes.get(device + "/modules")(_list_modules)
    for path in ("/twins/{device_id}", "/twins/{device_id}/modules/{module_id}"):
        routes.get(path)(_get_twin)
        routes.patch(path)(_patch_twin)
        routes.put(path)(_put_twin)
        routes.post(path + "/methods")(_invoke_method)
    routes.get("/devhub/telemetry/{device_id}")(_telemetry)
    routes.get("/devhub/telemetry/{device_id}/modules/{module_id}")(_telemetry)
    app.add_routes(routes)
    return app


@web.middleware
async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DevHubError as err:
        _LOGGER.info(
            "service request failed method=%s path=%s status=%s reason=%s",
            request.method,
            request.path,
            err.http_status,
            err,
        )
        return web.json_response(views.error_view(err), status=err.http_status)


@web.middleware
async def _authorize(request: web.Request, handler: _Handler) -> web.StreamResponse:
    core = request.app[_CORE]
    header = request.headers.get("Authorization", "")
    try:
        token = auth.parse_sas_token(header)
    except ValueError as err:
        raise Unauthorized(f"Authorization header is not a SAS token: {err}") from None
    key = core.policy_keys.get(token.key_name or "")
    if key is None:
        raise Unauthorized(f"policy skn={token.key_name!r} is unknown; use iothubowner")
    # The service SDK signs "https://" + HostName, so a client reaching the
    # dev hub at host:port puts the port in HostName and in sr (§10.1).
    hosts = (core.hostname, request.host)
    if not any(
        auth.scope_covers(token.resource_uri, f"{host}{request.path}") for host in hosts
    ):
        raise Unauthorized(
            f"token sr={token.resource_uri!r} does not cover "
            f"{core.hostname}{request.path}; sign for HostName={core.hostname}"
        )
    if token.expiry <= core.clock():
        raise Unauthorized(f"token expired at se={token.expiry}; mint a new one")
    if not auth.signature_matches(token, (key,)):
        raise Unauthorized("token signature does not match the policy key")
    return await handler(request)


@web.middleware
async def _api_version(request: web.Request, handler: _Handler) -> web.StreamResponse:
    version = request.query.get("api-version")
    if version not in API_VERSIONS:
        raise BadRequest(
            f"api-version={version!r} is not supported; "
            f"add ?api-version={max(API_VERSIONS)} to the URL"
        )
    return await handler(request)


async def _put_identity(request: web.Request) -> web.Response:
    core = request.app[_CORE]
    device_id, module_id = _ids(request)
    body = await _json_body(request, required=False)
    keys = _symmetric_keys(body)
    if_match = request.headers.get("If-Match")
    if if_match is None:
        # IoT Hub creates without If-Match (409 if it exists), updates with it.
        entry = core.add_identity(device_id, module_id, **keys)
    else:
        entry = core.update_identity(device_id, module_id, **keys, if_match=if_match)
    connected = core.is_connected(device_id, module_id)
    return _json(views.identity_view(entry, connected=connected))


async def _get_identity(request: web.Request) -> web.Response:
    core = request.app[_CORE]
    entry = core.get_identity(*_ids(request))
    return _json(
        views.identity_view(entry, connected=core.is_connected(*_ids(request)))
    )


async def _delete_identity(request: web.Request) -> web.Response:
    if_match = request.headers.get("If-Match")
    request.app[_CORE].delete_identity(*_ids(request), if_match=if_match)
    return web.Response(status=204)


async def _list_devices(request: web.Request) -> web.Response:
    core = request.app[_CORE]
    entries = core.store.list_identities()
    return _json([_with_state(core, e) for e in entries])


async def _list_modules(request: web.Request) -> web.Response:
    core = request.app[_CORE]
    device_id = request.match_info["device_id"]
    core.get_identity(device_id, None)
    entries = core.store.list_identities(device_id)
    return _json([_with_state(core, e) for e in entries])


async def _get_twin(request: web.Request) -> web.Response:
    core = request.app[_CORE]
    ids = _ids(request)
    twin = core.get_twin(*ids)
    return _json(_twin(core, ids, twin))


async def _patch_twin(request: web.Request) -> web.Response:
    core = request.app[_CORE]
    ids = _ids(request)
    body = await _json_body(request, required=True)
    if_match = request.headers.get("If-Match")
    twin = core.update_twin(*ids, body, if_match=if_match)
    return _json(_twin(core, ids, twin))


async def _put_twin(request: web.Request) -> web.Response:
    core = request.app[_CORE]
    ids = _ids(request)
    body = await _json_body(request, required=True)
    if_match = request.headers.get("If-Match")
    twin = core.replace_twin(*ids, body, if_match=if_match)
    return _json(_twin(core, ids, twin))


async def _invoke_method(request: web.Request) -> web.Response:
    core = request.app[_CORE]
    body = await _json_body(request, required=True)
    name = body.get("methodName")
    timeout_s = _default(body.get("responseTimeoutInSeconds"), DEFAULT_METHOD_TIMEOUT_S)
    connect_s = _default(body.get("connectTimeoutInSeconds"), 0)
    if not isinstance(name, str) or not all(
        isinstance(v, int | float) and not isinstance(v, bool)
        for v in (timeout_s, connect_s)
    ):
        raise BadRequest(
            "method call needs methodName (string) and numeric "
            "responseTimeoutInSeconds and connectTimeoutInSeconds; "
            "fix the request body"
        )
    status, payload = await core.invoke_method(
        *_ids(request),
        name,
        body.get("payload"),
        timeout_s=float(timeout_s),  # type: ignore[arg-type]
        connect_timeout_s=float(connect_s),  # type: ignore[arg-type]
    )
    return _json({"status": status, "payload": payload})


async def _telemetry(request: web.Request) -> web.Response:
    core = request.app[_CORE]
    raw = request.query.get("limit", str(DEFAULT_TELEMETRY_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TELEMETRY_LIMIT:
        raise BadRequest(f"limit={raw!r} is invalid; use 1 to {MAX_TELEMETRY_LIMIT}")
    after = request.query.get("after", "0")
    if not after.isdigit():
        raise BadRequest(f"after={after!r} is invalid; use a sequence number")
    records = core.telemetry(*_ids(request), limit=int(raw), after=int(after))
    return _json([views.telemetry_view(r) for r in records])


def _default(value: object, default: int) -> object:
    return default if value is None else value


def _ids(request: web.Request) -> tuple[str, str | None]:
    return request.match_info["device_id"], request.match_info.get("module_id")


def _twin(core: HubCore, ids: tuple[str, str | None], twin: ModuleTwin) -> JsonObject:
    entry = core.get_identity(*ids)
    return views.twin_view(entry, twin, connected=core.is_connected(*ids))


def _with_state(core: HubCore, entry: RegistryEntry) -> JsonObject:
    ident = entry.identity
    connected = core.is_connected(ident.device_id, ident.module_id)
    return views.identity_view(entry, connected=connected)


async def _json_body(request: web.Request, *, required: bool) -> JsonObject:
    raw = await request.read()
    if not raw.strip() and not required:
        return {}
    return parse_json_object(raw, what=f"{request.method} {request.path} body")


def _symmetric_keys(body: JsonObject) -> dict[str, str | None]:
    authentication = body.get("authentication")
    symmetric: object = {}
    if isinstance(authentication, dict):
        symmetric = authentication.get("symmetricKey") or {}
    if not isinstance(symmetric, dict):  # also narrows the type
        raise BadRequest("authentication.symmetricKey is not an object; send one")
    keys: dict[str, str | None] = {}
    for name, field in (
        ("primary_key", "primaryKey"),
        ("secondary_key", "secondaryKey"),
    ):
        value = symmetric.get(field) or None
        if value is not None and not _is_base64_key(value):
            raise BadRequest(f"{field} is not a base64 key; leave it empty to get one")
        keys[name] = value
    return keys


def _is_base64_key(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        auth.sign(value, "x", 0)
    except ValueError:
        return False
    return True


def _json(value: object) -> web.Response:
    return web.json_response(value)
