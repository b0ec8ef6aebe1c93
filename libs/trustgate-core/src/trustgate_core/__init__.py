"""TrustGate core: the contracts every service shares."""

__version__ = "0.1.0"
