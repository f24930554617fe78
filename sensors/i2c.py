"""One chip on an I2C bus: opening the bus, retries, and errors with a fix.

The bus is anything with the :class:`I2CBus` methods; ``smbus2.SMBus``
has them, and tests pass a register-level fake. ``smbus2`` is imported only
when a driver opens a real bus.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from sensors.base import Clock, SensorMisconfigured, SensorUnavailable
from sensors.blocking import BlockingCalls
from sensors.part import BlockingSensor

if TYPE_CHECKING:
    from smbus2 import i2c_msg

__all__ = ["TRANSIENT_ERRNOS", "I2CBus", "I2CChip", "I2CSensor", "check_address"]

_T = TypeVar("_T")

# What a failed transfer's errno means on an I2C bus (Linux kernel,
# Documentation/i2c/fault-codes.rst). The Pi's i2c-bcm2835 reports a missing
# ACK as EREMOTEIO; other adapters use ENXIO. All are worth a quick retry: a
# loose wire or a chip still powering up answers a moment later.
TRANSIENT_ERRNOS: dict[int, str] = {
    errno.EREMOTEIO: "no reply",
    errno.ENXIO: "no reply",
    errno.EIO: "I/O error",
    errno.ETIMEDOUT: "bus timed out",
}
ATTEMPTS = 3
RETRY_PAUSE_S = 0.01
_INSTALL_HINT = "install the Pi extras: pip install 'pitwin[pi]'"


class I2CBus(Protocol):
    """The part of ``smbus2.SMBus`` the drivers use."""

    def write_byte(self, i2c_addr: int, value: int) -> None:
        """Send one byte (a command) to the chip at ``i2c_addr``."""
        ...

    def read_byte(self, i2c_addr: int) -> int:
        """Read one byte from the chip at ``i2c_addr``."""
        ...

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int]
    ) -> None:
        """Write ``data`` to consecutive registers from ``register``."""
        ...

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int
    ) -> list[int]:
        """Read ``length`` bytes from consecutive registers."""
        ...

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        """Run plain I2C messages as one combined transaction."""
        ...

    def close(self) -> None:
        """Release the bus device."""
        ...


def check_address(address: int, allowed: Sequence[int], part: str) -> None:
    """Raise unless ``address`` is one the part can be strapped to.

    Raises:
        SensorMisconfigured: The address is not in ``allowed``.
    """
    if address not in allowed:
        choices = " or ".join(f"0x{a:02x}" for a in allowed)
        raise SensorMisconfigured(
            f"option 'address' = 0x{address:02x} is not an address of the "
            f"{part}; use {choices}"
        )


class I2CChip:
    """A chip at one address on one bus; its calls block (use a thread).

    Args:
        part: The part's name, e.g. ``BH1750``.
        bus_number: N of ``/dev/i2c-N``.
        address: The chip's 7-bit address.
        clock: Sleeps between retries.
        bus: An open bus to use instead of opening ``/dev/i2c-N``; the
            chip never closes a bus it was given.
    """

    def __init__(
        self,
        part: str,
        bus_number: int,
        address: int,
        *,
        clock: Clock,
        bus: I2CBus | None = None,
    ) -> None:
        self.bus_number = bus_number
        self.address = address
        self.device = f"/dev/i2c-{bus_number}"
        self.name = f"{part} on I2C 0x{address:02x} {self.device}"
        self._clock = clock
        self._given = bus
        self._bus: I2CBus | None = bus

    def open(self) -> None:
        """Open ``/dev/i2c-N`` unless a bus was given or is open.

        Raises:
            SensorMisconfigured: The bus device is missing or not
                permitted, or ``smbus2`` is not installed.
        """
        if self._bus is not None:
            return
        try:
            from smbus2 import SMBus
        except ModuleNotFoundError as err:
            raise SensorMisconfigured(
                f"{self.name}: needs the Python module {err.name!r}, which "
                f"is not installed; {_INSTALL_HINT}"
            ) from err
        try:
            self._bus = SMBus(self.bus_number)
        except FileNotFoundError:
            raise SensorMisconfigured(
                f"{self.name}: {self.device} does not exist; enable I2C "
                "(sudo raspi-config nonint do_i2c 0) and reboot, or set "
                "i2c_bus to a bus that i2cdetect -l lists"
            ) from None
        except PermissionError:
            raise SensorMisconfigured(
                f"{self.name}: no permission to open {self.device}; add the "
                "service user to the i2c group (sudo usermod -aG i2c USER) "
                "and restart the service"
            ) from None

    def transfer(self, work: Callable[[I2CBus], _T]) -> _T:
        """Run ``work`` on the bus, retrying transient errors briefly.

        Args:
            work: One whole transaction; it is run again from the start
                after a transient error.

        Raises:
            SensorUnavailable: The chip did not answer after the retries,
                or the bus failed otherwise.
        """
        self.open()
        assert self._bus is not None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return work(self._bus)
            except OSError as err:
                code = err.errno or 0
                if code not in TRANSIENT_ERRNOS or attempt == ATTEMPTS:
                    raise self._unavailable(code, err) from None
            self._clock.sleep(RETRY_PAUSE_S)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the bus if this chip opened it; safe to call twice."""
        bus, self._bus = self._bus, self._given
        if bus is not None and bus is not self._given:
            bus.close()

    def _unavailable(self, code: int, err: OSError) -> SensorUnavailable:
        what = TRANSIENT_ERRNOS.get(code) or err.strerror or str(err)
        return SensorUnavailable(
            f"{self.name}: {what} (errno {code}); check wiring or run "
            f"i2cdetect -y {self.bus_number}"
        )


class I2CSensor(BlockingSensor):
    """A part on an I2C bus, read through one :class:`I2CChip`.

    Calls to parts on the same bus never overlap; :meth:`_release` closes
    the bus when the driver is closed.

    Args:
        part: The part's name in messages (``BH1750``).
        i2c_bus: The bus number (``/dev/i2c-N``).
        address: The part's 7-bit address.
        samples: Samples per reading; the reading is their median.
        timeout_s: Deadline of each blocking call.
        clock: Stamps readings and times conversions.
        bus: An open bus to use instead of ``/dev/i2c-N``.
    """

    def __init__(
        self,
        part: str,
        *,
        i2c_bus: int,
        address: int,
        samples: int,
        timeout_s: float,
        clock: Clock,
        bus: I2CBus | None,
    ) -> None:
        self._chip = I2CChip(part, i2c_bus, address, clock=clock, bus=bus)
        super().__init__(
            BlockingCalls(self._chip.name, self._chip.device),
            samples=samples,
            timeout_s=timeout_s,
            clock=clock,
        )

    def _release(self) -> None:
        self._chip.close()
