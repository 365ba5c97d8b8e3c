"""A small asyncio ubusd for the tests, behaving as ubusd does in the captures.

hello with a peer id, lookup (exact, ``prefix*``, all), add_object and
remove_object with object (type) ids, invoke routed to the object's owner with
its data/status replies routed back (peer rewritten to the object id),
subscribe/unsubscribe (the owner hears ``notify`` active 1/0), notify
forwarded to subscribers as ``invoke`` (``no_reply`` kept), unsubscribe sent to
subscribers when the object goes, events (``register``/``send`` on object 1,
``ubus.object.add``/``remove``).  No ACLs: every caller is root.

``stop()`` drops every client, as ubusd exiting does; ``start()`` again is a
fresh ubusd on the same socket path.
"""

import asyncio
import os
import random

from sroamd.wire.ubus import (SYSTEM_OBJECT_EVENT, Typed, UbusFormatError, decode_message,
                              encode_message, frame_length, status_code, HEADER_LEN)

OK = 0
INVALID_COMMAND = status_code("INVALID_COMMAND")
INVALID_ARGUMENT = status_code("INVALID_ARGUMENT")
NOT_FOUND = status_code("NOT_FOUND")
PERMISSION_DENIED = status_code("PERMISSION_DENIED")


class _Client:
    def __init__(self, id, writer):
        self.id, self.writer, self.objects = id, writer, []


class _Object:
    def __init__(self, id, client, path, type_id, signature):
        self.id, self.client, self.path = id, client, path
        self.type_id, self.signature = type_id, signature
        self.subscribers = []       # subscriber objects
        self.targets = []           # objects this one subscribes to
        self.patterns = []          # event patterns registered with this object
        self.invoke_seq = 0


class UbusBroker:
    def __init__(self, path):
        self.path = path
        self._server = None
        self._tasks = set()

    async def start(self):
        self.clients = {}
        self.objects = {}
        self.paths = {}
        self.event_seq = 0
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)

    async def stop(self):
        self._server.close()
        for cl in list(self.clients.values()):
            cl.writer.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        if os.path.exists(self.path):
            os.unlink(self.path)

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    def _new_id(self):
        while True:
            i = random.getrandbits(32)
            if i >= 1024 and i not in self.objects and i not in self.clients:
                return i

    @staticmethod
    def _send(cl, msg):
        if not cl.writer.is_closing():
            cl.writer.write(encode_message(msg))

    async def _serve(self, reader, writer):
        self._tasks.add(asyncio.current_task())
        cl = _Client(self._new_id(), writer)
        self.clients[cl.id] = cl
        self._send(cl, {"type": "hello", "seq": 0, "peer": cl.id})
        try:
            while True:
                head = await reader.readexactly(HEADER_LEN)
                raw = head + await reader.readexactly(frame_length(head) - HEADER_LEN)
                msg = decode_message(raw)
                status = getattr(self, "_" + msg["type"], self._unknown)(cl, msg)
                if status is not None:
                    self._send(cl, {"type": "status", "seq": msg["seq"], "peer": msg["peer"],
                                    "status": status})
        except (EOFError, OSError, UbusFormatError, asyncio.CancelledError):
            pass
        finally:
            for obj in list(cl.objects):
                self._free_object(obj)
            self.clients.pop(cl.id, None)
            writer.close()
            self._tasks.discard(asyncio.current_task())

    def _unknown(self, cl, msg):
        return INVALID_COMMAND

    def _ping(self, cl, msg):
        self._send(cl, {**msg, "type": "data"})

    def _reply_data(self, cl, msg, **attrs):
        self._send(cl, {"type": "data", "seq": msg["seq"], "peer": msg["peer"], **attrs})

    # --- objects ------------------------------------------------------------

    def _add_object(self, cl, msg):
        path = msg.get("objpath")
        if path is not None and path in self.paths:
            return INVALID_ARGUMENT
        sig = msg.get("signature")
        type_id = self._new_id() if sig is not None else msg.get("objtype")
        obj = _Object(self._new_id(), cl, path, type_id, sig or {})
        self.objects[obj.id] = obj
        cl.objects.append(obj)
        if path is not None:
            self.paths[path] = obj
            self._object_event(obj, "ubus.object.add")
        reply = {"objid": obj.id}
        if sig is not None:
            reply["objtype"] = type_id
        self._reply_data(cl, msg, **reply)
        return OK

    def _remove_object(self, cl, msg):
        obj = self.objects.get(msg.get("objid"))
        if obj is None:
            return NOT_FOUND
        if obj.client is not cl:
            return PERMISSION_DENIED
        reply = {"objid": obj.id}
        if obj.type_id is not None:
            reply["objtype"] = obj.type_id
        self._reply_data(cl, msg, **reply)
        self._free_object(obj)
        return OK

    def _free_object(self, obj):
        for target in list(obj.targets):
            self._unsubscribe_pair(obj, target)
        for sub in list(obj.subscribers):
            sub.invoke_seq += 1
            self._send(sub.client, {"type": "unsubscribe", "seq": sub.invoke_seq, "peer": 0,
                                    "objid": sub.id, "target": obj.id})
            self._unsubscribe_pair(sub, obj)
        obj.patterns.clear()
        if obj.path is not None:
            self._object_event(obj, "ubus.object.remove")
            del self.paths[obj.path]
        self.objects.pop(obj.id, None)
        if obj in obj.client.objects:
            obj.client.objects.remove(obj)

    def _lookup(self, cl, msg):
        path = msg.get("objpath")
        if path is None:
            found = sorted(self.paths.items())
        elif path.endswith("*"):
            found = sorted((p, o) for p, o in self.paths.items() if p.startswith(path[:-1]))
            if not found:
                return NOT_FOUND
        elif path in self.paths:
            found = [(path, self.paths[path])]
        else:
            return NOT_FOUND
        for p, obj in found:
            if obj.type_id is not None:
                self._reply_data(cl, msg, objpath=p, objid=obj.id, objtype=obj.type_id,
                                 signature=obj.signature)
        return OK

    # --- invoke and its replies ------------------------------------------------

    def _forward_invoke(self, cl, msg, obj, method, data, no_reply=False):
        fwd = {"type": "invoke", "seq": msg["seq"], "peer": cl.id}
        if no_reply:
            fwd["no_reply"] = 1
        fwd.update(objid=obj.id, method=method, user="root", group="root")
        if data is not None:
            fwd["data"] = data
        self._send(obj.client, fwd)

    def _invoke(self, cl, msg):
        if "objid" not in msg or "method" not in msg:
            return INVALID_ARGUMENT
        if msg["objid"] == SYSTEM_OBJECT_EVENT:
            return self._event_method(cl, msg["method"], msg.get("data", {}))
        obj = self.objects.get(msg["objid"])
        if obj is None:
            return NOT_FOUND
        self._forward_invoke(cl, msg, obj, msg["method"], msg.get("data"))

    def _response(self, cl, msg):
        obj = self.objects.get(msg.get("objid"))
        dest = self.clients.get(msg["peer"])
        if obj is None or obj.client is not cl or dest is None:
            return
        self._send(dest, {**msg, "peer": obj.id})

    _status = _response
    _data = _response

    # --- subscriptions --------------------------------------------------------

    def _subscribe(self, cl, msg):
        obj = self.objects.get(msg.get("objid"))
        target = self.objects.get(msg.get("target"))
        if obj is None or obj.client is not cl:
            return INVALID_ARGUMENT if obj else NOT_FOUND
        if target is None:
            return NOT_FOUND
        if target.client is cl:
            return INVALID_ARGUMENT
        first = not target.subscribers
        target.subscribers.append(obj)
        obj.targets.append(target)
        if first:
            self._notify_active(target)
        return OK

    def _unsubscribe(self, cl, msg):
        obj = self.objects.get(msg.get("objid"))
        if obj is None or obj.client is not cl:
            return INVALID_ARGUMENT if obj else NOT_FOUND
        for target in obj.targets:
            if target.id == msg.get("target"):
                self._unsubscribe_pair(obj, target)
                return OK
        return NOT_FOUND

    def _unsubscribe_pair(self, obj, target):
        obj.targets.remove(target)
        target.subscribers.remove(obj)
        if not target.subscribers and target.id in self.objects:
            self._notify_active(target)

    def _notify_active(self, target):
        target.invoke_seq += 1
        self._send(target.client, {"type": "notify", "seq": target.invoke_seq, "peer": 0,
                                   "objid": target.id, "active": int(bool(target.subscribers))})

    def _notify(self, cl, msg):
        obj = self.objects.get(msg.get("objid"))
        if obj is None or "method" not in msg:
            return INVALID_ARGUMENT if obj else NOT_FOUND
        if obj.client is not cl:
            return PERMISSION_DENIED
        no_reply = bool(msg.get("no_reply"))
        if not no_reply:
            self._send(cl, {"type": "status", "seq": msg["seq"], "peer": msg["peer"],
                            "objid": obj.id, "subscribers": [s.id for s in obj.subscribers],
                            "status": OK})
        for sub in obj.subscribers:
            self._forward_invoke(cl, msg, sub, msg["method"], msg.get("data"), no_reply)

    # --- events ---------------------------------------------------------------

    def _event_method(self, cl, method, data):
        if method == "register":
            objid, pattern = data.get("object"), data.get("pattern")
            if not isinstance(objid, int) or not isinstance(pattern, str) or not pattern:
                return INVALID_ARGUMENT
            obj = self.objects.get(objid & 0xFFFFFFFF)     # sent as int32, read as u32
            if obj is None:
                return NOT_FOUND
            if obj.client is not cl:
                return PERMISSION_DENIED
            obj.patterns.append(pattern)
            return OK
        if method == "send":
            event, payload = data.get("id"), data.get("data")
            if not isinstance(event, str) or not isinstance(payload, dict):
                return INVALID_ARGUMENT
            if event.startswith("ubus."):
                return PERMISSION_DENIED
            self._send_event(cl, event, payload)
            return OK
        return INVALID_COMMAND

    @staticmethod
    def _matches(pattern, event):
        return event.startswith(pattern[:-1]) if pattern.endswith("*") else event == pattern

    def _send_event(self, sender, event, data):
        for obj in list(self.objects.values()):
            if obj.client is sender:    # ubusd does not loop events back
                continue
            if any(self._matches(p, event) for p in obj.patterns):
                self.event_seq += 1
                self._send(obj.client, {"type": "invoke", "seq": self.event_seq, "peer": 0,
                                        "objid": obj.id, "method": event, "data": data})

    def _object_event(self, obj, event):
        self._send_event(None, event, {"id": Typed("int32", obj.id), "path": obj.path})
