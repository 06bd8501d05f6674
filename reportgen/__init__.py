"""reportgen: 项目支出绩效自评表 from YAML — load → validate → score → render → convert → bundle."""

__version__ = "0.1.0"
