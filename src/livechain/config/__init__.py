"""Typed, strict, frozen config: load YAML → expand ``${ENV}`` → validate → defaults; a store with reload.

Usage:
    config = load_config("livechain.yaml")          # or parse_config(text); raises ConfigError
    chain = config.chain_by_route("8453")           # by name or decimal chain id
    for provider in chain.providers_by_priority: ...
"""

from .durations import format_duration, parse_duration
from .expand import expand_env, format_path
from .load import REGION_ENV, ConfigError, config_from_mapping, load_config, parse_config
from .schema import (
    BreakerConfig,
    ChainConfig,
    Config,
    Duration,
    FrozenDict,
    LoggingConfig,
    MethodPolicy,
    MetricsConfig,
    PersistenceConfig,
    ProviderConfig,
    ServerConfig,
    Strategy,
    WsServerConfig,
)
from .store import ConfigStore, ReloadResult, diff_configs

__all__ = [
    "REGION_ENV",
    "BreakerConfig",
    "ChainConfig",
    "Config",
    "ConfigError",
    "ConfigStore",
    "Duration",
    "FrozenDict",
    "LoggingConfig",
    "MethodPolicy",
    "MetricsConfig",
    "PersistenceConfig",
    "ProviderConfig",
    "ReloadResult",
    "ServerConfig",
    "Strategy",
    "WsServerConfig",
    "config_from_mapping",
    "diff_configs",
    "expand_env",
    "format_duration",
    "format_path",
    "load_config",
    "parse_config",
    "parse_duration",
]
