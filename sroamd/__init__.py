"""sroamd: seamless IP roaming for access points of one routed (Babel) domain."""

__version__ = "0.1.0"
