"""JSON shapes of the service API, as IoT Hub's REST API returns them.

Key names follow the service SDK's models (``Device``, ``Module``, ``Twin``)
listed in the reference's §10.2.
"""

import base64
import uuid

from devhub import twins
from devhub.core import NEVER, registry_etag
from devhub.errors import DevHubError
from devhub.store import RegistryEntry, TelemetryRecord
from devhub.twins import JsonObject, ModuleTwin

_NO_THUMBPRINT: JsonObject = {"primaryThumbprint": None, "secondaryThumbprint": None}


def device_view(entry: RegistryEntry, *, connected: bool) -> JsonObject:
    """Return a device in IoT Hub's ``Device`` shape."""
    return {
        "deviceId": entry.identity.device_id,
        "generationId": entry.generation_id,
        "etag": registry_etag(entry),
        "connectionState": _state(connected),
        "status": entry.status,
        "statusReason": None,
        "connectionStateUpdatedTime": NEVER,
        "statusUpdatedTime": NEVER,
        "lastActivityTime": NEVER,
        "cloudToDeviceMessageCount": 0,
        "authentication": _authentication(entry),
        "capabilities": {"iotEdge": False},
    }


def module_view(entry: RegistryEntry, *, connected: bool) -> JsonObject:
    """Return a module in IoT Hub's ``Module`` shape."""
    return {
        "moduleId": entry.identity.module_id,
        "managedBy": None,
        "deviceId": entry.identity.device_id,
        "generationId": entry.generation_id,
        "etag": registry_etag(entry),
        "connectionState": _state(connected),
        "connectionStateUpdatedTime": NEVER,
        "lastActivityTime": NEVER,
        "cloudToDeviceMessageCount": 0,
        "authentication": _authentication(entry),
    }


def identity_view(entry: RegistryEntry, *, connected: bool) -> JsonObject:
    """Return a device or module view, whichever the entry is."""
    if entry.identity.module_id is None:
        return device_view(entry, connected=connected)
    return module_view(entry, connected=connected)


def twin_view(entry: RegistryEntry, twin: ModuleTwin, *, connected: bool) -> JsonObject:
    """Return a twin in IoT Hub's service ``Twin`` shape, with metadata."""
    view: JsonObject = {"deviceId": entry.identity.device_id}
    if entry.identity.module_id is not None:
        view["moduleId"] = entry.identity.module_id
    return view | {
        "etag": twin.etag,
        "deviceEtag": registry_etag(entry),
        "status": entry.status,
        "statusUpdateTime": NEVER,
        "connectionState": _state(connected),
        "lastActivityTime": NEVER,
        "cloudToDeviceMessageCount": 0,
        "authenticationType": "sas",
        "x509Thumbprint": dict(_NO_THUMBPRINT),
        "modelId": "",
        "version": twin.version,
        "tags": twin.tags,
        "properties": twins.service_properties(twin),
    }


def telemetry_view(record: TelemetryRecord) -> JsonObject:
    """Return a stored message: body text, system and custom properties.

    ``body`` is the UTF-8 text of the payload; if the payload is not valid
    UTF-8, ``body_base64`` carries its exact bytes as well.
    """
    view: JsonObject = {
        "body": record.body.decode("utf-8", errors="replace"),
        "message_id": record.system.get("message_id"),
        "content_type": record.system.get("content_type"),
        "content_encoding": record.system.get("content_encoding"),
        **{k: v for k, v in record.system.items() if k not in _MAIN_SYSTEM},
        "properties": record.properties,
        "enqueued_time": record.enqueued_time,
        "sequence_number": record.sequence_number,
        "device_id": record.device_id,
        "module_id": record.module_id,
    }
    if not _is_utf8(record.body):
        view["body_base64"] = base64.b64encode(record.body).decode("ascii")
    return view


def error_view(err: DevHubError) -> JsonObject:
    """Return IoT Hub's error body: ``{"Message", "ExceptionMessage"}``."""
    tracking = uuid.uuid4().hex
    return {
        "Message": f"ErrorCode:{err.error_code};{err}",
        "ExceptionMessage": f"Tracking ID:{tracking}-ErrorCode:{err.numeric_code}",
    }


_MAIN_SYSTEM = frozenset({"message_id", "content_type", "content_encoding"})


def _authentication(entry: RegistryEntry) -> JsonObject:
    return {
        "symmetricKey": {
            "primaryKey": entry.identity.primary_key,
            "secondaryKey": entry.identity.secondary_key,
        },
        "x509Thumbprint": dict(_NO_THUMBPRINT),
        "type": "sas",
    }


def _state(connected: bool) -> str:
    return "Connected" if connected else "Disconnected"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
