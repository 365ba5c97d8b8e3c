"""The fuzzed paths by name."""

from fuzzing.paths import DhcpPath, FloodPath, RsPath

PATHS = {cls.name: cls for cls in (FloodPath, DhcpPath, RsPath)}
