'use strict';
'require view';
'require form';
'require network';

/*
 * sroamd's settings: one form over `config sroamd 'main'` in
 * /etc/config/sroamd, with every option the daemon reads (sroamd/uci.py
 * OPTIONS). Each value is checked as `sroamd --check` checks it
 * (sroamd/config.py), so that what this form saves the daemon starts with;
 * the form is stricter in one way only: no leading or trailing spaces, no
 * '+' or '_' in numbers.
 */

/* --- parsing, as Python's ipaddress module does --------------------------- */

/* Four decimal octets, no leading zeros (Python rejects "01" since 3.9.5). */
function parseIPv4(text) {
	var parts = String(text).split('.');
	if (parts.length != 4)
		return null;
	var bytes = [];
	for (var i = 0; i < 4; i++) {
		if (!/^(0|[1-9][0-9]{0,2})$/.test(parts[i]) || +parts[i] > 255)
			return null;
		bytes.push(+parts[i]);
	}
	return bytes;
}

/* Eight groups of 1-4 hex digits, one '::' at most, an IPv4 tail allowed. */
function parseIPv6(text) {
	text = String(text);
	if (text.indexOf('%') >= 0 || !/^[0-9A-Fa-f:.]+$/.test(text))
		return null;
	var halves = text.split('::');
	if (halves.length > 2)
		return null;
	function groups(part, last) {
		if (part === '')
			return [];
		var out = [], items = part.split(':');
		for (var i = 0; i < items.length; i++) {
			if (last && i == items.length - 1 && items[i].indexOf('.') >= 0) {
				var v4 = parseIPv4(items[i]);
				if (!v4)
					return null;
				out.push(v4[0] << 8 | v4[1], v4[2] << 8 | v4[3]);
			}
			else if (/^[0-9A-Fa-f]{1,4}$/.test(items[i]))
				out.push(parseInt(items[i], 16));
			else
				return null;
		}
		return out;
	}
	var head = groups(halves[0], halves.length == 1);
	var tail = halves.length == 2 ? groups(halves[1], true) : [];
	if (!head || !tail)
		return null;
	if (halves.length == 1)
		return head.length == 8 ? head : null;
	if (head.length + tail.length > 7)
		return null;
	while (head.length + tail.length < 8)
		head.push(0);
	return head.concat(tail);
}

/* An address: {version, bits: [0|1, ...]} or null. */
function parseAddress(text) {
	var v4 = parseIPv4(text);
	if (v4)
		return { version: 4, bits: toBits(v4, 8) };
	var v6 = parseIPv6(text);
	if (v6)
		return { version: 6, bits: toBits(v6, 16) };
	return null;
}

function toBits(words, width) {
	var bits = [];
	words.forEach(function(word) {
		for (var i = width - 1; i >= 0; i--)
			bits.push((word >> i) & 1);
	});
	return bits;
}

/* ADDRESS[/LENGTH], host bits zero (ipaddress.ip_network(strict=True)). */
function parseNetwork(text) {
	var m = String(text).match(/^([^\/]+)(?:\/(0|[1-9][0-9]*))?$/);
	if (!m)
		return null;
	var address = parseAddress(m[1]);
	if (!address)
		return null;
	var length = m[2] !== undefined ? +m[2] : address.bits.length;
	if (length > address.bits.length)
		return null;
	for (var i = length; i < address.bits.length; i++)
		if (address.bits[i])
			return null;
	return { version: address.version, length: length };
}

/* --- one check per option: true, or the error to show --------------------- */

var checks = {
	prefix: function(value) {
		var net = parseNetwork(value);
		if (!net)
			return _('Expecting a prefix such as 2001:db8:4444::/48 or 192.168.44.0/24, with the host bits zero');
		if (net.version == 6 && net.length > 64)
			return _('An IPv6 prefix longer than /64 leaves no room for a /64 per client');
		if (net.version == 4 && net.length > 30)
			return _('An IPv4 prefix longer than /30 is too small to hand out addresses');
		return true;
	},
	address_any: function(value) {
		return parseAddress(value) ? true : _('Expecting an IPv4 or IPv6 address');
	},
	ipv4: function(value) {
		var address = parseAddress(value);
		return (address && address.version == 4) ? true : _('Expecting an IPv4 address');
	},
	network_any: function(value) {
		return parseNetwork(value) ? true
			: _('Expecting a prefix (ADDRESS/LENGTH, host bits zero) or an address');
	},
	peer: function(value) {
		var m = String(value).match(/^(?:\[([^\]]+)\]|([^:\[\]]+)):([0-9]+)$/);
		if (!m)
			return _('Expecting ADDRESS:PORT, an IPv6 address in brackets: [2001:db8::1]:4444');
		var address = parseAddress(m[1] !== undefined ? m[1] : m[2]);
		if (!address)
			return _('Not an IPv4 or IPv6 address');
		if (m[2] !== undefined && address.version == 6)
			return _('Put an IPv6 address in brackets: [2001:db8::1]:4444');
		return range(m[3], 1, 65535);
	},
	interface: function(value) {
		return /^[^\/\s:]{1,15}$/.test(value) ? true
			: _('Expecting a network name or a device name (at most 15 characters, no "/", ":" or spaces)');
	},
	path: function(value) {
		return String(value).charAt(0) == '/' ? true : _('Expecting an absolute path');
	},
	node_id: function(value) {
		/* bytes.fromhex() of the value without its colons: 8 bytes. */
		var hex = String(value).replace(/:/g, '');
		if (!/^[0-9A-Fa-f:]+$/.test(value) || !/^[0-9A-Fa-f]{16}$/.test(hex))
			return _('Expecting 16 hex digits (8 bytes), colons allowed between them');
		if (/^0+$/.test(hex))
			return _('The node id must not be all zeros');
		return true;
	}
};

function range(value, low, high) {
	if (!/^[0-9]+$/.test(String(value)))
		return _('Expecting a whole number');
	var n = parseInt(value, 10);
	if (n < low || n > high)
		return _('Expecting a number from %d to %d').replace('%d', low).replace('%d', high);
	return true;
}

function rangeCheck(low, high) {
	return function(value) { return range(value, low, high); };
}

/* --- the form ---------------------------------------------------------------- */

/* Wires a check to an option; empty values are the form's business (rmempty). */
function check(option, fn) {
	option.validate = function(section_id, value) {
		if (value == null || value === '')
			return true;
		return fn.call(this, value, section_id);
	};
	return option;
}

function listValues(section, section_id, name) {
	var value = section.formvalue(section_id, name);
	return Array.isArray(value) ? value : (value ? [ value ] : []);
}

return view.extend({
	load: function() {
		return Promise.all([
			network.getNetworks(),
			network.getDevices()
		]);
	},

	render: function(data) {
		var networks = data[0] || [], devices = data[1] || [];
		var m, s, o;

		m = new form.Map('sroamd', _('Seamless roaming (sroamd)'),
			_('Wireless clients keep their IPv4 address and IPv6 prefix while they move between the access points of one Babel-routed domain. Every access point runs sroamd with the same prefixes, nameservers and gateway address. Babel must run with "redistribute proto 44 allow" and "kernel-priority 256".'));

		s = m.section(form.NamedSection, 'main', 'sroamd');
		s.addremove = false;
		s.tab('general', _('General'));
		s.tab('flooding', _('Flooding peers'));
		s.tab('advanced', _('Advanced'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enabled'),
			_('Run sroamd. It also needs at least one prefix and one roaming interface to start.'));
		o.default = '1';
		o.rmempty = false;

		o = check(s.taboption('general', form.DynamicList, 'prefix', _('Prefixes'),
			_('Prefixes to hand out from, the same on every access point: at most one IPv4 prefix (one address per client, by DHCPv4) and one IPv6 prefix of /64 or shorter (one /64 per client, by Router Advertisements).')),
			function(value, section_id) {
				var ok = checks.prefix(value);
				if (ok !== true)
					return ok;
				var family = parseNetwork(value).version;
				var same = listValues(this.section, section_id, 'prefix').filter(function(other) {
					var net = parseNetwork(other);
					return net && net.version == family && other != value;
				});
				return same.length ? _('Only one prefix per address family') : true;
			});
		o.placeholder = '2001:db8:4444::/48';

		o = check(s.taboption('general', form.DynamicList, 'interface', _('Roaming interfaces'),
			_('Where clients are served: logical networks (resolved to their device, and sroamd is reloaded when they change) or network devices such as wlan0. Give each one the shared gateway address and the link-local address fe80::44.')),
			function(value, section_id) {
				var ok = checks.interface(value);
				if (ok !== true)
					return ok;
				if (!listValues(this.section, section_id, 'prefix').length)
					return _('Give a prefix first: without one there is nothing to serve on an interface');
				return true;
			});
		networks.forEach(function(net) {
			var device = net.getL3Device ? net.getL3Device() : null;
			o.value(net.getName(), device
				? _('Network %s (device %s)').replace('%s', net.getName()).replace('%s', device.getName())
				: _('Network %s').replace('%s', net.getName()));
		});
		devices.forEach(function(dev) {
			var name = dev.getName();
			if (!networks.some(function(net) { return net.getName() == name; }))
				o.value(name, _('Device %s').replace('%s', name));
		});

		o = check(s.taboption('general', form.Value, 'address', _('Gateway address'),
			_('The IPv4 address every access point shares on its roaming interfaces, announced to clients as their router. Default: the interface\'s own IPv4 address.')),
			checks.ipv4);
		o.placeholder = '192.168.44.1';

		o = check(s.taboption('general', form.DynamicList, 'nameserver', _('DNS servers'),
			_('Announced to clients: IPv4 ones by DHCPv4, IPv6 ones as RDNSS in Router Advertisements.')),
			checks.address_any);

		o = check(s.taboption('general', form.Value, 'lease_time', _('Lease time'),
			_('DHCPv4 lease time in seconds (60 to 604800). Give every access point the same.')),
			rangeCheck(60, 604800));
		o.placeholder = '1800';

		o = check(s.taboption('flooding', form.Value, 'port', _('Listen port'),
			_('TCP port on which to accept flooding peers. Accept it from the backbone only (firewall, and the options below).')),
			rangeCheck(1, 65535));
		o.placeholder = '4444';

		o = check(s.taboption('flooding', form.DynamicList, 'peer', _('Peers'),
			_('Flooding peers to connect to, ADDRESS:PORT with an IPv6 address in brackets ([2001:db8:4444::1234]:4444); reconnected when dropped. A few per access point, so that the graph of peers is connected.')),
			checks.peer);

		o = check(s.taboption('flooding', form.DynamicList, 'flood_listen', _('Listen addresses'),
			_('Accept flooding peers on these addresses only (default: every address). Give the backbone\'s.')),
			checks.address_any);

		o = check(s.taboption('flooding', form.DynamicList, 'flood_allow', _('Allowed peer prefixes'),
			_('Accept flooding sessions only from these prefixes (the configured peers are always allowed). Sessions from the client side are always refused.')),
			checks.network_any);

		o = check(s.taboption('flooding', form.Value, 'max_data', _('Store size'),
			_('Most data the replicated store holds (16 to 10000000); keys past it are refused and logged. Default: derived from the prefixes.')),
			rangeCheck(16, 10000000));

		o = check(s.taboption('flooding', form.Value, 'sync_grace', _('Sync grace'),
			_('Seconds after a start during which no new address is handed out unless a peer\'s complete dump came in first (0 to 3600).')),
			rangeCheck(0, 3600));
		o.placeholder = '10';

		o = s.taboption('advanced', form.ListValue, 'station_source', _('Station source'),
			_('Where associations come from: hostapd over ubus (the OpenWrt way), hostapd\'s control sockets, none (a DHCP or RS message means its sender is here), or auto: ubus when its socket exists, else the control sockets.'));
		o.value('auto', _('auto'));
		o.value('ubus', _('hostapd over ubus'));
		o.value('hostapd', _('hostapd control sockets'));
		o.value('none', _('none'));
		o.default = 'auto';

		o = check(s.taboption('advanced', form.Value, 'ubus_socket', _('ubus socket'),
			_('Path of ubusd\'s socket.')), checks.path);
		o.placeholder = '/var/run/ubus/ubus.sock';

		o = check(s.taboption('advanced', form.Value, 'hostapd_dir', _('hostapd control directory'),
			_('Where hostapd\'s control sockets are (ctrl_interface).')), checks.path);
		o.placeholder = '/var/run/hostapd';

		o = check(s.taboption('advanced', form.Value, 'route_metric', _('Route metric'),
			_('Metric of the clients\' host routes (protocol 44), 0 to 4294967295. Keep it below babeld\'s (kernel-priority 256).')),
			rangeCheck(0, 4294967295));
		o.placeholder = '128';

		o = check(s.taboption('advanced', form.Value, 'retract_proto', _('Retraction protocol'),
			_('Protocol (1 to 255; 0: none) of a shadow route added for an instant before a client\'s route is deleted, so that babeld retracts the right prefix (babeld 1.12 retracts ::/0). babeld needs "redistribute proto 45 metric 65534".')),
			rangeCheck(0, 255));
		o.placeholder = '45';

		o = check(s.taboption('advanced', form.Value, 'node_id', _('Node id'),
			_('This node\'s id, 16 hex digits. Default: generated once and kept in the state directory, so that a restart keeps its stations.')),
			checks.node_id);
		o.placeholder = '0123456789abcdef';

		o = check(s.taboption('advanced', form.Value, 'state_dir', _('State directory'),
			_('Where the node id and the store kept across a restart live.')), checks.path);
		o.placeholder = '/etc/sroamd';

		o = s.taboption('advanced', form.ListValue, 'debug', _('Log level'),
			_('0: warnings only, 1: informational, 2 and more: debug. Read with logread -e sroamd.'));
		for (var level = 0; level <= 9; level++)
			o.value(String(level), level == 0 ? _('0 (warnings)') : level == 1 ? _('1 (informational)')
				: level == 2 ? _('2 (debug)') : String(level));
		o.default = '0';

		return m.render();
	}
});
