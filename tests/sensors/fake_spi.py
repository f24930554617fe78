"""An MCP3008 that speaks its SPI protocol bit by bit on gpiozero mock pins.

MCP3008 datasheet (Microchip DS21295), figure 6-1: after CS falls the chip
waits for a start bit, takes SGL/DIFF and D2..D0, samples during the next
clock, sends a null bit, then B9..B0, most significant first.
"""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory, MockSPIDevice

# Pins of SPI0 with CE0, as gpiozero maps port 0, device 0.
SCLK, MOSI, MISO, CE0 = 11, 10, 9, 8


class FakeMCP3008(MockSPIDevice):
    """Converts ``volts[channel]`` against ``vref`` to a 10-bit count."""

    def __init__(self, factory: MockFactory, *, vref: float = 3.3) -> None:
        super().__init__(SCLK, MOSI, MISO, CE0, pin_factory=factory)
        self.vref = vref
        self.volts = [0.0] * 8
        self.conversions: list[tuple[bool, int]] = []

    def on_start(self) -> None:
        super().on_start()
        self._start_at: int | None = None

    def on_bit(self) -> None:
        if self._start_at is None:
            if self.rx_buf[-1]:
                self._start_at = len(self.rx_buf)
            return
        if len(self.rx_buf) - self._start_at == 4:
            single, d2, d1, d0 = self.rx_buf[self._start_at :]
            channel = d2 << 2 | d1 << 1 | d0
            self.conversions.append((bool(single), channel))
            count = round(self.volts[channel] / self.vref * 1024)
            count = max(0, min(1023, count))
            # One clock to sample, the null bit, then the 10 result bits.
            self.tx_word(count, 12)
