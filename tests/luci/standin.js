/*
 * The smallest honest stand-in of the LuCI client API that
 * luci-app-sroamd's views use, to load and drive them in a real browser
 * (headless Chromium) where no LuCI runtime can run.
 *
 * What it keeps of LuCI (luci-base's luci.js, form.js, rpc.js, uci.js,
 * network.js): the module loader reads a view's source, binds its
 * `'require NAME [as ALIAS]'` directives to modules and runs it as a
 * function body that returns the view class; views and maps are classes
 * built with extend(); rpc.declare() makes JSON-RPC `call`s to ubus through
 * a /ubus endpoint (here the test's server, which enforces the app's ACL as
 * rpcd would) and applies `expect` as rpc.js does; uci reads and writes
 * through `ubus call uci get|set|delete|commit`; the form validates each
 * value (and each item of a list) with the option's validate() and refuses
 * to save while one is invalid. What it leaves out: looks, translations
 * (_() returns its text), uci change sets and rollback, sessions.
 */
(function() {
	'use strict';

	var RESOURCES = '/luci-static/resources/';
	var rpcId = 1;

	/* --- classes (luci.js baseclass) ----------------------------------------- */

	function extend(Parent, props) {
		function Class() {
			if (this.__init__)
				return this.__init__.apply(this, arguments);
		}
		Class.prototype = Object.create(Parent.prototype);
		Object.keys(props || {}).forEach(function(k) { Class.prototype[k] = props[k]; });
		Class.prototype.constructor = Class;
		Class.extend = function(more) { return extend(Class, more); };
		Class.super = Parent;
		return Class;
	}
	function Base() {}
	Base.extend = function(props) { return extend(Base, props); };

	/* --- dom and E() (luci.js dom) -------------------------------------------- */

	function append(node, children) {
		if (children == null)
			return;
		if (Array.isArray(children))
			children.forEach(function(c) { append(node, c); });
		else if (children instanceof Node)
			node.appendChild(children);
		else
			node.appendChild(document.createTextNode(String(children)));
	}

	function E(tag, attrs, children) {
		var node = document.createElement(tag);
		if (attrs != null && (typeof attrs != 'object' || Array.isArray(attrs) || attrs instanceof Node)) {
			children = attrs;
			attrs = null;
		}
		Object.keys(attrs || {}).forEach(function(k) {
			var v = attrs[k];
			if (v == null)
				return;
			if (typeof v == 'function')
				node.addEventListener(k.replace(/^on/, ''), v);
			else
				node.setAttribute(k, v);
		});
		append(node, children);
		return node;
	}

	var dom = {
		content: function(node, children) {
			while (node.firstChild)
				node.removeChild(node.firstChild);
			append(node, children);
			return node;
		},
		append: function(node, children) { append(node, children); return node; }
	};

	/* --- rpc (rpc.js) ------------------------------------------------------------ */

	var ubusErrors = { 1: 'Invalid command', 2: 'Invalid argument', 3: 'Method not found',
		4: 'Resource not found', 5: 'No data', 6: 'Permission denied', 7: 'Request timeout',
		8: 'Not supported', 9: 'Unspecified error', 10: 'Connection failed' };

	function ubusCall(object, method, args) {
		return fetch('/ubus', {
			method: 'POST',
			headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ jsonrpc: '2.0', id: rpcId++, method: 'call',
				params: [ 'session-id', object, method, args || {} ] })
		}).then(function(res) { return res.json(); }).then(function(reply) {
			if (reply.error)
				throw new Error('RPC call to ' + object + '/' + method + ' failed: ' + reply.error.message);
			var code = reply.result[0];
			if (code != 0)
				throw new Error('RPC call to ' + object + '/' + method + ' failed with ubus code '
					+ code + ': ' + ubusErrors[code]);
			return reply.result[1];
		});
	}

	/* rpc.js: expect {key: default}: the reply's key ('' the whole reply), or
	 * the default when missing or of another type. */
	function applyExpect(expect, reply) {
		if (!expect)
			return reply;
		var key = Object.keys(expect)[0], dflt = expect[key];
		var value = key === '' ? reply : (reply != null ? reply[key] : undefined);
		if (dflt != null && (value == null || typeof value != typeof dflt
		    || Array.isArray(value) != Array.isArray(dflt)))
			return dflt;
		return value;
	}

	var rpc = {
		declare: function(opts) {
			return function() {
				var args = {}, params = opts.params || [];
				for (var i = 0; i < params.length && i < arguments.length; i++)
					args[params[i]] = arguments[i];
				return ubusCall(opts.object, opts.method, args).then(function(reply) {
					return applyExpect(opts.expect, reply);
				});
			};
		}
	};

	/* --- poll (luci.js poll) ------------------------------------------------------ */

	var poll = {
		functions: [],
		add: function(fn, interval) {
			var entry = { fn: fn, interval: (interval || 5) * 1000, running: false };
			poll.functions.push(entry);
			entry.timer = setInterval(function() {
				if (entry.running)
					return;
				entry.running = true;
				Promise.resolve().then(fn).catch(function(e) { window.__standinError(e); })
					.then(function() { entry.running = false; entry.runs = (entry.runs || 0) + 1; });
			}, entry.interval);
		}
	};

	/* --- uci (uci.js), through ubus ------------------------------------------------ */

	var uci = {
		state: {},
		changes: {},
		load: function(config) {
			return ubusCall('uci', 'get', { config: config }).then(function(reply) {
				uci.state[config] = reply.values || {};
				uci.changes[config] = {};
			});
		},
		get: function(config, section, option) {
			var s = (uci.state[config] || {})[section];
			if (!s)
				return null;
			return option == null ? s : s[option];
		},
		set: function(config, section, option, value) {
			uci.state[config][section][option] = value;
			uci.changes[config][section] = uci.changes[config][section] || {};
			uci.changes[config][section][option] = value;
		},
		unset: function(config, section, option) {
			delete uci.state[config][section][option];
			uci.changes[config][section] = uci.changes[config][section] || {};
			uci.changes[config][section][option] = null;
		},
		save: function() {
			var calls = [];
			Object.keys(uci.changes).forEach(function(config) {
				Object.keys(uci.changes[config]).forEach(function(section) {
					var change = uci.changes[config][section], values = {}, gone = [];
					Object.keys(change).forEach(function(option) {
						if (change[option] == null)
							gone.push(option);
						else
							values[option] = change[option];
					});
					if (Object.keys(values).length)
						calls.push(ubusCall('uci', 'set', { config: config, section: section, values: values }));
					if (gone.length)
						calls.push(ubusCall('uci', 'delete', { config: config, section: section, options: gone }));
				});
				uci.changes[config] = {};
			});
			return Promise.all(calls);
		},
		apply: function() {
			return Promise.all(Object.keys(uci.state).map(function(config) {
				return ubusCall('uci', 'commit', { config: config });
			}));
		}
	};

	/* --- network (network.js): networks from netifd, devices from luci-rpc --------- */

	function Named(name, device) { this.name = name; this.device = device; }
	Named.prototype.getName = function() { return this.name; };
	Named.prototype.getL3Device = function() { return this.device ? new Named(this.device) : null; };

	var network = {
		getNetworks: function() {
			return ubusCall('network.interface', 'dump', {}).then(function(reply) {
				return (reply.interface || []).filter(function(i) { return i.interface != 'loopback'; })
					.map(function(i) { return new Named(i.interface, i.l3_device || i.device); });
			});
		},
		getDevices: function() {
			return ubusCall('luci-rpc', 'getNetworkDevices', {}).then(function(reply) {
				return Object.keys(reply || {}).filter(function(n) { return n != 'lo'; }).sort()
					.map(function(n) { return new Named(n); });
			});
		}
	};

	/* --- form (form.js) ------------------------------------------------------------- */

	var form = {};
	form.maps = [];

	form.AbstractValue = Base.extend({
		__init__: function(section, name, title, description) {
			this.section = section;
			this.option = name;
			this.title = title;
			this.description = description;
			this.choices = [];
			this.rmempty = true;
		},
		value: function(key, label) { this.choices.push([ key, label != null ? label : key ]); },
		cfgvalue: function(section_id) {
			var v = uci.get(this.section.map.config, section_id, this.option);
			return v == null ? this.default : v;
		},
		/* Each value (each item of a list) through validate(); the errors. */
		errors: function(section_id) {
			var self = this, value = this.formvalue(section_id);
			var items = Array.isArray(value) ? value : [ value ];
			var errors = [];
			items.forEach(function(item) {
				if (!self.validate)
					return;
				var ok = self.validate(section_id, item);
				if (ok !== true)
					errors.push(ok === false ? _('Invalid value') : String(ok));
			});
			return errors;
		},
		isValid: function(section_id) { return this.errors(section_id).length == 0; },
		showErrors: function(section_id) {
			var errors = this.errors(section_id);
			dom.content(this.node.querySelector('.cbi-value-error'), errors.join('; '));
			this.node.classList.toggle('cbi-value-invalid', errors.length > 0);
			return errors;
		},
		write: function(section_id, value) {
			var empty = value == null || value === '' || (Array.isArray(value) && !value.length);
			if (empty && this.rmempty)
				uci.unset(this.section.map.config, section_id, this.option);
			else
				uci.set(this.section.map.config, section_id, this.option, value);
		},
		render: function(section_id) {
			var self = this;
			this.node = E('div', { 'class': 'cbi-value', 'data-name': this.option }, [
				E('label', { 'class': 'cbi-value-title' }, this.title),
				E('div', { 'class': 'cbi-value-field' }, [
					this.renderWidget(section_id),
					E('div', { 'class': 'cbi-value-error' }),
					E('div', { 'class': 'cbi-value-description' }, this.description)
				])
			]);
			this.node.addEventListener('change', function() { self.showErrors(section_id); });
			return this.node;
		}
	});

	form.Value = form.AbstractValue.extend({
		renderWidget: function(section_id) {
			var v = this.cfgvalue(section_id);
			return E('input', { 'type': 'text', 'class': 'cbi-input-text',
				'placeholder': this.placeholder, 'value': v == null ? '' : v });
		},
		formvalue: function(section_id) { return this.node.querySelector('input').value; },
		setFormValue: function(section_id, value) { this.node.querySelector('input').value = value; }
	});

	form.ListValue = form.AbstractValue.extend({
		renderWidget: function(section_id) {
			var v = this.cfgvalue(section_id);
			return E('select', { 'class': 'cbi-input-select' }, this.choices.map(function(c) {
				var o = E('option', { 'value': c[0] }, c[1]);
				if (c[0] == v)
					o.setAttribute('selected', 'selected');
				return o;
			}));
		},
		formvalue: function(section_id) { return this.node.querySelector('select').value; },
		setFormValue: function(section_id, value) { this.node.querySelector('select').value = value; },
		validate: function(section_id, value) {
			return this.choices.some(function(c) { return c[0] == value; }) ? true : _('Not a choice');
		}
	});

	form.Flag = form.AbstractValue.extend({
		__init__: function() {
			form.AbstractValue.prototype.__init__.apply(this, arguments);
			this.enabled = '1';
			this.disabled = '0';
			this.default = this.disabled;
		},
		renderWidget: function(section_id) {
			var input = E('input', { 'type': 'checkbox', 'class': 'cbi-input-checkbox' });
			input.checked = this.cfgvalue(section_id) == this.enabled;
			return input;
		},
		formvalue: function(section_id) {
			return this.node.querySelector('input').checked ? this.enabled : this.disabled;
		},
		setFormValue: function(section_id, value) {
			this.node.querySelector('input').checked = (value == this.enabled);
		}
	});

	/* One text input per item, and an input to add one, with the choices. */
	form.DynamicList = form.AbstractValue.extend({
		renderWidget: function(section_id) {
			var v = this.cfgvalue(section_id), items = Array.isArray(v) ? v : (v ? [ v ] : []);
			var listId = 'choices-' + this.option;
			this.list = E('div', { 'class': 'cbi-dynlist' });
			this.setFormValue(section_id, items);
			return E('div', {}, [
				this.list,
				E('input', { 'type': 'text', 'class': 'cbi-input-text add-item', 'list': listId,
					'placeholder': this.placeholder || '' }),
				E('datalist', { 'id': listId }, this.choices.map(function(c) {
					return E('option', { 'value': c[0] }, c[1]);
				}))
			]);
		},
		formvalue: function(section_id) {
			var items = Array.prototype.map.call(this.list.querySelectorAll('input'),
				function(i) { return i.value; });
			var add = this.node ? this.node.querySelector('input.add-item').value : '';
			return add ? items.concat([ add ]) : items;
		},
		setFormValue: function(section_id, items) {
			dom.content(this.list, items.map(function(item) {
				return E('div', { 'class': 'item' }, E('input', { 'type': 'text', 'value': item }));
			}));
		}
	});

	form.NamedSection = Base.extend({
		__init__: function(map, name, type, title) {
			this.map = map;
			this.section = name;
			this.sectiontype = type;
			this.title = title;
			this.tabs = [];
			this.children = [];
		},
		tab: function(name, title) { this.tabs.push({ name: name, title: title }); },
		option: function(Class, name, title, description) {
			return this.taboption(null, Class, name, title, description);
		},
		taboption: function(tab, Class, name, title, description) {
			var o = new Class(this, name, title, description);
			o.tab = tab;
			this.children.push(o);
			return o;
		},
		formvalue: function(section_id, name) {
			var o = this.children.filter(function(c) { return c.option == name; })[0];
			return o ? o.formvalue(section_id) : null;
		},
		render: function() {
			var self = this, sid = this.section;
			var groups = this.tabs.length ? this.tabs : [ { name: null, title: '' } ];
			return E('div', { 'class': 'cbi-section', 'data-section': sid }, groups.map(function(tab) {
				return E('fieldset', { 'class': 'cbi-section-node', 'data-tab': tab.name || '' }, [
					E('legend', {}, tab.title)
				].concat(self.children.filter(function(c) { return c.tab == tab.name; })
					.map(function(c) { return c.render(sid); })));
			}));
		}
	});

	form.Map = Base.extend({
		__init__: function(config, title, description) {
			this.config = config;
			this.title = title;
			this.description = description;
			this.sections = [];
			form.maps.push(this);
		},
		section: function(Class, name, type, title) {
			var s = new Class(this, name, type, title);
			this.sections.push(s);
			return s;
		},
		options: function() {
			return [].concat.apply([], this.sections.map(function(s) { return s.children; }));
		},
		render: function() {
			var self = this;
			return uci.load(this.config).then(function() {
				if (!uci.get(self.config, self.sections[0].section))
					throw new Error('no section ' + self.sections[0].section + ' in ' + self.config);
				self.node = E('div', { 'class': 'cbi-map' }, [
					E('h2', {}, self.title),
					E('div', { 'class': 'cbi-map-descr' }, self.description)
				].concat(self.sections.map(function(s) { return s.render(); })));
				return self.node;
			});
		},
		/* form.js Map.save: every value valid, or nothing is written. */
		save: function() {
			var self = this, invalid = [];
			this.sections.forEach(function(s) {
				s.children.forEach(function(o) {
					if (o.showErrors(s.section).length)
						invalid.push(o.option);
				});
			});
			if (invalid.length)
				return Promise.reject(new Error('invalid: ' + invalid.join(', ')));
			this.sections.forEach(function(s) {
				s.children.forEach(function(o) { o.write(s.section, o.formvalue(s.section)); });
			});
			return uci.save();
		}
	});

	/* --- view (luci.js view) --------------------------------------------------------- */

	var view = Base.extend({
		__init__: function() {
			var self = this, target = document.getElementById('view');
			this.ready = Promise.resolve(this.load()).then(function(data) {
				return self.render(data);
			}).then(function(node) {
				dom.content(target, node);
				if (self.handleSave)
					target.appendChild(E('div', { 'class': 'cbi-page-actions' }, [
						E('button', { 'class': 'cbi-button cbi-button-apply' }, _('Save & Apply')),
						E('button', { 'class': 'cbi-button cbi-button-save' }, _('Save')),
						E('button', { 'class': 'cbi-button cbi-button-reset' }, _('Reset'))
					]));
				return node;
			});
		},
		load: function() {},
		render: function() {},
		handleSave: function() {
			return Promise.all(form.maps.map(function(m) { return m.save(); }));
		},
		handleSaveApply: function() {
			return this.handleSave().then(function() { return uci.apply(); });
		},
		handleReset: function() { location.reload(); }
	});

	/* --- the loader (luci.js require) ------------------------------------------------- */

	var modules = { view: view, form: form, rpc: rpc, uci: uci, poll: poll, dom: dom,
		network: network, baseclass: Base };

	/* The leading string statements of a source: 'use strict', 'require x as y'. */
	function directives(source) {
		var deps = [], re = /^\s*(?:\/\/[^\n]*\n\s*)*(['"])(.*?)\1\s*;?/, m;
		while ((m = re.exec(source)) !== null) {
			var d = m[2].match(/^require\s+([A-Za-z0-9_.]+)(?:\s+as\s+([A-Za-z0-9_]+))?$/);
			if (d)
				deps.push({ name: d[1], as: d[2] || d[1].split('.').pop() });
			else if (m[2] != 'use strict')
				break;
			source = source.slice(m[0].length);
		}
		return deps;
	}

	function requireView(path) {
		var url = RESOURCES + 'view/' + path + '.js';
		return fetch(url).then(function(res) {
			if (!res.ok)
				throw new Error('cannot load ' + url + ': HTTP ' + res.status);
			return res.text();
		}).then(function(source) {
			var deps = directives(source);
			deps.forEach(function(d) {
				if (!modules[d.name])
					throw new Error(url + ' requires ' + d.name + ', which the stand-in lacks');
			});
			var factory = new Function(deps.map(function(d) { return d.as; }).join(','),
				source + '\n//# sourceURL=' + url);
			var Class = factory.apply(null, deps.map(function(d) { return modules[d.name]; }));
			if (typeof Class != 'function' || !(Class.prototype instanceof view))
				throw new Error(url + ' does not return a view class');
			return { Class: Class, requires: deps.map(function(d) { return d.name; }) };
		});
	}

	window._ = function(text) { return text; };
	window.E = E;
	window.L = { require: requireView, modules: modules, form: form, poll: poll, uci: uci };
})();
