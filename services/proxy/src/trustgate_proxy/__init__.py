"""TrustGate proxy plane: OpenAI-compatible traffic, served from a config replica."""

__version__ = "0.1.0"
