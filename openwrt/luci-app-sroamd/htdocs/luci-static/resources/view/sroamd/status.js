'use strict';
'require view';
'require rpc';
'require poll';
'require dom';

/*
 * sroamd's status, refreshed every few seconds from its ubus object
 * (sroamd/ubus_object.py): `ubus call sroamd status|peers|clients|leases|roams`.
 * Every method the page calls is granted in
 * /usr/share/rpcd/acl.d/luci-app-sroamd.json, and nothing else.
 */

var POLL_SECONDS = 5;

var callStatus = rpc.declare({ object: 'sroamd', method: 'status', expect: { '': {} } });
var callPeers = rpc.declare({ object: 'sroamd', method: 'peers', expect: { '': {} } });
var callClients = rpc.declare({ object: 'sroamd', method: 'clients', expect: { clients: [] } });
var callLeases = rpc.declare({ object: 'sroamd', method: 'leases', expect: { leases: [] } });
var callRoams = rpc.declare({ object: 'sroamd', method: 'roams', expect: { '': {} } });

/* --- formatting ---------------------------------------------------------------- */

function duration(seconds) {
	seconds = Math.max(0, Math.floor(+seconds || 0));
	var d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24,
	    m = Math.floor(seconds / 60) % 60, s = seconds % 60;
	var out = [];
	if (d) out.push(d + 'd');
	if (d || h) out.push(h + 'h');
	if (d || h || m) out.push(m + 'm');
	out.push(s + 's');
	return out.join(' ');
}

function pad(n) {
	return (n < 10 ? '0' : '') + n;
}

function wallTime(seconds) {
	var t = new Date(seconds * 1000);
	return t.getFullYear() + '-' + pad(t.getMonth() + 1) + '-' + pad(t.getDate()) + ' ' +
		pad(t.getHours()) + ':' + pad(t.getMinutes()) + ':' + pad(t.getSeconds());
}

function percentile(sorted, p) {
	if (!sorted.length)
		return null;
	return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))];
}

function ms(value) {
	return value == null ? '-' : (+value).toFixed(2) + ' ms';
}

/* --- building blocks ------------------------------------------------------------- */

function table(id, titles, rows, empty) {
	var head = E('tr', { 'class': 'tr table-titles' }, titles.map(function(title) {
		return E('th', { 'class': 'th' }, title);
	}));
	var body = rows.length ? rows.map(function(row) {
		return E('tr', { 'class': 'tr' }, row.map(function(cell, i) {
			return E('td', { 'class': 'td', 'data-title': titles[i] }, cell == null ? '-' : String(cell));
		}));
	}) : [ E('tr', { 'class': 'tr placeholder' }, [
		E('td', { 'class': 'td', 'colspan': titles.length }, E('em', {}, empty))
	]) ];
	return E('table', { 'class': 'table', 'id': id }, [ head ].concat(body));
}

function keyValues(id, pairs) {
	return E('table', { 'class': 'table', 'id': id }, pairs.map(function(pair) {
		return E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td left', 'width': '33%' }, pair[0]),
			E('td', { 'class': 'td left' }, pair[1] == null ? '-' : String(pair[1]))
		]);
	}));
}

function section(id, title, content) {
	return E('div', { 'class': 'cbi-section', 'id': id }, [
		E('h3', {}, title),
		E('div', { 'class': 'sroamd-body' }, content)
	]);
}

/* Counters of a {reason: count} table as rows, "none" rows left out. */
function counterRows(what, counts) {
	return Object.keys(counts || {}).sort().map(function(reason) {
		return [ what, reason, counts[reason] ];
	});
}

/* --- the page ---------------------------------------------------------------------- */

function nodeSection(status) {
	var sync = status.sync || {};
	return keyValues('sroamd-node', [
		[ _('Node id'), status.node_id ],
		[ _('Version'), status.version ],
		[ _('Uptime'), duration(status.uptime) ],
		[ _('Store synced'), sync.synced
			? _('yes (%s, after %s)').replace('%s', sync.how || '-').replace('%s', duration(sync.seconds))
			: _('not yet: no new addresses are handed out') ],
		[ _('Roaming interfaces'), (status.interfaces || []).join(', ') ],
		[ _('Clients served here'), status.clients ],
		[ _('Leases (IPv4 / IPv6)'), status.ipv4_leases + ' / ' + status.ipv6_leases ],
		[ _('Associations in the store'), status.associations ],
		[ _('Data in the store'), status.data ],
		[ _('Roams in / out / re-claims'), status.roams_in + ' / ' + status.roams_out + ' / ' + status.reclaims ]
	]);
}

function peersSection(status, peers) {
	var configured = (status.peers || []).map(function(p) { return [ p.peer, p.state ]; });
	var sessions = (peers.sessions || []).map(function(s) {
		return [ s.peer, s.direction, s.established ? _('established') : _('handshake'),
			s.updates_in, s.updates_out, s.refused,
			(s.dump_received ? _('received') : '-') + ' / ' + (s.dump_sent ? _('sent') : '-'),
			duration(s.seconds) ];
	});
	return [
		table('sroamd-peers', [ _('Configured peer'), _('State') ], configured,
			_('No peers configured')),
		table('sroamd-sessions', [ _('Session'), _('Direction'), _('State'), _('Updates in'),
			_('Updates out'), _('Refused'), _('Dump in / out'), _('Age') ], sessions,
			_('No flooding session'))
	];
}

function clientsSection(clients) {
	return table('sroamd-clients', [ _('MAC'), _('Interface'), _('IPv4 address'), _('IPv6 prefix') ],
		clients.map(function(c) { return [ c.mac, c.interface, c.ipv4, c.ipv6 ]; }),
		_('No client served here'));
}

function leasesSection(leases, nodeId) {
	return table('sroamd-leases', [ _('Address'), _('MAC'), _('Remaining'), _('Served by') ],
		leases.map(function(l) {
			return [ l.address, l.mac, duration(l.remaining),
				l.node == null ? _('nobody') : l.node == nodeId ? _('this node') : l.node ];
		}), _('No lease'));
}

function roamsSection(roams) {
	if (roams == null)
		return E('p', {}, E('em', {}, _('This sroamd keeps no roam history (ubus call sroamd roams): update it.')));
	var rows = (roams.roams || []).map(function(r) {
		return [ wallTime(r.time), r.mac,
			r.action == 'arrived' ? _('arrived on %s').replace('%s', r.interface)
				: _('left %s').replace('%s', r.interface),
			r.action == 'arrived' ? (r.from || _('unknown')) : (r.to || _('unknown')) ];
	});
	return [
		E('p', {}, _('The last %d roams (%d since sroamd started).')
			.replace('%d', roams.limit).replace('%d', roams.total || 0)),
		table('sroamd-roams', [ _('Time'), _('MAC'), _('Roam'), _('Other node') ], rows,
			_('No roam yet'))
	];
}

function timesSection(status) {
	var times = (status.assoc_ms || []).slice();
	var sorted = times.slice().sort(function(a, b) { return a - b; });
	return keyValues('sroamd-times', [
		[ _('Associations measured'), times.length ],
		[ _('Last'), ms(times.length ? times[times.length - 1] : null) ],
		[ _('Median'), ms(percentile(sorted, 50)) ],
		[ _('95th percentile'), ms(percentile(sorted, 95)) ],
		[ _('Slowest'), ms(sorted.length ? sorted[sorted.length - 1] : null) ]
	]);
}

function countersSection(status) {
	var flood = status.flood || {}, service = status.service || {}, stations = status.stations || {};
	var rows = [
		[ _('Flooding'), _('malformed peer messages'), status.malformed_peer_messages ],
		[ _('Flooding'), _('remaining times cut'), flood.times_clamped ],
		[ _('Flooding'), _('listener errors'), flood.listener_errors ]
	].concat(
		counterRows(_('Sessions refused'), flood.refused_sessions),
		counterRows(_('Data refused'), flood.refused_data),
		counterRows(_('Sessions closed'), flood.closed_sessions),
		counterRows(_('DHCP dropped'), (service.dhcp || {}).dropped),
		counterRows(_('RS dropped'), service.rs_dropped)
	);
	if (stations.event_errors != null)
		rows.push([ _('Stations'), _('event errors'), stations.event_errors ]);
	return table('sroamd-counters', [ _('Where'), _('What'), _('Count') ], rows, _('Nothing refused'));
}

return view.extend({
	fetch: function() {
		/* A sroamd older than the roams history has every other method. */
		return Promise.all([ callStatus(), callPeers(), callClients(), callLeases(),
			callRoams().catch(function() { return null; }) ]);
	},

	load: function() {
		return this.fetch().catch(function(err) { return err; });
	},

	update: function(root, data) {
		var notice = root.querySelector('#sroamd-error');
		if (data instanceof Error) {
			dom.content(notice, E('p', { 'class': 'alert-message warning' },
				_('sroamd does not answer on ubus (is it enabled and running? logread -e sroamd): %s')
					.replace('%s', data.message)));
			return;
		}
		dom.content(notice, '');
		var status = data[0], peers = data[1], clients = data[2], leases = data[3], roams = data[4];
		function fill(id, content) {
			dom.content(root.querySelector('#' + id + ' .sroamd-body'), content);
		}
		fill('sroamd-section-node', nodeSection(status));
		fill('sroamd-section-peers', peersSection(status, peers));
		fill('sroamd-section-clients', clientsSection(clients));
		fill('sroamd-section-leases', leasesSection(leases, status.node_id));
		fill('sroamd-section-roams', roamsSection(roams));
		fill('sroamd-section-times', timesSection(status));
		fill('sroamd-section-counters', countersSection(status));
	},

	render: function(data) {
		var root = E('div', { 'id': 'sroamd-status' }, [
			E('h2', {}, _('Seamless roaming')),
			E('div', { 'id': 'sroamd-error' }),
			section('sroamd-section-node', _('This node'), []),
			section('sroamd-section-peers', _('Peers'), []),
			section('sroamd-section-clients', _('Clients served here'), []),
			section('sroamd-section-leases', _('Leases'), []),
			section('sroamd-section-roams', _('Last roams'), []),
			section('sroamd-section-times', _('Association handling times'), []),
			section('sroamd-section-counters', _('Refused and malformed'), [])
		]);
		this.update(root, data);
		var view = this;
		poll.add(function() {
			return view.fetch().catch(function(err) { return err; }).then(function(fresh) {
				view.update(root, fresh);
			});
		}, POLL_SECONDS);
		return root;
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
