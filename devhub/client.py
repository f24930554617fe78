"""A synchronous client of the dev hub's service API (standard library only).

It runs wherever the ``pitwin`` CLI runs, the Pi included, so it imports
neither aiohttp nor cryptography. A running hub leaves ``service.json`` in
its state dir; ``load_service_info`` reads it.
"""

import json
import os
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from devhub.auth import mint_sas_token, parse_connection_string
from devhub.errors import HubNotRunning, ServiceError

__all__ = [
    "ServiceClient",
    "ServiceError",
    "ServiceInfo",
    "default_state_dir",
    "load_service_info",
]

SERVICE_FILE = "service.json"
API_VERSION = "2021-04-12"
TOKEN_TTL_S = 3600
REQUEST_TIMEOUT_S = 10.0
# Method calls wait for the module; allow its timeout plus a margin.
METHOD_MARGIN_S = 10.0
JsonValue = dict[str, object] | list[object]


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """How to reach a running dev hub, as written in its service.json."""

    url: str
    connection_string: str
    ca_path: Path
    mqtt_host: str
    hostname: str = "devhub.local"


def default_state_dir() -> Path:
    """Return ``$PITWIN_HUB_DIR``, else the XDG state dir for the dev hub."""
    explicit = os.environ.get("PITWIN_HUB_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "pitwin" / "devhub"


def load_service_info(state_dir: Path | None = None) -> ServiceInfo:
    """Read the service.json of a running dev hub.

    Args:
        state_dir: The hub's state dir; ``default_state_dir()`` if None.

    Raises:
        HubNotRunning: No service.json, or it is unreadable.
    """
    path = (state_dir or default_state_dir()) / SERVICE_FILE
    try:
        info = json.loads(path.read_text())
        return ServiceInfo(
            url=info["url"],
            connection_string=info["connection_string"],
            ca_path=Path(info["ca_path"]),
            mqtt_host=info["mqtt_host"],
            hostname=info.get("hostname", "devhub.local"),
        )
    except FileNotFoundError:
        raise HubNotRunning(
            f"no dev hub is running: {path} does not exist; "
            "start one with 'pitwin hub' or 'pitwin demo', or set PITWIN_HUB_DIR"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise HubNotRunning(
            f"{path} is unreadable ({err!r}); restart the dev hub to rewrite it"
        ) from None


class ServiceClient:
    """Calls the dev hub's IoT-Hub-shaped REST API.

    Args:
        url: Base URL, e.g. ``https://127.0.0.1:8443``.
        connection_string: A service connection string (policy name + key).
        ca_path: The dev hub's CA certificate; TLS is verified against it.
        timeout_s: Per-request timeout.

    Raises:
        ValueError: The connection string lacks HostName or the policy key.
    """

    def __init__(
        self,
        url: str,
        connection_string: str,
        ca_path: Path | str,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        fields = parse_connection_string(connection_string)
        needed = ("HostName", "SharedAccessKeyName", "SharedAccessKey")
        missing = [name for name in needed if name not in fields]
        if missing:
            raise ValueError(
                f"service connection string lacks {', '.join(missing)}; "
                "copy it from the dev hub's service.json"
            )
        self._url = url.rstrip("/")
        self._hostname = fields["HostName"]
        self._key_name = fields["SharedAccessKeyName"]
        self._key = fields["SharedAccessKey"]
        self._context = ssl.create_default_context(cafile=str(ca_path))
        self._timeout_s = timeout_s

    @classmethod
    def from_service_info(cls, info: ServiceInfo) -> "ServiceClient":
        """Return a client for the hub that wrote ``info``."""
        return cls(info.url, info.connection_string, info.ca_path)

    def add_device(self, device_id: str) -> dict[str, object]:
        """Register a device with generated keys; return it."""
        return self._object(
            "PUT", f"/devices/{_seg(device_id)}", {"deviceId": device_id}
        )

    def add_module(self, device_id: str, module_id: str) -> dict[str, object]:
        """Register a module with generated keys; return it."""
        body = {"deviceId": device_id, "moduleId": module_id}
        return self._object("PUT", _module_path(device_id, module_id), body)

    def get_device(self, device_id: str) -> dict[str, object]:
        """Return one device."""
        return self._object("GET", f"/devices/{_seg(device_id)}")

    def get_module(self, device_id: str, module_id: str) -> dict[str, object]:
        """Return one module."""
        return self._object("GET", _module_path(device_id, module_id))

    def delete_device(self, device_id: str) -> None:
        """Delete a device and its modules."""
        self._request("DELETE", f"/devices/{_seg(device_id)}")

    def delete_module(self, device_id: str, module_id: str) -> None:
        """Delete a module."""
        self._request("DELETE", _module_path(device_id, module_id))

    def list_devices(self) -> list[object]:
        """Return every device."""
        return self._list("GET", "/devices")

    def list_modules(self, device_id: str) -> list[object]:
        """Return the modules of a device."""
        return self._list("GET", f"/devices/{_seg(device_id)}/modules")

    def get_module_twin(self, device_id: str, module_id: str) -> dict[str, object]:
        """Return a module twin in IoT Hub's service shape."""
        return self._object("GET", _twin_path(device_id, module_id))

    def update_module_twin(
        self, device_id: str, module_id: str, patch: dict[str, object]
    ) -> dict[str, object]:
        """PATCH tags and/or desired properties; return the full twin.

        Args:
            device_id: The device.
            module_id: The module.
            patch: ``{"properties": {"desired": {...}}, "tags": {...}}``.
        """
        path = _twin_path(device_id, module_id)
        return self._object("PATCH", path, patch, headers={"If-Match": '"*"'})

    def replace_module_twin(
        self, device_id: str, module_id: str, twin: dict[str, object]
    ) -> dict[str, object]:
        """PUT tags and/or desired properties whole; return the full twin."""
        path = _twin_path(device_id, module_id)
        return self._object("PUT", path, twin, headers={"If-Match": '"*"'})

    def invoke_method(
        self,
        device_id: str,
        module_id: str,
        name: str,
        payload: object = None,
        *,
        timeout_s: int = 30,
        connect_timeout_s: int = 0,
    ) -> dict[str, object]:
        """Call a direct method; return ``{"status", "payload"}``."""
        body = {
            "methodName": name,
            "payload": payload,
            "responseTimeoutInSeconds": timeout_s,
            "connectTimeoutInSeconds": connect_timeout_s,
        }
        path = _twin_path(device_id, module_id) + "/methods"
        wait_s = timeout_s + connect_timeout_s + METHOD_MARGIN_S
        return self._object("POST", path, body, timeout_s=wait_s)

    def telemetry(
        self, device_id: str, module_id: str, *, limit: int = 20, after: int = 0
    ) -> list[object]:
        """Return the module's newest ``limit`` messages, oldest first.

        Only messages with a ``sequence_number`` above ``after`` count.
        """
        path = f"/devhub/telemetry/{_seg(device_id)}/modules/{_seg(module_id)}"
        return self._list("GET", f"{path}?limit={limit}&after={after}")

    def _object(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, object]:
        value = self._request(method, path, body, headers=headers, timeout_s=timeout_s)
        if not isinstance(value, dict):
            raise ServiceError(f"{method} {path}: expected a JSON object", status=200)
        return value

    def _list(self, method: str, path: str) -> list[object]:
        value = self._request(method, path)
        if not isinstance(value, list):
            raise ServiceError(f"{method} {path}: expected a JSON list", status=200)
        return value

    def _request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> object:
        separator = "&" if "?" in path else "?"
        url = f"{self._url}{path}{separator}api-version={API_VERSION}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", self._token())
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json; charset=utf-8")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(
                request, timeout=timeout_s or self._timeout_s, context=self._context
            ) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise _service_error(method, path, err) from None
        except (urllib.error.URLError, OSError) as err:
            raise ServiceError(
                f"{method} {path}: no answer from {self._url} ({err}); "
                "is the dev hub running? start it with 'pitwin hub'"
            ) from err
        return json.loads(raw) if raw.strip() else None

    def _token(self) -> str:
        expiry = int(time.time()) + TOKEN_TTL_S
        return mint_sas_token(
            self._hostname, self._key, expiry=expiry, key_name=self._key_name
        )


def _service_error(method: str, path: str, err: urllib.error.HTTPError) -> ServiceError:
    raw = err.read()
    code, message = "", raw.decode("utf-8", errors="replace").strip()
    try:
        body = json.loads(raw)
        # IoT Hub's error body: {"Message": "ErrorCode:<code>;<text>", ...}.
        head, _, text = str(body["Message"]).partition(";")
        code, message = head.removeprefix("ErrorCode:"), text or head
    except (ValueError, KeyError, TypeError):
        pass
    return ServiceError(
        f"{method} {path}: {err.code} {code or err.reason}: {message}",
        status=err.code,
        error_code=code,
    )


def _seg(value: str) -> str:
    return quote(value, safe="")


def _module_path(device_id: str, module_id: str) -> str:
    return f"/devices/{_seg(device_id)}/modules/{_seg(module_id)}"


def _twin_path(device_id: str, module_id: str) -> str:
    return f"/twins/{_seg(device_id)}/modules/{_seg(module_id)}"
