"""Sensor drivers by name: the ``driver`` of a module in the config file."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import cast

from sensors.base import Clock, Sensor, SensorFactory, SensorMisconfigured, SystemClock

__all__ = ["available_drivers", "create_sensor"]

# Driver name -> "module:factory". Modules are imported only when their
# driver is configured, so hardware libraries load only where they are used
# and the agent starts on a laptop. Each factory is called as
# factory(options, clock=clock) and checks its own options.
_DRIVERS: Mapping[str, str] = {
    "ads1115": "sensors.ads1115:create_ads1115",
    "bh1750": "sensors.bh1750:create_bh1750",
    "dht11": "sensors.dht:create_dht11",
    "dht11-iio": "sensors.dht:create_dht11_iio",
    "dht22": "sensors.dht:create_dht22",
    "ldr": "sensors.ldr:create_ldr",
    "mcp3008": "sensors.mcp3008:create_mcp3008",
    "moisture-digital": "sensors.moisture_digital:create_moisture_digital",
    "simulated-light": "sensors.simulated:create_light",
    "simulated-moisture": "sensors.simulated:create_moisture",
    "simulated-temperature": "sensors.simulated:create_temperature",
    "trace": "sensors.trace:create_trace",
}

# Which extra installs the libraries a driver imports.
_INSTALL_HINT = "install the Pi extras: pip install 'pitwin[pi]'"


def available_drivers() -> tuple[str, ...]:
    """Return the driver names :func:`create_sensor` accepts, sorted."""
    return tuple(sorted(_DRIVERS))


def create_sensor(
    driver: str,
    options: Mapping[str, object],
    *,
    clock: Clock | None = None,
) -> Sensor:
    """Build the sensor a module's config names; it is not opened yet.

    Args:
        driver: A name from :func:`available_drivers`.
        options: The module's sensor table, e.g. ``{"speed": 60}``.
        clock: Source of time; the system clock by default.

    Returns:
        The sensor, ready for ``await sensor.open()``.

    Raises:
        SensorMisconfigured: The driver is unknown, its libraries are not
            installed, or an option is unknown, of the wrong type or out of
            range.
    """
    target = _DRIVERS.get(driver)
    if target is None:
        raise SensorMisconfigured(
            f"unknown sensor driver {driver!r}; "
            f"use one of: {', '.join(available_drivers())}"
        )
    factory = _load(driver, target)
    return factory(options, clock=clock or SystemClock())


def _load(driver: str, target: str) -> SensorFactory:
    module_name, _, factory_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise SensorMisconfigured(
            f"sensor driver {driver!r} needs the Python module {err.name!r}, "
            f"which is not installed; {_INSTALL_HINT}"
        ) from err
    return cast(SensorFactory, getattr(module, factory_name))
