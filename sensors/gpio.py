"""What the gpiozero-based drivers share: pin options and error mapping.

``gpiozero`` is imported only when one of these drivers builds its device.
A ``pin_factory`` passed to a driver goes to gpiozero unchanged (tests pass
``MockFactory()``); without one, gpiozero picks its default (lgpio on
Raspberry Pi OS Bookworm).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sensors.base import SensorMisconfigured, SensorUnavailable
from sensors.options import require

__all__ = ["GPIO_PINS", "PinFactory", "check_pin", "gpio_errors"]

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
