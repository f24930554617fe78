"""Capacitive soil moisture probe through an ADS1115 ADC on I2C.

Facts from the TI ADS1115 datasheet (SBAS444D): the pointer register
(0x00 conversion, 0x01 config, section 9.6), the config register's fields
(table 8), single-shot mode (9.4.2), conversion results as two's complement,
most significant byte first (9.5.3), and a data rate that may run up to 10 %
slow (table 7.5, "data rate variation").

Config register::

    bit  15  14-12  11-9  8     7-5  4-0
         OS  MUX    PGA   MODE  DR   comparator (0b00011: disabled)

Each sample writes the config with OS = 1 (start one conversion), MUX = the
channel against GND, the gain, MODE = 1 (single shot), and the data rate;
waits one conversion time; polls OS until it reads 1 (idle) with a deadline;
then reads the conversion register.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sensors.base import Clock, Sensor, SensorUnavailable
from sensors.i2c import I2CBus, I2CSensor, check_address
from sensors.moisture import MoistureCalibration, moisture_pct
from sensors.options import parse_options, require

__all__ = ["ADS1115", "Ads1115Config", "create_ads1115"]

ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)  # ADDR to GND, VDD, SDA, SCL
CONVERSION_REGISTER = 0x00
CONFIG_REGISTER = 0x01
OS_START = 0x8000  # write: start a conversion; read: 1 = idle
MUX_SINGLE_ENDED = 0b100  # AINx against GND is 0b100 + x
MODE_SINGLE_SHOT = 0x0100
COMPARATOR_DISABLED = 0b11
# PGA code by full-scale range in volts.
PGA_CODES = {
    6.144: 0b000,
    4.096: 0b001,
    2.048: 0b010,
    1.024: 0b011,
    0.512: 0b100,
    0.256: 0b101,
}
# DR code by samples per second.
DATA_RATES = {8: 0, 16: 1, 32: 2, 64: 3, 128: 4, 250: 5, 475: 6, 860: 7}
RATE_TOLERANCE = 1.1
POLL_PAUSE_S = 0.001
FULL_SCALE_COUNTS = 32768


@dataclass(frozen=True, slots=True, kw_only=True)
class Ads1115Config(MoistureCalibration):
    """Options of :class:`ADS1115`.

    Attributes:
        i2c_bus: N of ``/dev/i2c-N``; 1 on the Pi's header pins 3 and 5.
        address: 0x48 (ADDR to GND) to 0x4B.
        channel: Input AIN0 to AIN3 the probe is wired to, 0 to 3.
        full_scale_v: Gain as its full-scale range: 6.144, 4.096, 2.048,
            1.024, 0.512 or 0.256 volts. 4.096 suits a probe on 3.3 V.
        data_rate: Samples per second: 8, 16, 32, 64, 128, 250, 475, 860.
    """

    i2c_bus: int = 1
    address: int = 0x48
    channel: int = 0
    full_scale_v: float = 4.096
    data_rate: int = 128

    def __post_init__(self) -> None:
        super(Ads1115Config, self).__post_init__()
        require(self.i2c_bus >= 0, "i2c_bus", self.i2c_bus, "0 or more", "i2c_bus = 1")
        check_address(self.address, ADDRESSES, "ADS1115")
        require(
            0 <= self.channel <= 3, "channel", self.channel, "0 to 3", "channel = 0"
        )
        require(
            self.full_scale_v in PGA_CODES,
            "full_scale_v",
            self.full_scale_v,
            "one of " + ", ".join(f"{v:g}" for v in PGA_CODES),
            "e.g. full_scale_v = 4.096",
        )
        require(
            self.data_rate in DATA_RATES,
            "data_rate",
            self.data_rate,
            "one of " + ", ".join(str(r) for r in DATA_RATES),
            "e.g. data_rate = 128",
        )


class ADS1115(I2CSensor):
    """A moisture probe on one ADS1115 input.

    Readings carry ``moisture_pct``, ``moisture_raw`` (the signed
    conversion count, the calibration's unit: read it with the probe in air
    and in water to set ``dry_raw`` and ``wet_raw``) and ``moisture_v``
    (the input voltage, the count scaled by the gain's full-scale range).

    Args:
        config: The driver's options.
        clock: Waits for conversions and stamps readings.
        bus: An open I2C bus to use instead of ``/dev/i2c-N``.
    """

    quantities = ("moisture_pct", "moisture_raw", "moisture_v")

    def __init__(
        self, config: Ads1115Config, *, clock: Clock, bus: I2CBus | None = None
    ) -> None:
        super().__init__(
            "ADS1115",
            i2c_bus=config.i2c_bus,
            address=config.address,
            samples=config.samples,
            timeout_s=config.timeout_s,
            clock=clock,
            bus=bus,
        )
        self._config = config
        self._conversion_s = 1 / config.data_rate
        self._volts_per_count = config.full_scale_v / FULL_SCALE_COUNTS
        self._start = (
            OS_START
            | (MUX_SINGLE_ENDED + config.channel) << 12
            | PGA_CODES[config.full_scale_v] << 9
            | MODE_SINGLE_SHOT
            | DATA_RATES[config.data_rate] << 5
            | COMPARATOR_DISABLED
        )

    def _open_part(self) -> None:
        # Reading the config register fails fast when the chip is missing.
        self._chip.transfer(self._read_config)

    def _sample(self) -> Mapping[str, float]:
        raw = self._chip.transfer(self._convert)
        return {
            "moisture_pct": moisture_pct(raw, self._config),
            "moisture_raw": float(raw),
            "moisture_v": round(raw * self._volts_per_count, 4),
        }

    def _convert(self, bus: I2CBus) -> int:
        address = self._chip.address
        bus.write_i2c_block_data(
            address, CONFIG_REGISTER, [self._start >> 8, self._start & 0xFF]
        )
        started = self._clock.monotonic()
        # Poll for at most twice the slowest conversion time.
        deadline = started + 2 * RATE_TOLERANCE * self._conversion_s
        self._clock.sleep(self._conversion_s)
        while not self._read_config(bus) & OS_START:
            if self._clock.monotonic() >= deadline:
                waited_ms = (self._clock.monotonic() - started) * 1000
                raise SensorUnavailable(
                    f"{self._chip.name}: conversion not done after "
                    f"{waited_ms:.0f} ms; check the chip's power (VDD) "
                    "and that nothing else drives its config register"
                )
            self._clock.sleep(POLL_PAUSE_S)
        high, low = bus.read_i2c_block_data(address, CONVERSION_REGISTER, 2)
        value = high << 8 | low
        return value - 0x10000 if value & 0x8000 else value

    def _read_config(self, bus: I2CBus) -> int:
        high, low = bus.read_i2c_block_data(self._chip.address, CONFIG_REGISTER, 2)
        return high << 8 | low


def create_ads1115(
    options: Mapping[str, object], *, clock: Clock, bus: I2CBus | None = None
) -> Sensor:
    """Build an ``ads1115`` sensor from its options table."""
    config = parse_options(Ads1115Config, options, driver="ads1115")
    return ADS1115(config, clock=clock, bus=bus)
