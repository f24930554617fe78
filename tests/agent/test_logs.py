import io
import logging

import pytest

from agent.logs import mask_secrets, setup_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_connection_string_key_is_masked() -> None:
    """Test that a key inside a connection string never reaches a log line."""
    text = "cs=HostName=h;DeviceId=d;SharedAccessKey=abc+/def==;GatewayHostName=x"

    assert mask_secrets(text) == (
        "cs=HostName=h;DeviceId=d;SharedAccessKey=***;GatewayHostName=x"
    )


def test_sas_token_signature_is_masked() -> None:
    """Test that the signature of a SAS token is hidden."""
    token = "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=AbC%2B%3D&se=17"

    assert "AbC" not in mask_secrets(token)


def test_journald_lines_carry_priority_and_no_time(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    """Test that under journald a warning line starts with <4> and the logger."""
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    out = io.StringIO()
    setup_logging(stream=out)

    logging.getLogger("agent.runner").warning("sensor degraded module=%s", "light")

    assert out.getvalue() == "<4>agent.runner: sensor degraded module=light\n"


def test_sdk_info_lines_hidden_unless_verbose(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    """Test that the SDK's chatty INFO lines stay out of the default log."""
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    setup_logging(stream=out)

    logging.getLogger("azure.iot.device.x").info("Connecting to Hub...")

    assert out.getvalue() == ""
