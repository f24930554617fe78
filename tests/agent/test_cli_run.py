"""`pitwin run` refuses a wrong config at start-up with one line and status 78."""

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = """
[device]
id = "pi-1"
hub_hostname = "hub.example"
gateway_host = "127.254.254.254"

[modules.light]
driver = "{driver}"
key = "{key}"
[modules.light.sensor]
{option}
"""

# Generated per run, so the repository holds no key, not even a fake one.
KEY = base64.b64encode(secrets.token_bytes(32)).decode()


def run(
    tmp_path: Path, *, driver: str, option: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "pitwin.toml"
    path.write_text(CONFIG.format(driver=driver, option=option, key=KEY))
    path.chmod(0o600)
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.mark.parametrize(
    ("driver", "option", "message"),
    [
        (
            "simulated-lite",
            "",
            "[modules.light] sensor: unknown sensor driver 'simulated-lite'; "
            "use one of: ",
        ),
        ("simulated-light", "sead = 3", "[modules.light] sensor: "),
    ],
    ids=["unknown-driver", "unknown-option"],
)
def test_wrong_sensor_config_stops_the_agent(
    tmp_path: Path, driver: str, option: str, message: str
) -> None:
    """Test that a wrong driver or option is a config error naming the table."""
    result = run(tmp_path, driver=driver, option=option)

    assert result.returncode == 78
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"pitwin: error: {message}")


def test_config_error_under_journald_is_filed_as_an_error(tmp_path: Path) -> None:
    """Test that the error line carries the journald error priority."""
    env = {**os.environ, "JOURNAL_STREAM": "8:1234"}

    result = run(tmp_path, driver="nope", env=env)

    assert result.stderr.startswith("<3>pitwin: error: [modules.light] sensor: ")


def test_second_agent_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    """Test that a second agent cannot share a state directory with a running one."""
    path = tmp_path / "pitwin.toml"
    path.write_text(CONFIG.format(driver="simulated-light", option="", key=KEY))
    path.chmod(0o600)
    command = [sys.executable, "-m", "agent.cli", "run", "--config", str(path)]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as first:
        assert first.stderr is not None
        for line in first.stderr:
            if "module started" in line:
                break

        second = subprocess.run(
            command, capture_output=True, text=True, timeout=60, check=False
        )
        first.terminate()

    assert second.returncode == 78
    assert second.stderr == (
        f"pitwin: error: another agent (pid {first.pid}) is using state_dir "
        f"{tmp_path / 'state'}; stop it first (systemctl stop pitwin)\n"
    )


def test_unusable_state_dir_is_a_config_error(tmp_path: Path) -> None:
    """Test that a state_dir that cannot be made gives one line and status 78."""
    (tmp_path / "afile").write_text("")
    path = tmp_path / "pitwin.toml"
    text = CONFIG.format(driver="simulated-light", option="", key=KEY)
    text = text.replace("[device]", '[device]\nstate_dir = "afile/sub"')
    path.write_text(text)
    path.chmod(0o600)

    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 78
    assert result.stderr == (
        f"pitwin: error: state_dir {tmp_path / 'afile' / 'sub'} is not usable "
        "(Not a directory); set [device] state_dir to a directory this user "
        "can write\n"
    )
