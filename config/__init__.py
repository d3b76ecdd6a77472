"""Configuration: documented defaults, a schema, a terminal's own file and environment overrides."""
from config.loader import ConfigError, load_config
from config.schema import KioskConfig

__all__ = ["ConfigError", "KioskConfig", "load_config"]
