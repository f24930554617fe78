"""Capacitive soil moisture probe through an MCP3008 ADC on SPI (gpiozero).

The MCP3008 is a 10-bit ADC with 8 inputs (Microchip DS21295, section
5.0); gpiozero's ``MCP3008`` speaks its protocol over ``/dev/spidev<port>.
<device>`` (or bit-bangs it on the same pins when SPI is off). Its
``raw_value`` is the count, 0 to 1023 for 0 V to VREF.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sensors.base import Clock, Sensor
from sensors.gpio import GpiozeroSensor, PinFactory
from sensors.moisture import MoistureCalibration, moisture_pct
from sensors.options import parse_options, require

__all__ = ["MCP3008", "Mcp3008Config", "create_mcp3008"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Mcp3008Config(MoistureCalibration):
    """Options of :class:`MCP3008`.

    Attributes:
        channel: Input CH0 to CH7 the probe is wired to, 0 to 7.
        spi_port: SPI controller; 0 is the one on header pins 19, 21, 23.
        spi_device: Chip select: 0 for CE0 (header pin 24), 1 for CE1 (26).
    """

    channel: int = 0
    spi_port: int = 0
    spi_device: int = 0

    def __post_init__(self) -> None:
        super(Mcp3008Config, self).__post_init__()
        require(
            0 <= self.channel <= 7, "channel", self.channel, "0 to 7", "channel = 0"
        )
        require(
            self.spi_port in (0, 1), "spi_port", self.spi_port, "0 or 1", "spi_port = 0"
        )
        require(
            self.spi_device in (0, 1),
            "spi_device",
            self.spi_device,
            "0 (CE0) or 1 (CE1)",
            "spi_device = 0",
        )


class MCP3008(GpiozeroSensor):
    """A moisture probe on one MCP3008 input: ``moisture_pct``, ``moisture_raw``.

    Args:
        config: The driver's options.
        clock: Stamps readings.
        pin_factory: gpiozero pin factory; gpiozero's default if ``None``.
    """

    quantities = ("moisture_pct", "moisture_raw")

    def __init__(
        self,
        config: Mcp3008Config,
        *,
        clock: Clock,
        pin_factory: PinFactory | None = None,
    ) -> None:
        bus = f"/dev/spidev{config.spi_port}.{config.spi_device}"
        # Both chip selects share the port's clock and data lines.
        super().__init__(
            f"MCP3008 channel {config.channel} on {bus}",
            f"spi{config.spi_port}",
            config,
            clock=clock,
            pin_factory=pin_factory,
        )
        self._config = config

    def _make_device(self) -> Any:
        from gpiozero import MCP3008 as GpiozeroMCP3008

        return GpiozeroMCP3008(
            channel=self._config.channel,
            port=self._config.spi_port,
            device=self._config.spi_device,
            pin_factory=self._pin_factory,
        )

    def _sample(self) -> Mapping[str, float]:
        raw = self._device_call(lambda device: int(device.raw_value))
        return {
            "moisture_pct": moisture_pct(raw, self._config),
            "moisture_raw": float(raw),
        }


def create_mcp3008(
    options: Mapping[str, object],
    *,
    clock: Clock,
    pin_factory: PinFactory | None = None,
) -> Sensor:
    """Build an ``mcp3008`` sensor from its options table."""
    config = parse_options(Mcp3008Config, options, driver="mcp3008")
    return MCP3008(config, clock=clock, pin_factory=pin_factory)
