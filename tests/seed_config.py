"""The original's example command line, as a UCI config (shared by the UCI and init script tests)."""

SEED_UCI = """\
config sroamd 'main'
	option enabled '1'
	list prefix '2001:db8:4444::/48'
	list prefix '192.168.44.0/24'
	option port '4444'
	list peer '[2001:db8:4444::1234]:4444'
	list nameserver '2001:db8:1234::42'
	list nameserver '10.0.0.42'
	option address '192.168.44.1'
	list interface 'wlan0'
"""
