r"""SAS tokens and connection strings: parse, sign, mint and verify.

Standard library only, so the service client can use it on a Pi without the
dev hub's extra dependencies. The token format and the string-to-sign follow
IoT Hub's "Control access with SAS" guide: ``sr`` (URL-encoded resource URI),
``sig`` (base64 HMAC-SHA256 of ``sr + "\n" + se``, URL-encoded), ``se``
(expiry, seconds since the epoch) and, for policy keys, ``skn``.
"""

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote, unquote_plus

TOKEN_PREFIX = "SharedAccessSignature "
KEY_BYTES = 32
_TOKEN_FIELDS = frozenset({"sr", "sig", "se", "skn"})
_SECRET_RE = re.compile(
    r"(SharedAccessKey=|sig=|SharedAccessSignature=)[^;&\s\"']+", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class SasToken:
    """A parsed SAS token.

    Attributes:
        resource: The ``sr`` field exactly as received (still URL-encoded);
            the signature covers these bytes, not a re-encoding of them.
        signature: The base64 signature, URL-decoded.
        expiry: The ``se`` field, seconds since the Unix epoch.
        key_name: The ``skn`` policy name, or None for identity keys.
    """

    resource: str
    signature: str
    expiry: int
    key_name: str | None = None

    @property
    def resource_uri(self) -> str:
        """Return the resource URI with its URL-encoding removed."""
        return unquote_plus(self.resource)


def new_key() -> str:
    """Return a fresh random 256-bit symmetric key, base64-encoded."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def sign(key: str, resource: str, expiry: int) -> str:
    r"""Return the base64 HMAC-SHA256 of ``resource + "\n" + expiry``.

    Args:
        key: The base64 symmetric key.
        resource: The ``sr`` value exactly as it appears in the token.
        expiry: The ``se`` value.

    Raises:
        ValueError: The key is not valid base64.
    """
    try:
        raw_key = base64.b64decode(key, validate=True)
    except binascii.Error as err:
        raise ValueError(f"key is not valid base64 ({err}); copy it again") from err
    message = f"{resource}\n{expiry}".encode()
    digest = hmac.new(raw_key, message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def mint_sas_token(
    uri: str, key: str, *, expiry: int, key_name: str | None = None
) -> str:
    """Return a SAS token for ``uri`` signed with ``key``.

    Args:
        uri: The resource URI, e.g. ``hub/devices/d/modules/m`` or ``hub``.
        key: The base64 symmetric key.
        expiry: Expiry in seconds since the Unix epoch.
        key_name: The policy name (``skn``); None for identity keys.
    """
    resource = quote(uri, safe="")
    signature = quote(sign(key, resource, expiry), safe="")
    token = f"{TOKEN_PREFIX}sr={resource}&sig={signature}&se={expiry}"
    if key_name is not None:
        token += f"&skn={quote_plus(key_name)}"
    return token


def parse_sas_token(text: str) -> SasToken:
    """Parse a ``SharedAccessSignature sr=..&sig=..&se=..`` token.

    Raises:
        ValueError: The text is not a SAS token; the message says which part.
    """
    if not text.startswith(TOKEN_PREFIX):
        raise ValueError("token does not start with 'SharedAccessSignature '")
    fields: dict[str, str] = {}
    for item in text[len(TOKEN_PREFIX) :].split("&"):
        name, sep, value = item.partition("=")
        if not sep or name in fields:
            # Name only known fields: an unknown one may be a pasted secret.
            shown = repr(name) if name in _TOKEN_FIELDS else "an unknown field"
            raise ValueError(f"token has {shown} malformed or repeated")
        fields[name] = value
    missing = {"sr", "sig", "se"} - fields.keys()
    if missing:
        raise ValueError(f"token lacks {', '.join(sorted(missing))}")
    if not fields["se"].isdigit():
        raise ValueError(f"token se={fields['se']!r} is not an integer")
    skn = fields.get("skn")
    return SasToken(
        resource=fields["sr"],
        signature=unquote(fields["sig"]),
        expiry=int(fields["se"]),
        key_name=unquote_plus(skn) if skn is not None else None,
    )


def signature_matches(token: SasToken, keys: Iterable[str]) -> bool:
    """Return True if any of ``keys`` produced the token's signature."""
    for key in keys:
        try:
            expected = sign(key, token.resource, token.expiry)
        except ValueError:
            continue
        if hmac.compare_digest(expected, token.signature):
            return True
    return False


def scope_covers(scope: str, resource: str) -> bool:
    """Return True if a token for ``scope`` grants access to ``resource``.

    IoT Hub compares URIs segment by segment: ``h/devices`` covers
    ``h/devices/d`` but not ``h/devicesX``.
    """
    scope_parts = scope.lower().rstrip("/").split("/")
    resource_parts = resource.lower().rstrip("/").split("/")
    return resource_parts[: len(scope_parts)] == scope_parts


def parse_connection_string(text: str) -> dict[str, str]:
    """Split ``Key=value;Key=value`` into a dict (values may contain ``=``).

    Raises:
        ValueError: An item has no ``=`` or a key is repeated.
    """
    fields: dict[str, str] = {}
    for item in text.strip().strip(";").split(";"):
        name, sep, value = item.partition("=")
        if not sep or not name or name in fields:
            raise ValueError(
                f"connection string item {name!r} is malformed or repeated; "
                "expected Key=value pairs separated by ';'"
            )
        fields[name] = value
    return fields


def mask_secrets(text: str) -> str:
    """Return ``text`` with keys and signatures replaced by ``***``."""
    return _SECRET_RE.sub(r"\1***", text)
