"""BH1750 ambient light sensor on I2C, read in its one-time modes.

Facts from the ROHM BH1750FVI datasheet (rev. D): the instruction set
(p. 5), measurement times (p. 2: H-resolution 120 ms typical, 180 ms
maximum; L-resolution 16 ms typical, 24 ms maximum, at the default MTreg of
69), and lux = count / 1.2, halved again in H-resolution mode 2 (p. 11).
The time and the count both scale with MTreg / 69 (pp. 11-12).

Each reading powers the chip on, sets MTreg, starts one measurement, waits
the maximum conversion time and reads two bytes, most significant first.
One-time modes power the chip down afterwards, so a chip that lost power
between readings needs nothing special.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from sensors.base import Clock, Sensor
from sensors.i2c import I2CBus, I2CSensor, check_address
from sensors.options import parse_options, require
from sensors.sampling import SamplingConfig

__all__ = ["BH1750", "Bh1750Config", "create_bh1750"]

ADDRESSES = (0x23, 0x5C)  # ADDR pin low / high
POWER_ON = 0x01
MTREG_HIGH_BITS = 0x40  # 01000_MT[7:5]
MTREG_LOW_BITS = 0x60  # 011_MT[4:0]
ONE_TIME_COMMANDS = {"high": 0x20, "high2": 0x21, "low": 0x23}
MAX_CONVERSION_S = {"high": 0.180, "high2": 0.180, "low": 0.024}
COUNTS_PER_LUX = 1.2
DEFAULT_MTREG = 69
MTREG_RANGE = (31, 254)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bh1750Config(SamplingConfig):
    """Options of :class:`BH1750`.

    Attributes:
        i2c_bus: N of ``/dev/i2c-N``; 1 on the Pi's header pins 3 and 5.
        address: 0x23 (ADDR low or open) or 0x5C (ADDR high).
        resolution: ``"high"`` (1 lx steps), ``"high2"`` (0.5 lx) or
            ``"low"`` (4 lx, 24 ms).
        mtreg: Measurement time register, 31 to 254: higher is more
            sensitive and slower (69 is the chip's default).
    """

    i2c_bus: int = 1
    address: int = 0x23
    resolution: str = "high"
    mtreg: int = DEFAULT_MTREG

    def __post_init__(self) -> None:
        super(Bh1750Config, self).__post_init__()
        require(self.i2c_bus >= 0, "i2c_bus", self.i2c_bus, "0 or more", "i2c_bus = 1")
        check_address(self.address, ADDRESSES, "BH1750")
        require(
            self.resolution in ONE_TIME_COMMANDS,
            "resolution",
            self.resolution,
            'one of "high", "high2", "low"',
            'e.g. resolution = "high"',
        )
        low, high = MTREG_RANGE
        require(
            low <= self.mtreg <= high,
            "mtreg",
            self.mtreg,
            f"from {low} to {high}",
            f"e.g. mtreg = {DEFAULT_MTREG}",
        )


class BH1750(I2CSensor):
    """A BH1750 giving ``illuminance_lux``.

    Args:
        config: The driver's options.
        clock: Waits out the conversion time and stamps readings.
        bus: An open I2C bus to use instead of ``/dev/i2c-N``.
    """

    quantities = ("illuminance_lux",)

    def __init__(
        self, config: Bh1750Config, *, clock: Clock, bus: I2CBus | None = None
    ) -> None:
        super().__init__(
            "BH1750",
            i2c_bus=config.i2c_bus,
            address=config.address,
            samples=config.samples,
            timeout_s=config.timeout_s,
            clock=clock,
            bus=bus,
        )
        self._config = config
        scale = config.mtreg / DEFAULT_MTREG
        self._conversion_s = MAX_CONVERSION_S[config.resolution] * scale
        halving = 2.0 if config.resolution == "high2" else 1.0
        self._lux_per_count = 1 / (COUNTS_PER_LUX * halving * scale)

    def _open_part(self) -> None:
        # Power on answers only if the chip is there: a missing chip is
        # reported now, and open() is simply called again later.
        self._chip.transfer(lambda bus: bus.write_byte(self._chip.address, POWER_ON))

    def _sample(self) -> Mapping[str, float]:
        count = self._chip.transfer(self._measure)
        return {"illuminance_lux": round(count * self._lux_per_count, 2)}

    def _measure(self, bus: I2CBus) -> int:
        from smbus2 import i2c_msg

        address, mtreg = self._chip.address, self._config.mtreg
        bus.write_byte(address, POWER_ON)
        bus.write_byte(address, MTREG_HIGH_BITS | mtreg >> 5)
        bus.write_byte(address, MTREG_LOW_BITS | mtreg & 0x1F)
        bus.write_byte(address, ONE_TIME_COMMANDS[self._config.resolution])
        self._clock.sleep(self._conversion_s)
        # The result is a plain 2-byte read with no register byte first.
        message = i2c_msg.read(address, 2)
        bus.i2c_rdwr(message)
        # smbus2's stub types __iter__ as returning int; it yields ints.
        high, low = cast("Iterable[int]", message)
        return high << 8 | low


def create_bh1750(
    options: Mapping[str, object], *, clock: Clock, bus: I2CBus | None = None
) -> Sensor:
    """Build a ``bh1750`` sensor from its options table."""
    return BH1750(
        parse_options(Bh1750Config, options, driver="bh1750"), clock=clock, bus=bus
    )
