#!/usr/bin/env python3
"""A small ivr-auth client for a web site, and an unattended demo of it.

Python 3 standard library only, so the parts a site needs can be copied as
they are:

* ``IvrAuthClient``             - registration API, result API, cancel;
* ``verify_callback_signature`` - checks the ``IVR-Auth-Signature`` header of
                                  a result callback before trusting its body.

``main()`` runs the whole flow against a server using the ``simulator``
provider (the default ``cargo run -q -- serve`` is one): it registers a
request, plays the user's phone through the simulator API, and polls the
result API until the request is verified.

    BASE_URL=http://127.0.0.1:8080 API_KEY=ivr_... python3 examples/python/client.py

``--callback`` also receives the signed result callback on a port of
127.0.0.1 and checks its signature; it needs CALLBACK_SECRET (printed with
the API key) and a server started with IVR_AUTH_ALLOW_PRIVATE_CALLBACKS=true,
since the server refuses callback URLs on loopback and private addresses
otherwise (422):

    IVR_AUTH_ALLOW_PRIVATE_CALLBACKS=true cargo run -q -- serve
    BASE_URL=http://127.0.0.1:8080 API_KEY=ivr_... CALLBACK_SECRET=whsec_... \\
        python3 examples/python/client.py --callback

Exits 0 on success, 1 with a one-line message otherwise (2 for bad usage).
"""

import argparse
import hashlib
import hmac
import http.server
import json
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

TERMINAL_STATUSES = frozenset({"verified", "failed", "expired", "canceled"})


class IvrAuthError(Exception):
    """An error answer from the server, or the server could not be reached.

    ``status`` is the HTTP status (None for network errors), ``code`` the
    server's snake_case error code, ``field`` the request field a 422 refused,
    ``retry_after`` the seconds a 429 asks to wait.
    """

    def __init__(self, message, status=None, code=None, retry_after=None, field=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.field = field


def _http_json(method, url, body=None, headers=None, timeout=10.0):
    """Sends one request with an optional JSON body; returns the decoded JSON answer.

    Raises IvrAuthError for anything but a 2xx answer with a JSON body.
    """
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)

    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as e:
        # The server explains errors as {"error": {"code": ..., "message": ...}}.
        raw = e.read()
        try:
            error = json.loads(raw)["error"]
            code, detail, field = error.get("code"), error.get("message"), error.get("field")
        except (ValueError, KeyError, TypeError, AttributeError):
            code, detail, field = None, raw[:200].decode("utf-8", "replace"), None
        retry_after = e.headers.get("Retry-After")
        raise IvrAuthError(
            f"{method} {url} answered HTTP {e.code}" + (f" ({code})" if code else "") + f": {detail}",
            status=e.code,
            code=code,
            retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
            field=field,
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise IvrAuthError(f"{method} {url} failed: {reason}") from None

    try:
        return json.loads(raw)
    except ValueError:
        raise IvrAuthError(f"{method} {url} answered something that is not JSON") from None


class IvrAuthClient:
    """The site's side of ivr-auth: register a request, read its result, cancel it."""

    def __init__(self, base_url, api_key, timeout=10.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def _call(self, method, path, body=None):
        return _http_json(
            method,
            self.base_url + path,
            body,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=self.timeout,
        )

    @staticmethod
    def _path(request_id):
        # Ids come from the server, but never paste text into a URL unescaped.
        return "/v1/auth-requests/" + urllib.parse.quote(request_id, safe="")

    def register(
        self,
        phone_number,
        *,
        mode=None,
        code=None,
        code_length=None,
        external_id=None,
        user_id=None,
        locale=None,
        ttl_seconds=None,
        max_attempts=None,
        callback_url=None,
    ):
        """Registers an auth request; returns the created object.

        The answer's ``code`` is shown to the user and appears in no later
        answer, so keep it for as long as the page needs it. Passing an
        ``external_id`` (e.g. your own password-reset ticket id) makes a retry
        after a network error safe: the same body returns the same request.
        Fields left as None take the server's defaults.
        """
        fields = {
            "phone_number": phone_number,
            "mode": mode,
            "code": code,
            "code_length": code_length,
            "external_id": external_id,
            "user_id": user_id,
            "locale": locale,
            "ttl_seconds": ttl_seconds,
            "max_attempts": max_attempts,
            "callback_url": callback_url,
        }
        return self._call("POST", "/v1/auth-requests", {k: v for k, v in fields.items() if v is not None})

    def get(self, request_id):
        """Returns the request as it stands now (``status``, ``failure_reason``, ...)."""
        return self._call("GET", self._path(request_id))

    def cancel(self, request_id):
        """Cancels a request that has not finished; a finished one answers 409."""
        return self._call("POST", self._path(request_id) + "/cancel")

    def wait_until_terminal(self, request_id, timeout=60.0, interval=1.0):
        """Polls the result API until the request is verified, failed, expired or canceled.

        Returns the final object; raises TimeoutError if it is still going
        after ``timeout`` seconds. A site with a callback_url usually needs no
        polling; this is for the page that waits while the user is on the phone.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                current = self.get(request_id)
                if current["status"] in TERMINAL_STATUSES:
                    return current
                pause = interval
            except IvrAuthError as e:
                if e.status != 429:
                    raise
                pause = max(interval, e.retry_after or 1)  # rate limited: back off as asked
            if time.monotonic() + pause > deadline:
                raise TimeoutError(f"request {request_id} is not finished after {timeout:g}s")
            time.sleep(pause)


def verify_callback_signature(header, raw_body, secret, tolerance=300, now=None):
    """True if ``header`` (the IVR-Auth-Signature value) signs ``raw_body`` with ``secret``.

    The header reads ``t=<unix seconds>,v1=<hex>[,v1=<hex>...]``; each v1 is
    HMAC-SHA256 keyed with the tenant's callback secret over
    ``"<t>." + raw body``. Several v1 values appear while a secret is being
    rotated; one match is enough. ``raw_body`` must be the bytes exactly as
    received: parsing and re-serializing the JSON would change them. A
    timestamp more than ``tolerance`` seconds from now is refused, so a
    recorded callback cannot be replayed later.
    """
    if not header:
        return False
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and timestamp is None:
            timestamp = value
        elif key == "v1" and value:
            signatures.append(value)
    if not timestamp or not timestamp.isdigit() or not signatures:
        return False

    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        return False

    # Sign the timestamp exactly as it was sent, not as int() would print it.
    signed = timestamp.encode("ascii") + b"." + raw_body
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest().encode("ascii")
    # compare_digest takes the same time wherever the strings differ, so an
    # attacker cannot find the signature byte by byte by timing the answers.
    return any(hmac.compare_digest(expected, s.lower().encode("utf-8")) for s in signatures)


# --- Everything below is the demo: not needed in a site. ---------------------

DEMO_PHONE = "090-1234-5678"  # as a site would have it on file
DEMO_PHONE_E164 = "+819012345678"  # as the server stores it and the simulator lists it


class DemoError(Exception):
    """A step of the demo did not go as expected."""


class CallbackReceiver:
    """Receives result callbacks on 127.0.0.1 in a background thread.

    Each delivery is checked with verify_callback_signature and put on
    ``deliveries`` as ``(signature_valid, raw_body)``. A real site would
    answer an invalid signature with 4xx and ignore the body, as this one does.
    """

    PATH = "/ivr-auth/callback"

    def __init__(self, secret):
        self.deliveries = queue.Queue()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                if self.path != receiver.PATH:
                    self.send_error(404)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                raw_body = self.rfile.read(length)
                valid = verify_callback_signature(self.headers.get("IVR-Auth-Signature"), raw_body, secret)
                receiver.deliveries.put((valid, raw_body))
                # Any 2xx stops the server's retries; answer fast and do slow
                # work elsewhere. Delivery is at-least-once, so real handlers
                # must also cope with the same result arriving twice.
                self.send_response(204 if valid else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass  # keep the demo's output readable

        # Port 0: the OS picks a free port, so nothing can race us for it.
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{self.PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, request_id, timeout):
        """Returns ``(signature_valid, body)`` of the first callback about ``request_id``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DemoError(f"no result callback for request {request_id} within {timeout:g}s")
            try:
                valid, raw_body = self.deliveries.get(timeout=remaining)
            except queue.Empty:
                continue
            if not valid:
                return False, None
            try:
                body = json.loads(raw_body)
            except ValueError:
                raise DemoError("a correctly signed callback carried a body that is not JSON") from None
            if body.get("id") == request_id:
                return True, body


def simulate_user_entering_code(base_url, request_id, code, timeout=30.0):
    """Plays the user's phone through the simulator API: answer, wait for the prompt, type the code."""
    calls_url = f"{base_url}/simulator/calls?" + urllib.parse.urlencode({"to": DEMO_PHONE_E164})
    deadline = time.monotonic() + timeout

    def this_call():
        # Newest first; other requests may be calling the same number.
        for call in _http_json("GET", calls_url)["calls"]:
            if call.get("request_id") == request_id:
                return call
        return None

    def wait(what, done, still_ok):
        while True:
            call = this_call()
            if call and done(call):
                return call
            if call and not still_ok(call):
                raise DemoError(f"call {call['sid']} is '{call['state']}' while waiting until it {what}")
            if time.monotonic() > deadline:
                raise DemoError(f"the call for request {request_id} never {what} within {timeout:g}s")
            time.sleep(0.5)

    call = wait("rang", lambda c: c["state"] == "ringing", lambda c: False)
    sid = urllib.parse.quote(call["sid"], safe="")
    print(f"    call {call['sid']} is ringing; answering")
    _http_json("POST", f"{base_url}/simulator/calls/{sid}/answer")

    # Keys pressed while the guidance prompt plays, before the Gather, are lost.
    wait(
        "asked for the code",
        lambda c: c["awaiting_digits"],
        lambda c: c["state"] in ("ringing", "in-progress"),
    )
    print(f"    typing {code}")
    _http_json("POST", f"{base_url}/simulator/calls/{sid}/digits", {"digits": code})


PRIVATE_CALLBACKS_HINT = (
    "the server refused the callback URL on 127.0.0.1: start it with "
    "IVR_AUTH_ALLOW_PRIVATE_CALLBACKS=true (development only) for --callback, "
    "or run this demo without --callback to poll instead"
)


def register_demo_request(client, callback_url):
    """Registers the demo's request; a refused loopback callback URL says which server setting it needs."""
    try:
        return client.register(DEMO_PHONE, user_id="python-demo", callback_url=callback_url)
    except IvrAuthError as e:
        if callback_url and e.status == 422 and e.field in (None, "callback_url"):
            raise DemoError(f"{PRIVATE_CALLBACKS_HINT} ({e})") from None
        raise


def verify_and_poll(base_url, client, callback_url=None):
    """Registers a request, plays the phone, polls until it ends; returns the request id."""
    where = f"; callbacks go to {callback_url}" if callback_url else "; polling for the result"
    print(f"==> Registering an outbound request for {DEMO_PHONE}{where}")
    created = register_demo_request(client, callback_url)
    request_id, code = created["id"], created["code"]
    print(f"    id:   {request_id}")
    print(f"    code: {code}")

    print("==> Playing the user's phone through the simulator")
    simulate_user_entering_code(base_url, request_id, code)

    print("==> Polling the result API")
    result = client.wait_until_terminal(request_id, timeout=30)
    print(f"    status: {result['status']}")
    if result["status"] != "verified":
        raise DemoError(
            f"request {request_id} ended '{result['status']}' (failure_reason: {result.get('failure_reason')})"
        )
    return request_id


def demo(base_url, api_key):
    """The default demo: register, play the phone, poll. Works against the default server."""
    verify_and_poll(base_url, IvrAuthClient(base_url, api_key))
    print("==> OK: the request is verified (polled; run with --callback to receive the signed callback too)")


def demo_with_callback(base_url, api_key, callback_secret):
    """The demo with a result callback received on 127.0.0.1 and its signature checked.

    Needs a server started with IVR_AUTH_ALLOW_PRIVATE_CALLBACKS=true.
    """
    with CallbackReceiver(callback_secret) as receiver:
        request_id = verify_and_poll(base_url, IvrAuthClient(base_url, api_key), receiver.url)

        print("==> Waiting for the signed result callback")
        valid, body = receiver.wait_for(request_id, timeout=15)
        if not valid:
            raise DemoError("a result callback arrived with a bad IVR-Auth-Signature (is CALLBACK_SECRET right?)")
        print(f"    signature valid; callback status: {body.get('status')}")
        if body.get("status") != "verified":
            raise DemoError(f"the callback reports '{body.get('status')}', expected 'verified'")

    print(f"==> OK: request {request_id} is verified, and the callback said so with a valid signature")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Verify a phone number against an ivr-auth server with the simulator provider "
        "(BASE_URL, API_KEY and, with --callback, CALLBACK_SECRET come from the environment).",
    )
    parser.add_argument(
        "--callback",
        action="store_true",
        help="also receive the signed result callback on 127.0.0.1 and check it; "
        "the server must run with IVR_AUTH_ALLOW_PRIVATE_CALLBACKS=true",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    base_url = os.environ.get("BASE_URL", "http://127.0.0.1:8080").rstrip("/")
    api_key = os.environ.get("API_KEY")
    callback_secret = os.environ.get("CALLBACK_SECRET")
    try:
        if not api_key:
            raise DemoError("set API_KEY to the api_key that `cargo run -q -- tenant create NAME` printed")
        if args.callback:
            if not callback_secret:
                raise DemoError(
                    "--callback needs CALLBACK_SECRET, the callback_secret that `cargo run -q -- tenant create NAME` printed"
                )
            demo_with_callback(base_url, api_key, callback_secret)
        else:
            demo(base_url, api_key)
    except (IvrAuthError, DemoError, TimeoutError) as e:
        print(f"client.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
