"""``pitwin doctor``: check what the configured sensors need, one line each.

For each module's sensor: the Python library its driver imports, the bus
device nodes (``/dev/i2c-N``, ``/dev/spidevP.D``, ``/dev/gpiochip*``, the
IIO sysfs directory), access to them (as the user and its groups), an I2C
address probe (one quick read), then one reading with a deadline. Also: the
system clock, which SAS tokens depend on. Each line says ``ok``, ``FAIL`` or
``skip``, and what to do; the exit status is 1 if any line failed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from agent.config import ModuleConfig, load_config
from agent.errors import ConfigError
from sensors.base import SensorError
from sensors.registry import create_sensor

__all__ = ["Doctor", "add_commands", "run_doctor"]

READ_DEADLINE_S = 10.0
# Tokens and TLS fail on a clock before this software existed.
EARLIEST_PLAUSIBLE = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
_I2C_DRIVERS = {"bh1750": 0x23, "ads1115": 0x48}
_GPIO_DRIVERS = {"dht22", "dht11", "ldr", "moisture-digital"}
_LIBRARIES = {
    "bh1750": "smbus2",
    "ads1115": "smbus2",
    "dht22": "adafruit_dht",
    "dht11": "adafruit_dht",
    "ldr": "gpiozero",
    "mcp3008": "gpiozero",
    "moisture-digital": "gpiozero",
}
_GROUP_FIX = "sudo usermod -aG {group} USER, then log in again"


def add_commands(commands: Any) -> None:
    """Add ``doctor`` to the ``pitwin`` parser.

    Args:
        commands: The parser's sub-parsers (``add_subparsers()`` result).
    """
    doctor = commands.add_parser(
        "doctor", help="check buses, permissions, clock and each configured sensor"
    )
    doctor.add_argument("-c", "--config", type=Path, required=True, help="agent TOML")
    doctor.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    return run_doctor(args.config, out=sys.stdout)


@dataclass
class Doctor:
    """Where the checks look; tests point them at a temporary tree.

    Attributes:
        dev: The device directory (``/dev``).
        iio_root: Where IIO devices are listed.
        now: The system clock.
        can_access: ``os.access``-like check for read and write.
    """

    dev: Path = Path("/dev")
    iio_root: Path = Path("/sys/bus/iio/devices")
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    can_access: Callable[[Path], bool] = field(
        default=lambda path: os.access(path, os.R_OK | os.W_OK)
    )
    failed: bool = False
    lines: list[str] = field(default_factory=list)

    def report(self, ok: bool | None, check: str, detail: str) -> None:
        """Record one line: ``ok``, ``FAIL`` or (``None``) ``skip``."""
        status = "skip" if ok is None else ("ok" if ok else "FAIL")
        self.failed |= ok is False
        self.lines.append(f"{status:<4}  {check}: {detail}")


def run_doctor(config_path: Path, *, out: TextIO, doctor: Doctor | None = None) -> int:
    """Run every check for the config at ``config_path``; print one line each.

    Returns:
        0 if nothing failed, else 1.
    """
    doctor = doctor or Doctor()
    try:
        config = load_config(config_path)
    except ConfigError as err:
        doctor.report(False, "config", str(err))
    else:
        doctor.report(True, "config", f"{config_path} is valid")
        _check_clock(doctor)
        for module in config.modules.values():
            _check_module(doctor, module)
    for line in doctor.lines:
        print(line, file=out)
    return 1 if doctor.failed else 0


def _check_clock(doctor: Doctor) -> None:
    now = doctor.now()
    stamp = now.isoformat(timespec="seconds")
    if now < EARLIEST_PLAUSIBLE:
        doctor.report(
            False,
            "clock",
            f"{stamp} is before {EARLIEST_PLAUSIBLE.date()}; the hub will refuse "
            "tokens: enable time sync (sudo timedatectl set-ntp true) and check "
            "the network",
        )
    else:
        doctor.report(True, "clock", f"{stamp} is plausible")


def _check_module(doctor: Doctor, module: ModuleConfig) -> None:
    where = f"[modules.{module.module_id}] {module.driver}"
    options = module.sensor
    ready = _check_library(doctor, where, module.driver)
    if module.driver in _I2C_DRIVERS:
        ready &= _check_i2c(doctor, where, module.driver, options)
    elif module.driver == "mcp3008":
        node = f"spidev{options.get('spi_port', 0)}.{options.get('spi_device', 0)}"
        ready &= _check_node(
            doctor,
            where,
            doctor.dev / node,
            "spi",
            "enable SPI: sudo raspi-config nonint do_spi 0, then reboot",
        )
    elif module.driver in _GPIO_DRIVERS:
        ready &= _check_gpiochip(doctor, where)
    elif module.driver == "dht11-iio":
        ready &= _check_iio(doctor, where)
    if not ready:
        doctor.report(None, f"{where} read", "not tried; fix the lines above first")
        return
    _read_once(doctor, where, module.driver, options)


def _check_library(doctor: Doctor, where: str, driver: str) -> bool:
    library = _LIBRARIES.get(driver)
    if library is None:
        return True
    if importlib.util.find_spec(library) is None:
        doctor.report(
            False,
            f"{where} library",
            f"Python module {library!r} is not installed; install the Pi "
            "extras: pip install 'pitwin[pi]'",
        )
        return False
    doctor.report(True, f"{where} library", f"{library} is installed")
    return True


def _check_node(
    doctor: Doctor, where: str, node: Path, group: str, enable: str
) -> bool:
    if not node.exists():
        doctor.report(False, f"{where} bus", f"{node} is missing; {enable}")
        return False
    if not doctor.can_access(node):
        doctor.report(
            False,
            f"{where} bus",
            f"{node} is not readable and writable by this user; "
            + _GROUP_FIX.format(group=group),
        )
        return False
    doctor.report(True, f"{where} bus", f"{node} is present and usable")
    return True


def _check_gpiochip(doctor: Doctor, where: str) -> bool:
    chips = sorted(doctor.dev.glob("gpiochip*"))
    if not chips:
        doctor.report(
            False,
            f"{where} bus",
            f"no {doctor.dev}/gpiochip* device; run on a Raspberry Pi with "
            "Raspberry Pi OS Bookworm (gpiochip devices come with its kernel)",
        )
        return False
    return _check_node(doctor, where, chips[0], "gpio", "")


def _check_iio(doctor: Doctor, where: str) -> bool:
    for device in sorted(doctor.iio_root.glob("iio:device*")):
        name_file = device / "name"
        if name_file.exists() and name_file.read_text().startswith("dht11"):
            doctor.report(True, f"{where} bus", f"{device} is the dht11 device")
            return True
    doctor.report(
        False,
        f"{where} bus",
        f"no dht11 device in {doctor.iio_root}; add dtoverlay=dht11,gpiopin=4 "
        "(your data pin) to /boot/firmware/config.txt and reboot",
    )
    return False


def _check_i2c(
    doctor: Doctor, where: str, driver: str, options: Mapping[str, Any]
) -> bool:
    number = options.get("i2c_bus", 1)
    address = options.get("address", _I2C_DRIVERS[driver])
    node = doctor.dev / f"i2c-{number}"
    enable = "enable I2C: sudo raspi-config nonint do_i2c 0, then reboot"
    if not _check_node(doctor, where, node, "i2c", enable):
        return False
    try:
        from smbus2 import SMBus

        with SMBus(str(node)) as bus:
            bus.read_byte(address)
    except OSError as err:
        doctor.report(
            False,
            f"{where} probe",
            f"no answer at 0x{address:02x} on {node} ({err.strerror}); check "
            f"wiring and the address, or run i2cdetect -y {number}",
        )
        return False
    doctor.report(True, f"{where} probe", f"0x{address:02x} answers on {node}")
    return True


def _read_once(
    doctor: Doctor, where: str, driver: str, options: Mapping[str, Any]
) -> None:
    async def read() -> str:
        sensor = create_sensor(driver, options)
        try:
            async with asyncio.timeout(READ_DEADLINE_S):
                await sensor.open()
                reading = await sensor.read()
        finally:
            await sensor.close()
        return ", ".join(f"{k}={v:g}" for k, v in reading.values.items())

    try:
        values = asyncio.run(read())
    except SensorError as err:
        doctor.report(False, f"{where} read", str(err))
    except TimeoutError:
        doctor.report(
            False,
            f"{where} read",
            f"no reading within {READ_DEADLINE_S:g} s; check the wiring and power",
        )
    else:
        doctor.report(True, f"{where} read", values)
