"""IIOE platform: shared event contracts (pure pydantic) and the runtime every service shares."""

__version__ = "0.1.0"
