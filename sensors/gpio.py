"""What the gpiozero-based drivers share: pin options and error mapping.

``gpiozero`` is imported only when one of these drivers builds its device.
A ``pin_factory`` passed to a driver goes to gpiozero unchanged (tests pass
``MockFactory()``); without one, gpiozero picks its default (lgpio on
Raspberry Pi OS Bookworm).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sensors.base import Clock, SensorMisconfigured, SensorUnavailable
from sensors.blocking import BlockingCalls
from sensors.options import require
from sensors.part import BlockingSensor
from sensors.sampling import SamplingConfig

_T = TypeVar("_T")

__all__ = ["GPIO_PINS", "GpiozeroSensor", "PinFactory", "check_pin", "gpio_errors"]

# BCM numbers on the 40-pin header.
GPIO_PINS = range(28)
_INSTALL_HINT = "install the Pi extras: pip install 'pitwin[pi]'"

PinFactory = Any
"""A gpiozero pin factory (gpiozero has no type hints to name it by)."""


def check_pin(pin: int, name: str = "pin") -> None:
    """Raise unless ``pin`` is a BCM number on the 40-pin header."""
    require(
        pin in GPIO_PINS,
        name,
        pin,
        "a BCM GPIO number from 0 to 27",
        f"e.g. {name} = 4 for GPIO4 (header pin 7)",
    )


@contextlib.contextmanager
def gpio_errors(part: str) -> Iterator[None]:
    """Turn gpiozero's errors into sensor errors that say what to do.

    Args:
        part: How messages name the part, e.g. ``LDR on GPIO18``.

    Raises:
        SensorMisconfigured: gpiozero is missing, no pin library works, or
            the pin is wrong, taken or cannot do what is asked.
        SensorUnavailable: The GPIO device refused access for a moment.
    """
    try:
        from gpiozero import exc
    except ModuleNotFoundError as err:
        raise SensorMisconfigured(
            f"{part}: needs the Python module {err.name!r}, which is not "
            f"installed; {_INSTALL_HINT}"
        ) from err
    try:
        yield
    except exc.BadPinFactory as err:
        raise SensorMisconfigured(
            f"{part}: no GPIO library could drive the pins ({err}); on a Pi "
            "install python3-lgpio (sudo apt install python3-lgpio)"
        ) from err
    except exc.GPIOPinInUse as err:
        raise SensorMisconfigured(
            f"{part}: {err}; give each sensor its own pin"
        ) from err
    except (exc.PinError, exc.GPIODeviceError, exc.SPIError) as err:
        raise SensorMisconfigured(
            f"{part}: {err}; check the pin numbers (BCM numbering) and the "
            "wiring table in the README"
        ) from err
    except PermissionError as err:
        raise SensorMisconfigured(
            f"{part}: no permission to use the GPIO ({err}); add the service "
            "user to the gpio group (sudo usermod -aG gpio USER)"
        ) from err
    except OSError as err:
        raise SensorUnavailable(f"{part}: {err}; check the wiring") from err


class GpiozeroSensor(BlockingSensor):
    """A part read through one gpiozero device, made on first use.

    Subclasses make the device in :meth:`_make_device` and read it in
    ``_sample`` through :meth:`_device_call`; opening, gpiozero's errors and
    closing are handled here.

    Args:
        part: Names the part in messages (``LDR on GPIO17``).
        lock_key: The bus or pin whose calls must not overlap.
        config: The driver's options (``samples``, ``timeout_s``).
        clock: Stamps readings.
        pin_factory: gpiozero pin factory; gpiozero's default if ``None``.
    """

    def __init__(
        self,
        part: str,
        lock_key: str,
        config: SamplingConfig,
        *,
        clock: Clock,
        pin_factory: PinFactory | None,
    ) -> None:
        super().__init__(
            BlockingCalls(part, lock_key),
            samples=config.samples,
            timeout_s=config.timeout_s,
            clock=clock,
        )
        self._part = part
        self._pin_factory = pin_factory
        self._device: Any = None

    def _make_device(self) -> Any:
        """Return the gpiozero device (runs in a worker thread)."""
        raise NotImplementedError

    def _open_part(self) -> None:
        if self._device is not None:
            return
        with gpio_errors(self._part):
            self._device = self._make_device()

    def _device_call(self, call: Callable[[Any], _T]) -> _T:
        """Open the device if needed and run ``call`` on it."""
        self._open_part()
        with gpio_errors(self._part):
            return call(self._device)

    def _release(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            device.close()
