"""Errors pitwin raises, one tree for the whole product.

::

    PitwinError
     +-- ConfigError(ValueError)          config file or option is wrong
     +-- SensorError                      a sensor could not give a reading
     |    +-- SensorUnavailable           transient: retried with backoff
     |    +-- SensorMisconfigured(ValueError)  permanent: fix config or wiring
     +-- StorageError                     the state directory failed (disk full)
     +-- LinkError                        the link to the hub is down
     |    +-- LinkTimeout                 a call got no answer in time
     |    +-- AuthRefused                 the hub refused the credentials
     +-- TwinError                        module twin could not be synced
          +-- DesiredRejected(ValueError) one desired value refused (400)
          +-- HubRefused                  the hub answered with an error

Messages name the thing at fault, the value seen and, after ``; ``, the fix.
"""


class PitwinError(Exception):
    """Base class of every error pitwin raises on purpose."""


class ConfigError(PitwinError, ValueError):
    """The configuration file or a command-line option is wrong."""


class SensorError(PitwinError):
    """A sensor could not produce a reading."""


class SensorUnavailable(SensorError):
    """A transient sensor failure; the next read may succeed."""


class SensorMisconfigured(SensorError, ValueError):
    """A permanent sensor failure that retrying will not fix."""


class StorageError(PitwinError):
    """The state directory could not be read or written (disk full, I/O)."""


class LinkError(PitwinError):
    """The link to the hub is down or a call on it got no answer in time."""


class LinkTimeout(LinkError):
    """A call on the link got no answer in time; the client may be wedged."""


class AuthRefused(LinkError):
    """The hub refused the module's credentials at connect."""


class TwinError(PitwinError):
    """A module twin could not be read, written or applied."""


class DesiredRejected(TwinError, ValueError):
    """One desired property value was refused.

    Args:
        name: The property name as it appears in the twin.
        reason: A sentence a person can act on.
        status: The acknowledgement status to report (400 by default).
    """

    def __init__(self, name: str, reason: str, *, status: int = 400) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
        self.status = status


class HubRefused(TwinError):
    """The hub answered a twin request with an error status.

    Args:
        what: The request, e.g. ``reported patch``.
        status: The status the hub answered (429, 400, 5xx ...).
    """

    def __init__(self, what: str, status: int) -> None:
        super().__init__(f"{what} refused by the hub with status {status}")
        self.status = status
