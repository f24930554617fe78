"""Errors the dev hub and its service client raise.

::

    PitwinError (agent.errors)
     +-- DevHubError                             a dev hub operation failed
          +-- BadRequest(.., ValueError)         400: malformed input
          |    +-- TwinRuleError                 400: a twin patch breaks a rule
          +-- Unauthorized                       401: missing or wrong SAS token
          +-- IdentityNotFound(.., LookupError)  404: no such device or module
          +-- DeviceNotOnline                    404: method target not listening
          +-- IdentityExists                     409: device or module exists
          +-- PreconditionFailed                 412: If-Match does not match
          +-- TooManyModules                     413: the device has 50 modules
          +-- MessageTooLarge                    413: a method payload over 128 KB
          +-- Throttled                          429: a fault knob throttled it
          +-- MethodTimeout                      504: module did not answer in time
          +-- ServiceError                       the service API answered an error
          +-- HubNotRunning                      no running dev hub was found

Each hub-side error carries the HTTP status and the IoT Hub error code that the
service API reports for it (IoT Hub troubleshooting guide, error code table).
Messages name the thing at fault, the value seen and, after ``; ``, the fix.
"""

from agent.errors import PitwinError


class DevHubError(PitwinError):
    """Base class of every error the dev hub raises on purpose.

    Args:
        message: One line naming the thing at fault and the fix.
        error_code: IoT Hub's name for the error, e.g. ``DeviceNotFound``.
    """

    http_status = 500
    error_code = "ServerError"
    numeric_code = 500001

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        if error_code is not None:
            self.error_code = error_code


class BadRequest(DevHubError, ValueError):
    """The request or packet is malformed."""

    http_status = 400
    error_code = "ArgumentInvalid"
    numeric_code = 400004


class TwinRuleError(BadRequest):
    """A twin patch breaks a documented twin rule (names, depth, sizes)."""

    error_code = "ArgumentInvalid"


class Unauthorized(DevHubError):
    """The SAS token is missing, malformed, expired or wrongly signed."""

    http_status = 401
    error_code = "IotHubUnauthorizedAccess"
    numeric_code = 401002


class IdentityNotFound(DevHubError, LookupError):
    """The device or module is not in the registry."""

    http_status = 404
    error_code = "DeviceNotFound"
    numeric_code = 404001


class DeviceNotOnline(DevHubError):
    """A direct method target is offline or not subscribed to methods."""

    http_status = 404
    error_code = "DeviceNotOnline"
    numeric_code = 404103


class IdentityExists(DevHubError):
    """The device or module already exists."""

    http_status = 409
    error_code = "DeviceAlreadyExists"
    numeric_code = 409001


class PreconditionFailed(DevHubError):
    """The If-Match etag does not match the current one."""

    http_status = 412
    error_code = "PreconditionFailed"
    numeric_code = 412001


class TooManyModules(DevHubError):
    """The device already has the most modules IoT Hub allows (50)."""

    http_status = 413
    error_code = "TooManyModulesOnDevice"
    numeric_code = 413003


class MessageTooLarge(DevHubError):
    """A direct-method request or response payload is over 128 KB."""

    http_status = 413
    error_code = "MessageTooLarge"
    numeric_code = 413002


class Throttled(DevHubError):
    """The request is refused as over a throttle (only via fault knobs)."""

    http_status = 429
    error_code = "ThrottlingException"
    numeric_code = 429001


class MethodTimeout(DevHubError):
    """The module did not answer a direct method within its timeout."""

    http_status = 504
    error_code = "GatewayTimeout"
    numeric_code = 504101


class ServiceError(DevHubError):
    """The dev hub's service API answered with an error.

    Args:
        message: One line naming the request, the answer and the fix.
        status: The HTTP status, or 0 when no answer came.
        error_code: IoT Hub's name for the error, if the answer gave one.
    """

    def __init__(self, message: str, *, status: int = 0, error_code: str = "") -> None:
        super().__init__(message, error_code=error_code or None)
        self.status = status


class HubNotRunning(DevHubError):
    """No running dev hub was found (no service.json in the state dir)."""
