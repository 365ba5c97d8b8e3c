"""The fuzzed paths by name."""

from fuzzing.paths import DhcpPath, FloodPath, RsPath
from fuzzing.paths_hostapd import HostapdPath
from fuzzing.paths_ubus import UbusPath

PATHS = {cls.name: cls for cls in (FloodPath, DhcpPath, RsPath, UbusPath, HostapdPath)}
