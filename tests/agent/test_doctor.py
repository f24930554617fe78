"""Tests for ``pitwin doctor`` on a machine without the Pi's buses."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import io
from pathlib import Path

import pytest

from agent.doctor import Doctor, add_commands, run_doctor

CONFIG = """
[device]
id = "pi-test"
hub_hostname = "hub.example"

[modules.light]
driver = "bh1750"
key = "a2V5"

[modules.temperature]
driver = "dht22"
key = "a2V5"

[modules.temperature.sensor]
pin = 4
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """Give a private config naming a BH1750 and a DHT22."""
    path = tmp_path / "pitwin.toml"
    path.write_text(CONFIG)
    path.chmod(0o600)
    return path


@pytest.mark.skipif(
    importlib.util.find_spec("adafruit_dht") is not None,
    reason="adafruit_dht is installed here",
)
def test_no_buses_fails_with_a_fix_on_each_line(
    config_file: Path, tmp_path: Path
) -> None:
    """Test the output and exit status with no /dev/i2c-1 and no gpiochip."""
    dev = tmp_path / "dev"
    dev.mkdir()
    doctor = Doctor(
        dev=dev,
        iio_root=tmp_path / "iio",
        now=lambda: dt.datetime(2024, 6, 21, 12, tzinfo=dt.UTC),
    )
    out = io.StringIO()

    status = run_doctor(config_file, out=out, doctor=doctor)

    assert status == 1
    assert out.getvalue().splitlines() == [
        f"ok    config: {config_file} is valid",
        "ok    clock: 2024-06-21T12:00:00+00:00 is plausible",
        "ok    [modules.light] bh1750 library: smbus2 is installed",
        f"FAIL  [modules.light] bh1750 bus: {dev}/i2c-1 is missing; enable I2C: "
        "sudo raspi-config nonint do_i2c 0, then reboot",
        "skip  [modules.light] bh1750 read: not tried; fix the lines above first",
        "FAIL  [modules.temperature] dht22 library: Python module 'adafruit_dht' "
        "is not installed; install the Pi extras: pip install 'pitwin[pi]'",
        f"FAIL  [modules.temperature] dht22 bus: no {dev}/gpiochip* device; run "
        "on a Raspberry Pi with Raspberry Pi OS Bookworm (gpiochip devices come "
        "with its kernel)",
        "skip  [modules.temperature] dht22 read: not tried; fix the lines above first",
    ]


def test_clock_in_1970_fails(config_file: Path, tmp_path: Path) -> None:
    """Test that a Pi that booted without time sync is caught."""
    doctor = Doctor(
        dev=tmp_path, now=lambda: dt.datetime(1970, 1, 1, 0, 0, 42, tzinfo=dt.UTC)
    )

    run_doctor(config_file, out=io.StringIO(), doctor=doctor)

    assert doctor.lines[1] == (
        "FAIL  clock: 1970-01-01T00:00:42+00:00 is before 2024-06-01; the hub will "
        "refuse tokens: enable time sync (sudo timedatectl set-ntp true) and "
        "check the network"
    )


def test_missing_config_is_one_failed_line(tmp_path: Path) -> None:
    """Test that a wrong --config path fails with the config error's fix."""
    out = io.StringIO()

    status = run_doctor(tmp_path / "nope.toml", out=out, doctor=Doctor(dev=tmp_path))

    assert status == 1
    assert out.getvalue() == (
        f"FAIL  config: config file {tmp_path / 'nope.toml'} not found; pass "
        "--config with the right path\n"
    )


def test_add_commands_registers_doctor_with_config() -> None:
    """Test that the subcommand parses --config and points at the checks."""
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())

    args = parser.parse_args(["doctor", "--config", "x.toml"])

    assert args.config == Path("x.toml")
    assert args.func.__name__ == "_doctor"
