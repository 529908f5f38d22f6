"""Why an assertion was not accepted."""

from __future__ import annotations


class GatewayClientError(Exception):
    """Base of everything hf_gateway_client raises."""


class InvalidAssertion(GatewayClientError):  # noqa: N818 - reads as the condition it names
    """The token is missing, malformed, forged, expired or meant for someone else.

    ``code`` is short and stable (``missing``, ``malformed``, ``algorithm``, ``unknown_key``,
    ``signature``, ``expired``, ``issuer``, ``audience``, ``claims``); answer 401.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class JWKSUnavailable(GatewayClientError):  # noqa: N818
    """The gateway's keys could not be fetched, so nobody can be verified; answer 503."""
