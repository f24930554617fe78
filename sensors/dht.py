"""DHT22 and DHT11 temperature/humidity sensors, through adafruit_dht or IIO.

Two backends read the same single-wire parts:

- ``dht22`` / ``dht11``: ``adafruit_dht`` (with Blinka's ``board`` pins)
  times the part's pulses from user space. It is imported only when one of
  these drivers opens, and is injectable as ``dht_reader``.
- ``dht11-iio``: the Linux kernel's dht11 IIO driver (``dtoverlay=dht11``),
  which times the pulses in the kernel; use it where user-space timing
  fails, as on the Pi 5. It reads DHT22s too (set ``part``).

Reads fail often with both (a pulse missed, a checksum wrong); a failed
read publishes nothing and is tried again after the part's minimum interval
(AM2302/DHT22 datasheet: one reading per 2 s; DHT11: 1 s), up to
``attempts`` times. Temperature and humidity always come from one
successful read. Values outside the part's range (DHT22 -40..80 degC;
DHT11 0..50 degC; humidity 0..100 %) count as failed reads.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from sensors.base import (
    Clock,
    Reading,
    Sensor,
    SensorMisconfigured,
    SensorUnavailable,
)
from sensors.blocking import BlockingCalls
from sensors.gpio import check_pin
from sensors.options import parse_options, require
from sensors.part import BlockingSensor
from sensors.sampling import SamplingConfig, median_values

__all__ = [
    "DHT11",
    "DHT22",
    "DhtConfig",
    "DhtDevice",
    "DhtIioConfig",
    "DhtReader",
    "DhtSensor",
    "IioDht",
    "create_dht11",
    "create_dht11_iio",
    "create_dht22",
]

IIO_DEVICES = Path("/sys/bus/iio/devices")
_INSTALL_HINT = "install the Pi extras: pip install 'pitwin[pi]'"
_WIRING_HINT = "check the wiring, the pull-up resistor (4.7-10 kohm) and the power"
# adafruit_dht measures again only when more than 2 s have passed since its
# last attempt, for DHT11s too; sooner, it returns its previous values, even
# after a failed attempt. Spacing attempts a little more keeps every value
# fresh.
ADAFRUIT_SPACING_S = 2.1


@dataclass(frozen=True, slots=True)
class DhtPart:
    """What differs between the parts: name, pace and plausible ranges."""

    name: str
    min_interval_s: float
    temperature_c: tuple[float, float]
    humidity_pct: tuple[float, float]


DHT22 = DhtPart("DHT22", 2.0, (-40.0, 80.0), (0.0, 100.0))
# DHT11 datasheet range is 20-90 %RH, but the part reports beyond it;
# only physically impossible humidity is refused.
DHT11 = DhtPart("DHT11", 1.0, (0.0, 50.0), (0.0, 100.0))
PARTS = {"dht22": DHT22, "dht11": DHT11}


class DhtDevice(Protocol):
    """What the drivers use of an ``adafruit_dht.DHT22``/``DHT11`` object.

    Reading either property measures (or, within 2 s, repeats the last
    measurement) and may raise :class:`RuntimeError`.
    """

    @property
    def temperature(self) -> float | None:
        """Degrees Celsius."""
        ...

    @property
    def humidity(self) -> float | None:
        """Relative humidity in percent."""
        ...

    def exit(self) -> None:
        """Stop the pulse reader (a helper process on the Pi)."""
        ...


DhtReader = Callable[[int], DhtDevice]
"""Builds the device for a BCM GPIO number."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtConfig(SamplingConfig):
    """Options of :class:`DhtSensor`.

    Attributes:
        pin: BCM GPIO number of the data line.
        attempts: Tries per sample before the reading fails (1 to 4).
    """

    pin: int
    attempts: int = 3

    def __post_init__(self) -> None:
        super(DhtConfig, self).__post_init__()
        check_pin(self.pin)
        _check_attempts(self.attempts)


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtIioConfig(SamplingConfig):
    """Options of :class:`IioDht`.

    Attributes:
        part: ``"dht11"`` or ``"dht22"``: sets the pace and ranges.
        iio_device: N of ``iio:deviceN``; by default the first device the
            dht11 kernel driver registered.
        attempts: Tries per sample before the reading fails (1 to 4).
    """

    part: str = "dht11"
    iio_device: int | None = None
    attempts: int = 3

    def __post_init__(self) -> None:
        super(DhtIioConfig, self).__post_init__()
        require(
            self.part in PARTS,
            "part",
            self.part,
            '"dht11" or "dht22"',
            'e.g. part = "dht22"',
        )
        require(
            self.iio_device is None or self.iio_device >= 0,
            "iio_device",
            self.iio_device,
            "0 or more",
            "e.g. iio_device = 0, or leave it out to find the device",
        )
        _check_attempts(self.attempts)


def _check_attempts(attempts: int) -> None:
    require(1 <= attempts <= 4, "attempts", attempts, "from 1 to 4", "attempts = 3")


class _BadRead(Exception):
    """One failed attempt; the next may succeed."""


class _DhtBase(BlockingSensor):
    """Attempts spaced by the part's interval, values checked, then median."""

    quantities = ("temperature_c", "humidity_pct")

    def __init__(
        self,
        calls: BlockingCalls,
        part: DhtPart,
        *,
        spacing_s: float,
        attempts: int,
        samples: int,
        timeout_s: float,
        clock: Clock,
    ) -> None:
        super().__init__(calls, samples=samples, timeout_s=timeout_s, clock=clock)
        self._part = part
        self._spacing_s = spacing_s
        self._attempts = attempts
        self._last_attempt: float | None = None

    async def read(self) -> Reading:
        """Take ``samples`` good samples (each after up to ``attempts`` tries)."""
        samples = [await self._good_sample() for _ in range(self._samples)]
        return Reading(values=median_values(samples), taken_at=self._clock.now())

    async def _good_sample(self) -> Mapping[str, float]:
        failures: list[str] = []
        for _ in range(self._attempts):
            # The wait for the part's interval happens in the thread, so
            # the deadline covers it.
            deadline_s = self._wait_s() + self._timeout_s
            try:
                return await self._calls.call(self._attempt, deadline_s=deadline_s)
            except _BadRead as err:
                failures.append(str(err))
        raise SensorUnavailable(
            f"{self._calls.part}: no good reading in {self._attempts} "
            f"{'try' if self._attempts == 1 else 'tries'} "
            f"(last: {failures[-1]}); {_WIRING_HINT}"
        )

    def _wait_s(self) -> float:
        if self._last_attempt is None:
            return 0.0
        next_allowed = self._last_attempt + self._spacing_s
        return max(0.0, next_allowed - self._clock.monotonic())

    def _attempt(self) -> Mapping[str, float]:
        self._clock.sleep(self._wait_s())
        self._last_attempt = self._clock.monotonic()
        temperature, humidity = self._measure()
        low, high = self._part.temperature_c
        if not low <= temperature <= high:
            raise _BadRead(f"implausible temperature {temperature:g} degC")
        low, high = self._part.humidity_pct
        if not low <= humidity <= high:
            raise _BadRead(f"implausible humidity {humidity:g} %")
        return {"temperature_c": temperature, "humidity_pct": humidity}

    def _measure(self) -> tuple[float, float]:
        raise NotImplementedError

    def _sample(self) -> Mapping[str, float]:
        return self._attempt()


class DhtSensor(_DhtBase):
    """A DHT22 or DHT11 read by ``adafruit_dht``.

    Args:
        part: :data:`DHT22` or :data:`DHT11`.
        config: The driver's options.
        clock: Spaces attempts and stamps readings.
        dht_reader: Builds the device for a pin; ``adafruit_dht`` by default.
    """

    def __init__(
        self,
        part: DhtPart,
        config: DhtConfig,
        *,
        clock: Clock,
        dht_reader: DhtReader | None = None,
    ) -> None:
        name = f"{part.name} on GPIO{config.pin}"
        super().__init__(
            BlockingCalls(name, f"GPIO{config.pin}"),
            part,
            spacing_s=max(part.min_interval_s, ADAFRUIT_SPACING_S),
            attempts=config.attempts,
            samples=config.samples,
            timeout_s=config.timeout_s,
            clock=clock,
        )
        self._pin = config.pin
        self._reader = dht_reader or _adafruit_reader(part)
        self._device: DhtDevice | None = None

    async def close(self) -> None:
        """Stop the pulse reader now, even under a stuck read; safe twice.

        Not deferred until the read returns (as other drivers do): ending
        the pulse reader is what ends a stuck read, and on SIGTERM it must
        not outlive the agent.
        """
        self._closed = True
        device, self._device = self._device, None
        if device is not None:
            device.exit()

    def _open_part(self) -> None:
        if self._device is not None:
            return
        name = self._calls.part
        try:
            device = self._reader(self._pin)
        except ModuleNotFoundError as err:
            raise SensorMisconfigured(
                f"{name}: needs the Python module {err.name!r}, which is not "
                f"installed; {_INSTALL_HINT}"
            ) from err
        except (AttributeError, ValueError, NotImplementedError) as err:
            raise SensorMisconfigured(
                f"{name}: this board cannot use the pin ({err}); check the pin "
                "number, or use the dht11-iio driver"
            ) from err
        except (RuntimeError, OSError) as err:
            raise SensorUnavailable(
                f"{name}: the pin could not be claimed ({err}); another "
                "process may hold it (pgrep libgpiod_pulsein)"
            ) from err
        if self._closed:
            device.exit()  # close() came while the device was being built
            return
        self._device = device

    def _measure(self) -> tuple[float, float]:
        self._open_part()
        device = self._device
        if device is None:
            raise SensorUnavailable(f"{self._calls.part}: the sensor is closed")
        try:
            # One measurement: humidity, read at once, repeats it.
            temperature = device.temperature
            humidity = device.humidity
        except RuntimeError as err:
            raise _BadRead(_adafruit_reason(err)) from None
        if temperature is None or humidity is None:
            raise _BadRead("no value yet")
        return float(temperature), float(humidity)

    def _release(self) -> None:
        """Not used: :meth:`close` stops the device itself."""


def _adafruit_reason(err: RuntimeError) -> str:
    # "Checksum did not validate. Try again." -> "Checksum did not validate"
    return str(err).removesuffix(" Try again.").rstrip(".")


def _adafruit_reader(part: DhtPart) -> DhtReader:
    def build(pin: int) -> DhtDevice:
        import adafruit_dht
        import board

        board_pin = getattr(board, f"D{pin}")
        factory = adafruit_dht.DHT22 if part is DHT22 else adafruit_dht.DHT11
        return cast(DhtDevice, factory(board_pin))

    return build


class IioDht(_DhtBase):
    """A DHT11 or DHT22 read through the kernel's dht11 IIO driver.

    Values come from ``in_temp_input`` (milli-degC) and
    ``in_humidityrelative_input`` (milli-%). The kernel keeps a measurement
    for 2 s, so the two files read together give one measurement; a
    checksum error reads as EIO, a silent part as ETIMEDOUT.

    Args:
        config: The driver's options.
        clock: Spaces attempts and stamps readings.
        iio_root: Where IIO devices are listed (``/sys/bus/iio/devices``).
    """

    def __init__(
        self,
        config: DhtIioConfig,
        *,
        clock: Clock,
        iio_root: Path = IIO_DEVICES,
    ) -> None:
        part = PARTS[config.part]
        super().__init__(
            BlockingCalls(f"{part.name} on IIO", "iio-dht11"),
            part,
            spacing_s=part.min_interval_s,
            attempts=config.attempts,
            samples=config.samples,
            timeout_s=config.timeout_s,
            clock=clock,
        )
        self._root = iio_root
        self._wanted = config.iio_device
        self._device: Path | None = None

    def _open_part(self) -> None:
        self._device = self._find()
        self._calls.part = f"{self._part.name} on IIO {self._device.name}"

    def _find(self) -> Path:
        fix = (
            "add dtoverlay=dht11,gpiopin=4 (your data pin) to "
            "/boot/firmware/config.txt and reboot"
        )
        if self._wanted is not None:
            device = self._root / f"iio:device{self._wanted}"
            if _iio_name(device).startswith("dht11"):
                return device
            raise SensorMisconfigured(
                f"{device} is not a dht11 IIO device; {fix}, or leave out "
                "iio_device to find it"
            )
        candidates = sorted(self._root.glob("iio:device*"))
        for device in candidates:
            if _iio_name(device).startswith("dht11"):
                return device
        raise SensorMisconfigured(f"no dht11 IIO device in {self._root}; {fix}")

    def _measure(self) -> tuple[float, float]:
        if self._device is None:
            self._open_part()
        assert self._device is not None
        temperature = self._read_milli("in_temp_input")
        humidity = self._read_milli("in_humidityrelative_input")
        return temperature, humidity

    def _read_milli(self, name: str) -> float:
        assert self._device is not None
        path = self._device / name
        try:
            text = path.read_text(encoding="ascii")
        except OSError as err:
            code = err.errno or 0
            if code in _IIO_TRANSIENT:
                raise _BadRead(f"{_IIO_TRANSIENT[code]} (errno {code})") from None
            self._device = None  # gone (overlay removed?): look again next time
            raise SensorUnavailable(
                f"{self._calls.part}: cannot read {path} ({err.strerror}); "
                "check that the dht11 overlay is loaded"
            ) from None
        return int(text.strip()) / 1000

    def _release(self) -> None:
        self._device = None


# The dht11 kernel driver's errors (drivers/iio/humidity/dht11.c).
_IIO_TRANSIENT = {
    errno.EIO: "checksum or data error",
    errno.ETIMEDOUT: "no answer from the sensor",
    errno.EAGAIN: "sensor busy",
}


def _iio_name(device: Path) -> str:
    try:
        return (device / "name").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def create_dht22(
    options: Mapping[str, object],
    *,
    clock: Clock,
    dht_reader: DhtReader | None = None,
) -> Sensor:
    """Build a ``dht22`` sensor from its options table."""
    config = parse_options(DhtConfig, options, driver="dht22")
    return DhtSensor(DHT22, config, clock=clock, dht_reader=dht_reader)


def create_dht11(
    options: Mapping[str, object],
    *,
    clock: Clock,
    dht_reader: DhtReader | None = None,
) -> Sensor:
    """Build a ``dht11`` sensor from its options table."""
    config = parse_options(DhtConfig, options, driver="dht11")
    return DhtSensor(DHT11, config, clock=clock, dht_reader=dht_reader)


def create_dht11_iio(
    options: Mapping[str, object],
    *,
    clock: Clock,
    iio_root: Path = IIO_DEVICES,
) -> Sensor:
    """Build a ``dht11-iio`` sensor from its options table."""
    config = parse_options(DhtIioConfig, options, driver="dht11-iio")
    return IioDht(config, clock=clock, iio_root=iio_root)
