import pytest

from agent.errors import ConfigError
from devhub.cli import _assignment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sample_interval_s=10", ("sample_interval_s", 10)),
        ("enabled=false", ("enabled", False)),
        ("location=bed 2", ("location", "bed 2")),
        ('location="3"', ("location", "3")),
        ("offset_c=null", ("offset_c", None)),
        ('calibration={"dry": 1}', ("calibration", {"dry": 1})),
        ("note=NaN", ("note", "NaN")),
        ("note=Infinity", ("note", "Infinity")),
        ("equation=a=b", ("equation", "a=b")),
    ],
    ids=[
        "number",
        "boolean",
        "text",
        "quoted",
        "null",
        "object",
        "nan",
        "inf",
        "equals",
    ],
)
def test_values_are_json_when_json_else_text(
    text: str, expected: tuple[str, object]
) -> None:
    """Test that KEY=VALUE takes JSON values and keeps anything else as text."""
    assert _assignment(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("novalue", "'novalue' is not KEY=VALUE; write e.g. sample_interval_s=10"),
        ("=3", "'=3' is not KEY=VALUE; write e.g. sample_interval_s=10"),
        (
            "$version=5",
            "'$version' is kept by the hub ($version, $metadata); set your own keys",
        ),
    ],
    ids=["no-equals", "no-key", "dollar"],
)
def test_bad_assignment_says_how_to_write_it(text: str, message: str) -> None:
    """Test that a malformed assignment is refused with the right form."""
    with pytest.raises(ConfigError) as caught:
        _assignment(text)

    assert str(caught.value) == message
