"""A stand-in for ``smbus2.SMBus`` with register-level models of the chips.

Chips answer by address; an address with no chip NACKs (errno 121, as the
Pi's i2c-bcm2835 reports it). Faults are scripted per address. The models
keep the parts' timing against the injected clock, so a driver that reads
too early gets what the real chip would give: the previous result.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Sequence
from typing import ClassVar

from smbus2 import i2c_msg
from smbus2.smbus2 import I2C_M_RD

from tests.sensors.fakes import FakeClock


def _nack(code: int = errno.EREMOTEIO) -> OSError:
    return OSError(code, os.strerror(code))


class FakeChip:
    """Base of the chip models: every transfer comes through these."""

    def write_byte(self, value: int) -> None:
        raise _nack()

    def read_bytes(self, length: int) -> list[int]:
        raise _nack()

    def write_register(self, register: int, data: Sequence[int]) -> None:
        raise _nack()

    def read_register(self, register: int, length: int) -> list[int]:
        raise _nack()


class FakeSMBus:
    """An I2C bus with chips on it and scripted faults."""

    def __init__(self, chips: dict[int, FakeChip] | None = None) -> None:
        self.chips: dict[int, FakeChip] = dict(chips or {})
        self.faults: dict[int, list[int]] = {}
        self.closed = False
        self.transfers = 0

    def fail(self, address: int, code: int, times: int) -> None:
        """Make the next ``times`` transfers to ``address`` fail with ``code``."""
        self.faults.setdefault(address, []).extend([code] * times)

    def _chip(self, address: int) -> FakeChip:
        assert not self.closed, "transfer on a closed bus"
        self.transfers += 1
        pending = self.faults.get(address)
        if pending:
            raise _nack(pending.pop(0))
        chip = self.chips.get(address)
        if chip is None:
            raise _nack()
        return chip

    def write_byte(self, i2c_addr: int, value: int) -> None:
        self._chip(i2c_addr).write_byte(value)

    def read_byte(self, i2c_addr: int) -> int:
        return self._chip(i2c_addr).read_bytes(1)[0]

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int]
    ) -> None:
        self._chip(i2c_addr).write_register(register, data)

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int
    ) -> list[int]:
        return self._chip(i2c_addr).read_register(register, length)

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        for message in i2c_msgs:
            chip = self._chip(message.addr)
            if message.flags & I2C_M_RD:
                data = bytes(chip.read_bytes(message.len))
                ctypes.memmove(message.buf, data, len(data))
            else:
                for value in bytes(message):
                    chip.write_byte(value)

    def close(self) -> None:
        self.closed = True


class FakeBH1750(FakeChip):
    """BH1750FVI: power states, one-time and continuous modes, MTreg, timing.

    ``lux`` is the light on the sensor. A measurement takes
    ``conversion_s`` (the datasheet's maximum by default) times MTreg / 69;
    until it ends, reads return the previous result.
    """

    MAX_S: ClassVar[dict[int, float]] = {0x20: 0.180, 0x21: 0.180, 0x23: 0.024}

    def __init__(self, clock: FakeClock, *, lux: float = 0.0) -> None:
        self.clock = clock
        self.lux = lux
        self.powered = False
        self.mtreg = 69
        self.commands: list[int] = []
        self._result = 0
        self._pending: tuple[float, int] | None = None
        self._pending_mode: int | None = None

    def write_byte(self, value: int) -> None:
        self._settle()
        self.commands.append(value)
        if value == 0x00:
            self.powered = False
        elif value == 0x01:
            self.powered = True
        elif value & 0xF8 == 0x40:
            self.mtreg = (self.mtreg & 0x1F) | (value & 0x07) << 5
        elif value & 0xE0 == 0x60:
            self.mtreg = (self.mtreg & 0xE0) | (value & 0x1F)
        elif value in self.MAX_S and self.powered:
            done = self.clock.monotonic() + self.MAX_S[value] * self.mtreg / 69
            self._pending = (done, self._count(value))
            self._pending_mode = value
        # Anything else (or a measurement while powered down) is ignored,
        # as the chip does.

    def read_bytes(self, length: int) -> list[int]:
        self._settle()
        assert length == 2, f"BH1750 returns 2 bytes, asked for {length}"
        return [self._result >> 8, self._result & 0xFF]

    def _count(self, mode: int) -> int:
        counts = self.lux * 1.2 * (self.mtreg / 69)
        if mode == 0x21:
            counts *= 2
        return min(int(counts), 0xFFFF)

    def _settle(self) -> None:
        if self._pending and self.clock.monotonic() >= self._pending[0]:
            self._result = self._pending[1]
            self._pending = None
            self.powered = False  # one-time modes power down when done


class FakeADS1115(FakeChip):
    """ADS1115: config register fields, single-shot conversions, OS bit.

    ``volts`` holds AIN0..AIN3 against GND. A conversion takes 1 / data rate
    times ``slowness`` (the datasheet allows 10 % slow); ``stuck`` keeps it
    from ever finishing.
    """

    FULL_SCALE: ClassVar[dict[int, float]] = {
        0: 6.144,
        1: 4.096,
        2: 2.048,
        3: 1.024,
        4: 0.512,
    }
    RATES = (8, 16, 32, 64, 128, 250, 475, 860)

    def __init__(self, clock: FakeClock, *, volts: Sequence[float]) -> None:
        self.clock = clock
        self.volts = list(volts)
        self.config = 0x8583  # power-on default
        self.conversion = 0
        self.slowness = 1.0
        self.stuck = False
        self.configs_written: list[int] = []
        self._done_at: float | None = None

    def write_register(self, register: int, data: Sequence[int]) -> None:
        self._settle()
        assert register in (0x01, 0x02, 0x03), f"register {register} is read-only"
        assert len(data) == 2
        if register != 0x01:
            return
        value = data[0] << 8 | data[1]
        self.configs_written.append(value)
        self.config = value & 0x7FFF
        if value & 0x8000 and value & 0x0100:
            rate = self.RATES[(value >> 5) & 0x7]
            self._done_at = self.clock.monotonic() + self.slowness / rate

    def read_register(self, register: int, length: int) -> list[int]:
        self._settle()
        assert length == 2
        if register == 0x00:
            value = self.conversion & 0xFFFF
        elif register == 0x01:
            idle = 0 if self._done_at is not None else 0x8000
            value = self.config | idle
        else:
            value = 0
        return [value >> 8, value & 0xFF]

    def _settle(self) -> None:
        if self.stuck or self._done_at is None:
            return
        if self.clock.monotonic() < self._done_at:
            return
        self._done_at = None
        mux = (self.config >> 12) & 0x7
        assert mux >= 0b100, "this model only converts single-ended inputs"
        gain = (self.config >> 9) & 0x7
        full_scale = self.FULL_SCALE.get(gain, 0.256)
        code = round(self.volts[mux - 0b100] / full_scale * 32768)
        self.conversion = max(-32768, min(32767, code))
