"""An asyncio ubus client.

sroamd speaks the ubus protocol itself because python-ubus cannot subscribe,
and hostapd announces stations only as notifications to subscribers of
``hostapd.<ifname>``.  One connection, one event loop, no threads.

What it does: lookup (also ``hostapd.*``), call with a timeout, subscribe to an
object's notifications, publish objects and serve their methods, listen for
and send events.  Objects, subscriptions and event registrations are kept as
registrations: when ubusd goes away the client reconnects with backoff and
re-establishes all of them, and a subscription whose object is not there yet
(or went away, e.g. hostapd restarting on a wifi reload) is made as soon as
ubusd announces the object with ``ubus.object.add``.

Callbacks (notifications, events, subscription state) run one at a time, in
the order the messages arrived, in a task of their own: a callback may await
ubus calls without blocking the reader that delivers their replies.
"""

import asyncio
import inspect
import logging

from sroamd.wire.ubus import (BLOBMSG_TYPES, HEADER_LEN, SYSTEM_OBJECT_EVENT, Typed,
                              UbusFormatError, decode_message, encode_message,
                              frame_length, status_code, status_name)

DEFAULT_SOCKET = "/var/run/ubus/ubus.sock"

log = logging.getLogger(__name__)


class UbusError(Exception):
    """A ubus request failed; ``status`` is the status name, e.g. ``"NOT_FOUND"``."""

    def __init__(self, status, detail=""):
        if isinstance(status, int):
            status = status_name(status)
        self.status = status
        super().__init__(f"{status}: {detail}" if detail else status)

    @property
    def code(self) -> int:
        try:
            return status_code(self.status)
        except ValueError:
            return status_code("UNKNOWN_ERROR")


class ObjectInfo:
    """One object found by ``lookup``."""

    __slots__ = ("path", "id", "type_id", "signature")

    def __init__(self, path, id, type_id, signature):
        self.path, self.id, self.type_id, self.signature = path, id, type_id, signature

    def __repr__(self):
        return f"ObjectInfo({self.path!r}, id={self.id:#x})"


class _Registration:
    """Something the client re-establishes on every connection."""

    def __init__(self):
        self.gen = 0        # connection generation it was last established on
        self.id = None      # its object id on the current connection

    def reset(self):
        self.id = None


class UbusObject(_Registration):
    """An object this client publishes; returned by ``add_object``."""

    def __init__(self, client, path, methods):
        super().__init__()
        self.client, self.path, self.methods = client, path, methods
        self.signature = _signature(methods)

    async def notify(self, method: str, data: dict | None = None):
        await self.client.notify(self, method, data)

    async def remove(self):
        await self.client.remove_object(self)


class Subscription(_Registration):
    """A subscription to the notifications of the object at ``path``."""

    def __init__(self, path, on_notify, on_state):
        super().__init__()
        self.path, self.on_notify, self.on_state = path, on_notify, on_state
        self.target = None              # the subscribed object's id, None if not subscribed
        self.lock = asyncio.Lock()      # restore and ubus.object.add may race to subscribe

    @property
    def active(self) -> bool:
        return self.target is not None

    def reset(self):
        super().reset()
        self.target = None


class Listener(_Registration):
    """An event registration: ``callback(event, data)`` for events matching ``pattern``."""

    def __init__(self, pattern, callback):
        super().__init__()
        self.pattern, self.callback = pattern, callback


class _Request:
    __slots__ = ("peer", "data", "future")

    def __init__(self, peer, future):
        self.peer, self.data, self.future = peer, [], future


def _signature(methods):
    """{method: (handler, {arg: type})} -> the signature attribute's {method: {arg: type id}}."""
    sig = {}
    for name, (_handler, args) in methods.items():
        sig[name] = {}
        for arg, t in (args or {}).items():
            if isinstance(t, str):
                if t not in BLOBMSG_TYPES and t != "bool":
                    raise ValueError(f"{name}: unknown blobmsg type {t!r} for {arg}")
                t = BLOBMSG_TYPES["int8" if t == "bool" else t]
            sig[name][arg] = t
    return sig


class UbusClient:
    """A ubus connection that survives ubusd restarts.

    ``timeout`` is the default per-request timeout; reconnection waits
    ``min_backoff`` seconds, doubling up to ``max_backoff``."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET, *, timeout: float = 5.0,
                 min_backoff: float = 0.1, max_backoff: float = 10.0):
        self.socket_path = socket_path
        self.timeout = timeout
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self.peer_id = None
        self._regs = []             # UbusObject / Subscription / Listener, in creation order
        self._handlers = {}         # object id -> registration, current connection only
        self._requests = {}         # seq -> _Request
        self._seq = 0
        self._gen = 0
        self._writer = None
        self._session = asyncio.Event()     # hello received: requests can go out
        self._ready = asyncio.Event()       # ... and every registration restored
        self._down = asyncio.Event()
        self._down.set()
        self._callbacks = asyncio.Queue()
        self._tasks = set()
        self._main = None
        self._watch = None                  # ubus.object.add listener for subscriptions

    # --- lifecycle ----------------------------------------------------------

    async def connect(self):
        """Start the connection (and reconnection) task; return once connected."""
        if self._main is None:
            self._main = asyncio.create_task(self._run(), name="ubus-connection")
            self._spawn(self._run_callbacks())
        await self._ready.wait()

    async def close(self):
        tasks = [t for t in (self._main, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._main = None
        if self._writer is not None:
            writer = self._writer
            self._lost(writer)
            writer.close()

    async def __aenter__(self):
        await self.connect()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def wait_connected(self):
        await self._ready.wait()

    async def wait_disconnected(self):
        await self._down.wait()

    # --- requests -----------------------------------------------------------

    async def lookup(self, path: str | None = None, *, timeout: float | None = None) -> list:
        """Objects at ``path`` (``"name.*"`` for a prefix, None for all)."""
        attrs = {} if path is None else {"objpath": path}
        replies = await self._request("lookup", 0, attrs, timeout)
        return [ObjectInfo(m.get("objpath"), m.get("objid"), m.get("objtype"),
                           m.get("signature", {})) for m in replies]

    async def lookup_id(self, path: str, *, timeout: float | None = None) -> int:
        return await self._lookup_id(path, timeout)

    async def _lookup_id(self, path, timeout, wait=True):
        replies = await self._request("lookup", 0, {"objpath": path}, timeout, wait)
        if not replies:     # ubusd hides objects whose methods an ACL denies us
            raise UbusError("NOT_FOUND", path)
        return replies[0]["objid"]

    async def call(self, obj, method: str, args: dict | None = None, *,
                   timeout: float | None = None) -> dict:
        """Call ``method`` of ``obj`` (a path or an object id); returns the reply data."""
        objid = obj if isinstance(obj, int) else await self.lookup_id(obj, timeout=timeout)
        replies = await self._request("invoke", objid, {
            "objid": objid, "method": method, "data": args or {}}, timeout)
        result = {}
        for m in replies:
            result.update(m.get("data", {}))
        return result

    async def send_event(self, event: str, data: dict | None = None, *,
                         timeout: float | None = None):
        await self._request("invoke", SYSTEM_OBJECT_EVENT, {
            "objid": SYSTEM_OBJECT_EVENT, "method": "send",
            "data": {"id": event, "data": data or {}}}, timeout)

    # --- registrations ------------------------------------------------------

    async def add_object(self, path: str, methods: dict) -> UbusObject:
        """Publish ``path``; ``methods`` is ``{name: (handler, {arg: type})}``.

        ``handler(args: dict)`` (may be async) returns the reply data (a dict,
        or None for no data) or raises ``UbusError(status)``.  Types are
        blobmsg type names ("string", "int32", "bool" is "int8", ...) or ids."""
        return await self._register(UbusObject(self, path, dict(methods)))

    async def remove_object(self, obj: UbusObject):
        await self._unregister(obj)

    async def notify(self, obj: UbusObject, method: str, data: dict | None = None):
        """Send a notification to the subscribers of one of our objects.

        Like hostapd, without asking for replies: nothing to wait for."""
        if obj.id is None or self._writer is None:
            log.debug("ubus: not connected, notification %s dropped", method)
            return
        self._send({"type": "notify", "seq": self._next_seq(), "peer": obj.id, "objid": obj.id,
                    "method": method, "data": data or {}, "no_reply": 1})

    async def subscribe(self, path: str, on_notify, on_state=None) -> Subscription:
        """Subscribe to ``path``'s notifications: ``on_notify(method, data)``.

        The subscription is kept: made when the object appears, remade when it
        comes back.  ``on_state(True)`` is called each time it is (re)made,
        ``on_state(False)`` when ubusd reports the object gone (not when the
        connection to ubusd drops: the object is still there, and the
        subscription is remade on reconnection)."""
        if self._watch is None:
            self._watch = await self._register(Listener("ubus.object.add", self._object_added))
        return await self._register(Subscription(path, on_notify, on_state))

    async def unsubscribe(self, sub: Subscription):
        await self._unregister(sub)

    async def listen(self, pattern: str, callback) -> Listener:
        """``callback(event, data)`` for events matching ``pattern`` ("a.b", "a.*", "*")."""
        return await self._register(Listener(pattern, callback))

    async def unlisten(self, listener: Listener):
        await self._unregister(listener)

    async def _register(self, reg):
        self._regs.append(reg)
        if self._ready.is_set():    # otherwise the (re)connection establishes it
            reg.gen = self._gen
            try:
                await self._apply(reg)
            except Exception as e:
                if not (isinstance(e, UbusError) and e.status == "CONNECTION_FAILED"):
                    self._regs.remove(reg)      # (if the connection failed, it is restored)
                    raise
        return reg

    async def _unregister(self, reg):
        if reg in self._regs:
            self._regs.remove(reg)
        objid = reg.id
        reg.reset()
        if objid is None:
            return
        self._handlers.pop(objid, None)
        try:    # removing the object also ends its subscriptions and event patterns
            await self._request("remove_object", 0, {"objid": objid}, None, wait=False)
        except UbusError as e:
            log.debug("ubus: removing object %#x: %s", objid, e)

    async def _apply(self, reg):
        """Establish one registration on the current connection."""
        if isinstance(reg, UbusObject):
            reg.id = await self._add_object({"objpath": reg.path,
                                             "signature": reg.signature}, reg)
        elif isinstance(reg, Listener):
            if reg.id is None:
                reg.id = await self._add_object({}, reg)
            await self._request("invoke", SYSTEM_OBJECT_EVENT, {
                "objid": SYSTEM_OBJECT_EVENT, "method": "register",
                # ubusd reads the id as int32: a u32 id must not become int64
                "data": {"object": Typed("int32", reg.id), "pattern": reg.pattern}},
                None, wait=False)
        else:
            await self._subscribe(reg)

    async def _subscribe(self, sub):
        async with sub.lock:
            if sub.target is not None or sub not in self._regs:
                return
            if sub.id is None:
                sub.id = await self._add_object({}, sub)
            writer = self._writer
            try:
                target = await self._lookup_id(sub.path, None, wait=False)
                await self._request("subscribe", 0, {"objid": sub.id, "target": target},
                                    None, wait=False)
            except UbusError as e:
                if e.status != "NOT_FOUND":
                    raise
                log.debug("ubus: %s not there yet, waiting for it", sub.path)
                return
            self._check_connection(writer)
            sub.target = target
            log.info("ubus: subscribed to %s", sub.path)
            if sub.on_state is not None:
                self._callbacks.put_nowait((sub.on_state, (True,)))

    async def _add_object(self, attrs, reg) -> int:
        writer = self._writer
        replies = await self._request("add_object", 0, attrs, None, wait=False)
        self._check_connection(writer)
        objid = replies[0]["objid"] if replies and "objid" in replies[0] else None
        if objid is None:
            raise UbusError("NO_DATA", "add_object returned no object id")
        self._handlers[objid] = reg
        return objid

    async def _object_added(self, _event, data):
        path = data.get("path")
        for reg in list(self._regs):
            if isinstance(reg, Subscription) and reg.path == path and reg.target is None:
                try:
                    await self._subscribe(reg)
                except UbusError as e:
                    log.warning("ubus: subscribing to %s: %s", path, e)

    # --- the connection ------------------------------------------------------

    async def _run(self):
        delay = self.min_backoff
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
            except OSError as e:    # say it once, not at every retry
                (log.warning if delay == self.min_backoff else log.debug)(
                    "ubus: cannot connect to %s: %s", self.socket_path, e)
            else:
                try:
                    if await self._serve_connection(reader, writer):
                        delay = self.min_backoff
                finally:
                    writer.close()
                log.warning("ubus: connection to %s lost", self.socket_path)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    async def _serve_connection(self, reader, writer) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                hello = decode_message(await self._read_frame(reader))
        except (OSError, EOFError, TimeoutError, UbusFormatError) as e:
            log.warning("ubus: no hello from ubusd: %s", e)
            return False
        if hello["type"] != "hello":
            log.warning("ubus: expected hello, got %s", hello["type"])
            return False
        self.peer_id = hello["peer"]
        self._gen += 1
        self._writer = writer
        self._session.set()
        reader_task = asyncio.create_task(self._read_loop(reader, writer), name="ubus-reader")
        try:
            await self._restore(self._gen)
            if self._writer is writer:
                self._down.clear()
                self._ready.set()
                log.info("ubus: connected to %s as %#x", self.socket_path, self.peer_id)
            await reader_task
        finally:
            reader_task.cancel()
            self._lost(writer)
        return True

    async def _restore(self, gen):
        """Establish every registration on connection ``gen`` (also those added meanwhile)."""
        while self._gen == gen and self._writer is not None:
            pending = [r for r in self._regs if r.gen != gen]
            if not pending:
                return
            for reg in pending:
                reg.gen = gen
                try:
                    await self._apply(reg)
                except UbusError as e:
                    if e.status == "CONNECTION_FAILED":
                        return
                    log.warning("ubus: cannot restore %s: %s",
                                getattr(reg, "path", None) or getattr(reg, "pattern", "?"), e)
                except UbusFormatError as e:
                    log.warning("ubus: cannot restore %s: %s", reg, e)

    @staticmethod
    async def _read_frame(reader) -> bytes:
        head = await reader.readexactly(HEADER_LEN)
        return head + await reader.readexactly(frame_length(head) - HEADER_LEN)

    async def _read_loop(self, reader, writer):
        try:
            while True:
                raw = await self._read_frame(reader)
                try:
                    msg = decode_message(raw)
                except UbusFormatError as e:    # the framing held: skip just this one
                    log.warning("ubus: dropping message: %s", e)
                    continue
                try:
                    self._dispatch(msg)
                except Exception:
                    log.exception("ubus: handling %s", msg.get("type"))
        except (OSError, EOFError, UbusFormatError) as e:     # EOF, reset, lost framing
            log.debug("ubus: reader stops: %r", e)
        finally:
            self._lost(writer)

    def _lost(self, writer):
        """Forget everything that belonged to the connection of ``writer``."""
        if self._writer is not writer:
            return
        self._writer = None
        self._session.clear()
        self._ready.clear()
        self._down.set()
        for req in self._requests.values():
            if not req.future.done():
                req.future.set_exception(UbusError("CONNECTION_FAILED"))
        self._requests.clear()
        self._handlers.clear()
        for reg in self._regs:
            reg.reset()

    def _check_connection(self, writer):
        """A reply may be read just before the connection drops: an id it
        carries must not outlive that connection (and its reset)."""
        if writer is None or self._writer is not writer:
            raise UbusError("CONNECTION_FAILED")

    def _next_seq(self) -> int:
        for _ in range(0x10000):
            self._seq = (self._seq + 1) & 0xFFFF
            if self._seq not in self._requests:
                return self._seq
        raise UbusError("NO_MEMORY", "no free sequence number")

    def _send(self, msg):
        if self._writer is None:
            raise UbusError("CONNECTION_FAILED")
        # One write per message, so concurrent senders never interleave.
        # Messages are small and ubusd reads all the time: no drain needed.
        self._writer.write(encode_message(msg))

    async def _request(self, type_, peer, attrs, timeout, wait=True) -> list:
        """Send a request, return its data messages; a non-zero status raises.

        ``wait``: if not connected, wait for the connection (within the
        timeout); registrations being restored pass False to fail fast."""
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                if wait:
                    await self._session.wait()
                seq = self._next_seq()
                req = _Request(peer, asyncio.get_running_loop().create_future())
                self._send({"type": type_, "seq": seq, "peer": peer, **attrs})
                self._requests[seq] = req
                try:
                    status = await req.future
                finally:
                    if self._requests.get(seq) is req:
                        del self._requests[seq]
        except TimeoutError:
            raise UbusError("TIMEOUT", attrs.get("method") or type_) from None
        if status:
            raise UbusError(status)
        return req.data

    # --- incoming messages ----------------------------------------------------

    def _dispatch(self, msg):
        t = msg["type"]
        if t in ("data", "status"):
            req = self._requests.get(msg["seq"])
            if req is None or req.peer != msg["peer"]:
                return      # the reply to a request that timed out
            if t == "data":
                req.data.append(msg)
            elif not req.future.done():
                req.future.set_result(msg.get("status", 0))
        elif t == "invoke":
            self._invoked(msg)
        elif t == "unsubscribe":    # ubusd: the object we subscribed to is gone
            sub = self._handlers.get(msg.get("objid"))
            if isinstance(sub, Subscription) and sub.target is not None:
                sub.target = None
                log.info("ubus: %s went away", sub.path)
                if sub.on_state is not None:
                    self._callbacks.put_nowait((sub.on_state, (False,)))
        # "notify" from ubusd only says whether our objects have subscribers.

    def _invoked(self, msg):
        reg = self._handlers.get(msg.get("objid"))
        if isinstance(reg, UbusObject):
            self._spawn(self._serve(reg, msg))
            return
        # Notifications (to a subscription) and events (to a listener): answer
        # at once (hostapd may wait for the reply), call back in order.
        if isinstance(reg, Subscription):
            self._callbacks.put_nowait((reg.on_notify, (msg.get("method"), msg.get("data", {}))))
            status = 0
        elif isinstance(reg, Listener):
            self._callbacks.put_nowait((reg.callback, (msg.get("method"), msg.get("data", {}))))
            status = 0
        else:
            status = status_code("NOT_FOUND")
        if not msg.get("no_reply"):
            self._reply(msg, status)

    def _reply(self, msg, status, data=None):
        head = {"seq": msg["seq"], "peer": msg["peer"]}
        objid = msg.get("objid", 0)     # (an invoke may lack it: answered all the same)
        if data is not None:
            self._send({"type": "data", **head, "objid": objid, "data": data})
        self._send({"type": "status", **head, "status": status, "objid": objid})

    async def _serve(self, obj, msg):
        method = obj.methods.get(msg.get("method"))
        data = None
        if method is None:
            status = status_code("METHOD_NOT_FOUND")
        else:
            try:
                data = method[0](msg.get("data", {}))
                if inspect.isawaitable(data):
                    data = await data
                status = 0
            except UbusError as e:
                status, data = e.code, None
            except Exception:
                log.exception("ubus: %s.%s failed", obj.path, msg.get("method"))
                status, data = status_code("UNKNOWN_ERROR"), None
        if msg.get("no_reply"):
            return
        try:
            try:
                self._reply(msg, status, data)
            except UbusFormatError as e:    # nothing was sent: the data is encoded first
                log.error("ubus: %s.%s returned what ubus cannot carry: %s",
                          obj.path, msg.get("method"), e)
                self._reply(msg, status_code("UNKNOWN_ERROR"))
        except UbusError:
            pass        # the caller's connection is gone with ours

    async def _run_callbacks(self):
        while True:
            callback, args = await self._callbacks.get()
            try:
                result = callback(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("ubus: callback %r failed", callback)

    def _spawn(self, coro):
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
