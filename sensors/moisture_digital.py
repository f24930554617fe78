"""Soil moisture module with a digital output (DO), read through gpiozero.

The common modules compare the probe against a threshold set by their
trimmer (an LM393 comparator) and drive DO high when the soil is drier than
that, low when wetter; their LED lights when DO is low. They tell dry from
wet, not how wet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sensors.base import Clock, Sensor
from sensors.gpio import GpiozeroSensor, PinFactory, check_pin
from sensors.options import parse_options, require
from sensors.sampling import SamplingConfig

__all__ = ["DigitalMoisture", "DigitalMoistureConfig", "create_moisture_digital"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitalMoistureConfig(SamplingConfig):
    """Options of :class:`DigitalMoisture`.

    Attributes:
        pin: BCM GPIO number DO is wired to.
        pull_up: Enable the Pi's internal pull-up (true) or pull-down
            (false); modules with their own resistor work with either.
        dry_when_high: DO is high when dry (true for LM393 modules).
    """

    pin: int
    pull_up: bool = True
    dry_when_high: bool = True

    def __post_init__(self) -> None:
        super(DigitalMoistureConfig, self).__post_init__()
        check_pin(self.pin)
        # A median of an even number of true/false samples can tie.
        require(
            self.samples % 2 == 1,
            "samples",
            self.samples,
            "odd (a majority decides)",
            "e.g. samples = 3",
        )


class DigitalMoisture(GpiozeroSensor):
    """A DO moisture module giving ``dry`` (true when drier than its trimmer).

    With ``samples`` above 1 the reading is the majority of the samples.

    Args:
        config: The driver's options.
        clock: Stamps readings.
        pin_factory: gpiozero pin factory; gpiozero's default if ``None``.
    """

    quantities = ("dry",)

    def __init__(
        self,
        config: DigitalMoistureConfig,
        *,
        clock: Clock,
        pin_factory: PinFactory | None = None,
    ) -> None:
        part = f"moisture DO on GPIO{config.pin}"
        super().__init__(
            part, f"GPIO{config.pin}", config, clock=clock, pin_factory=pin_factory
        )
        self._config = config

    def _make_device(self) -> Any:
        from gpiozero import DigitalInputDevice

        return DigitalInputDevice(
            self._config.pin,
            pull_up=self._config.pull_up,
            pin_factory=self._pin_factory,
        )

    def _sample(self) -> Mapping[str, float]:
        # The level itself: gpiozero's value flips with the pull (with a
        # pull-up, low counts as active).
        high = self._device_call(lambda device: bool(device.pin.state))
        return {"dry": high == self._config.dry_when_high}


def create_moisture_digital(
    options: Mapping[str, object],
    *,
    clock: Clock,
    pin_factory: PinFactory | None = None,
) -> Sensor:
    """Build a ``moisture-digital`` sensor from its options table."""
    config = parse_options(DigitalMoistureConfig, options, driver="moisture-digital")
    return DigitalMoisture(config, clock=clock, pin_factory=pin_factory)
