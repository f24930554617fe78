"""Light level from a light-dependent resistor and a capacitor on one GPIO.

gpiozero's ``LightSensor`` drains the capacitor, then times how long the LDR
takes to charge it past the pin's threshold: bright light charges it fast.
Its ``value`` is 1 minus that time over ``charge_time_limit``, averaged over
``queue_len`` charges, so 0 is dark (no charge within the limit) and 1 is as
bright as the circuit can tell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sensors.base import Clock, Sensor
from sensors.gpio import GpiozeroSensor, PinFactory, check_pin
from sensors.options import parse_options, require
from sensors.sampling import SamplingConfig

__all__ = ["LDR", "LdrConfig", "create_ldr"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LdrConfig(SamplingConfig):
    """Options of :class:`LDR`.

    Attributes:
        pin: BCM GPIO number of the LDR / capacitor junction.
        charge_time_limit_s: Charge time that counts as dark; pick about
            the time in the darkest light to tell apart (gpiozero's
            default, 0.01 s, suits 1 uF).
        queue_len: Charges averaged into each value (1 to 50).
    """

    pin: int
    charge_time_limit_s: float = 0.01
    queue_len: int = 5

    def __post_init__(self) -> None:
        super(LdrConfig, self).__post_init__()
        check_pin(self.pin)
        require(
            0 < self.charge_time_limit_s <= 1,
            "charge_time_limit_s",
            self.charge_time_limit_s,
            "above 0 and at most 1",
            "e.g. charge_time_limit_s = 0.01",
        )
        require(
            1 <= self.queue_len <= 50,
            "queue_len",
            self.queue_len,
            "from 1 to 50",
            "e.g. queue_len = 5",
        )


class LDR(GpiozeroSensor):
    """An LDR and capacitor on a GPIO, giving ``light_level_pct``.

    ``light_level_pct`` is relative, 0 (dark) to 100 (bright): it depends
    on the LDR, the capacitor and ``charge_time_limit_s``, and is **not**
    lux. Use a BH1750 where illuminance must be known.

    Args:
        config: The driver's options.
        clock: Stamps readings.
        pin_factory: gpiozero pin factory; gpiozero's default if ``None``.
    """

    quantities = ("light_level_pct",)

    def __init__(
        self,
        config: LdrConfig,
        *,
        clock: Clock,
        pin_factory: PinFactory | None = None,
    ) -> None:
        part = f"LDR on GPIO{config.pin}"
        super().__init__(
            part, f"GPIO{config.pin}", config, clock=clock, pin_factory=pin_factory
        )
        self._config = config

    def _make_device(self) -> Any:
        from gpiozero import LightSensor

        return LightSensor(
            self._config.pin,
            queue_len=self._config.queue_len,
            charge_time_limit=self._config.charge_time_limit_s,
            pin_factory=self._pin_factory,
        )

    def _sample(self) -> Mapping[str, float]:
        # Blocks until the first queue_len charges have been timed.
        value = self._device_call(lambda device: float(device.value))
        return {"light_level_pct": round(value * 100, 1)}


def create_ldr(
    options: Mapping[str, object],
    *,
    clock: Clock,
    pin_factory: PinFactory | None = None,
) -> Sensor:
    """Build an ``ldr`` sensor from its options table."""
    config = parse_options(LdrConfig, options, driver="ldr")
    return LDR(config, clock=clock, pin_factory=pin_factory)
