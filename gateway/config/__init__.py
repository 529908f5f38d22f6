"""Configuration: YAML in, a frozen, validated GatewayConfig out.

``load_config(path)`` is the only function that touches the outside world: it reads the
YAML file, the environment (``${VAR}``, ``${VAR:-default}``), ``policy_files`` and the
``*_file`` secrets. ``parse_config(raw)`` is pure and checks everything, reporting every
problem at once as ``path.to.key: reason`` in a single ConfigError.
"""

from gateway.config.load import interpolate, load_config
from gateway.config.models import (
    DEFAULT_IDENTITY_HEADERS,
    AssertionConfig,
    GatewayConfig,
    IdentityConfig,
    ProviderConfig,
    RouteConfig,
    SentinelConfig,
    ServerConfig,
    SessionConfig,
    config_json_schema,
)
from gateway.config.parse import format_validation_error, parse_config
from gateway.config.values import HEADER_FIELDS, parse_duration, template_fields

__all__ = [
    "DEFAULT_IDENTITY_HEADERS",
    "HEADER_FIELDS",
    "AssertionConfig",
    "GatewayConfig",
    "IdentityConfig",
    "ProviderConfig",
    "RouteConfig",
    "SentinelConfig",
    "ServerConfig",
    "SessionConfig",
    "config_json_schema",
    "format_validation_error",
    "interpolate",
    "load_config",
    "parse_config",
    "parse_duration",
    "template_fields",
]
