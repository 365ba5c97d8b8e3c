/*
 * Drives a view loaded in the stand-in (standin.js) and posts what it saw
 * to the test's server (/result): harness.html?view=sroamd/settings&scenario=settings.
 */
(function() {
	'use strict';
	var params = new URLSearchParams(location.search);
	var result = { view: params.get('view'), scenario: params.get('scenario'), errors: [] };

	window.__standinError = function(e) { result.errors.push(String(e && e.stack || e)); };
	window.addEventListener('error', function(ev) {
		result.errors.push(String(ev.error && ev.error.stack || ev.message));
	});
	window.addEventListener('unhandledrejection', function(ev) {
		result.errors.push('unhandled rejection: ' + String(ev.reason && ev.reason.stack || ev.reason));
	});

	function getJSON(url) { return fetch(url).then(function(r) { return r.json(); }); }
	function sleep(ms) { return new Promise(function(resolve) { setTimeout(resolve, ms); }); }

	function tables() {
		var out = {};
		document.querySelectorAll('#view table[id]').forEach(function(t) {
			out[t.id] = Array.prototype.map.call(t.querySelectorAll('tr'), function(tr) {
				return Array.prototype.map.call(tr.children, function(td) { return td.textContent; });
			});
		});
		return out;
	}

	var scenarios = {
		settings: function(instance) {
			var map = L.form.maps[0], section = map.sections[0], sid = section.section;
			var options = map.options();
			function byName(name) { return options.filter(function(o) { return o.option == name; })[0]; }
			result.options = options.map(function(o) {
				return { name: o.option, tab: o.tab, title: o.title, description: o.description,
					list: o.setFormValue && o.list !== undefined, choices: o.choices,
					has_validate: typeof o.validate == 'function', initial: o.formvalue(sid) };
			});
			return getJSON('/cases').then(function(cases) {
				var prefix = byName('prefix'), before = prefix.formvalue(sid);
				result.cases = cases.map(function(c) {
					var o = byName(c.option);
					if (!o)
						return { option: c.option, missing: true };
					var initial = o.formvalue(sid);
					prefix.setFormValue(sid, c.prefix || [ '192.0.2.0/24' ]);
					o.setFormValue(sid, c.value);
					var errors = o.errors(sid);
					o.setFormValue(sid, initial);
					return { option: c.option, value: c.value, accepted: errors.length == 0, errors: errors };
				});
				prefix.setFormValue(sid, before);
				return getJSON('/full-config');
			}).then(function(full) {
				/* A bad value: nothing may be saved. */
				byName('port').setFormValue(sid, '70000');
				return instance.handleSaveApply().then(function() {
					result.invalid_saved = true;
				}, function(err) {
					result.invalid_refused = String(err.message);
					result.shown_error = document.querySelector('[data-name="port"] .cbi-value-error').textContent;
				}).then(function() {
					Object.keys(full).forEach(function(name) { byName(name).setFormValue(sid, full[name]); });
					return instance.handleSaveApply();
				});
			}).then(function() {
				result.saved = true;
				/* Leave an error on show for the screenshot. */
				byName('peer').setFormValue(sid, [ '[2001:db8:4444::1234]:4444', '2001:db8::1:4444' ]);
				byName('peer').showErrors(sid);
			});
		},

		status: function(instance) {
			result.first = tables();
			result.first_error = document.getElementById('sroamd-error').textContent;
			var entry = L.poll.functions[0];
			result.polls = !!entry;
			result.poll_interval = entry ? entry.interval : null;
			function waitRefresh(tries) {
				if ((entry && entry.runs >= 1) || tries <= 0)
					return Promise.resolve();
				return sleep(500).then(function() { return waitRefresh(tries - 1); });
			}
			return waitRefresh(40).then(function() {
				result.refreshed = tables();
				result.refreshed_error = document.getElementById('sroamd-error').textContent;
				result.text = document.getElementById('view').innerText;
			});
		}
	};

	window.addEventListener('load', function() {
		L.require(params.get('view')).then(function(loaded) {
			result.requires = loaded.requires;
			var instance = new loaded.Class();
			return instance.ready.then(function() {
				result.rendered = true;
				return scenarios[params.get('scenario')](instance);
			});
		}).catch(function(e) {
			result.errors.push('scenario: ' + String(e && e.stack || e));
		}).then(function() {
			return fetch('/result', { method: 'POST', body: JSON.stringify(result),
				headers: { 'Content-Type': 'application/json' } });
		});
	});
})();
