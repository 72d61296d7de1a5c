"""memberflow's configuration: one YAML file, validated at load, with secrets kept by reference.

``load_config`` / ``parse_config`` return a ``LoadedConfig`` (the frozen ``MemberflowConfig`` model,
a content version, any warnings, and the model compiled for the domain as ``setup``) or raise
``ConfigError`` listing every problem as ``"<dotted.key.path>: <message>"``. ``SecretResolver``
turns ``env:``/``ssm:`` references into values when they are needed; ``json_schema`` is the schema
editors use.
"""

from chalicelib.config.loader import ConfigError, LoadedConfig, load_config, parse_config
from chalicelib.config.model import MemberflowConfig
from chalicelib.config.schema import json_schema
from chalicelib.config.secrets import SecretResolver, SecretUnavailable

__all__ = [
    "ConfigError",
    "LoadedConfig",
    "MemberflowConfig",
    "SecretResolver",
    "SecretUnavailable",
    "json_schema",
    "load_config",
    "parse_config",
]
