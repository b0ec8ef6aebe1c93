"""TrustGate admin plane: owns the configuration, announces every change on the bus."""

__version__ = "0.1.0"
