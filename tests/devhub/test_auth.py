import base64
import hashlib
import hmac
from urllib.parse import quote

import pytest

from devhub import auth

KEY = base64.b64encode(b"k" * 32).decode()


def test_mint_follows_the_sdk_encoding() -> None:
    """Test sr/sig encoding and the string-to-sign of a module token."""
    token = auth.mint_sas_token("hub/devices/d/modules/m", KEY, expiry=1700000000)

    resource = "hub%2Fdevices%2Fd%2Fmodules%2Fm"
    digest = hmac.new(
        b"k" * 32, f"{resource}\n1700000000".encode(), hashlib.sha256
    ).digest()
    signature = quote(base64.b64encode(digest).decode(), safe="")
    assert token == (
        f"SharedAccessSignature sr={resource}&sig={signature}&se=1700000000"
    )


def test_parse_keeps_the_raw_resource_and_decodes_the_rest() -> None:
    """Test that sr stays as received while sig and skn are decoded."""
    token = auth.parse_sas_token(
        "SharedAccessSignature sr=Hub%2fdevices&sig=a%2Bb%3D&se=5&skn=owner"
    )

    assert token == auth.SasToken("Hub%2fdevices", "a+b=", 5, "owner")
    assert token.resource_uri == "Hub/devices"


def test_signature_is_checked_over_the_raw_resource() -> None:
    """Test that a lower-case %2f resource verifies as it was signed."""
    signature = quote(auth.sign(KEY, "hub%2fdevices%2fd", 9), safe="")
    token = auth.parse_sas_token(
        f"SharedAccessSignature sr=hub%2fdevices%2fd&sig={signature}&se=9"
    )

    assert auth.signature_matches(token, ["bm90IHRoZSBrZXk=", KEY])
    assert not auth.signature_matches(token, ["bm90IHRoZSBrZXk="])


BAD_TOKENS = {
    "no prefix": ("sr=a&sig=b&se=1", "does not start"),
    "missing se": ("SharedAccessSignature sr=a&sig=b", "lacks se"),
    "se not integer": ("SharedAccessSignature sr=a&sig=b&se=x", "se='x'"),
    "repeated field": ("SharedAccessSignature sr=a&sr=b&sig=c&se=1", "'sr'"),
    "secret-looking junk": ("SharedAccessSignature sr=a&SECRET&se=1", "unknown field"),
}


@pytest.mark.parametrize(("text", "message"), BAD_TOKENS.values(), ids=BAD_TOKENS)
def test_parse_refuses_malformed_tokens(text: str, message: str) -> None:
    """Test that malformed tokens raise ValueError naming the problem."""
    with pytest.raises(ValueError, match=message) as caught:
        auth.parse_sas_token(text)

    assert "SECRET" not in str(caught.value)


def test_scope_covers_compares_whole_segments() -> None:
    """Test IoT Hub's segment-wise prefix rule for token scopes."""
    assert auth.scope_covers("hub", "hub/twins/d/modules/m")
    assert auth.scope_covers("hub/devices", "HUB/devices/d")
    assert not auth.scope_covers("hub/devices", "hub/devicesX/d")
    assert not auth.scope_covers("hub/devices/d", "hub/devices")


def test_connection_string_values_may_contain_equals() -> None:
    """Test that items split on the first '=' only."""
    fields = auth.parse_connection_string("HostName=h;SharedAccessKey=YWI=;")

    assert fields == {"HostName": "h", "SharedAccessKey": "YWI="}


def test_connection_string_refuses_repeated_keys() -> None:
    """Test that a repeated key is an error with the fix."""
    with pytest.raises(ValueError, match="malformed or repeated"):
        auth.parse_connection_string("HostName=a;HostName=b")


def test_mask_secrets_hides_keys_and_signatures() -> None:
    """Test that keys and signatures never reach a log line."""
    text = "HostName=h;SharedAccessKey=c2VjcmV0;x sr=a&sig=abc%2B&se=1"

    assert (
        auth.mask_secrets(text) == "HostName=h;SharedAccessKey=***;x sr=a&sig=***&se=1"
    )


def test_sign_refuses_a_key_that_is_not_base64() -> None:
    """Test that a bad key gives ValueError with the fix."""
    with pytest.raises(ValueError, match="not valid base64"):
        auth.sign("not base64!", "r", 1)
