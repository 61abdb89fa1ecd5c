"""pymemcache over TLS against a running ferrocache started with -Z and
mutual TLS (ssl_verify_mode=2): the client's tls_context carries the CA and
a client certificate. Usage: pymemcache_tls.py HOST PORT CERT_DIR

CERT_DIR holds ca.pem, client.pem/client.key (signed by ca.pem) and
rogue.pem/rogue.key (self-signed). Prints one line per check and
"N passed, M failed"; exits 1 if any failed.
"""

import socket
import ssl
import sys

from pymemcache.client.base import Client

host, port, certs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
TIMEOUT = 10
results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
        except Exception as e:  # noqa: BLE001 - every failure is reported
            results.append((name, repr(e)))
        return fn

    return wrap


def context(identity=None):
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    if identity:
        ctx.load_cert_chain(f"{certs}/{identity}.pem", f"{certs}/{identity}.key")
    return ctx


def client(identity="client"):
    return Client((host, port), tls_context=context(identity), connect_timeout=TIMEOUT, timeout=TIMEOUT)


def refused(identity):
    c = client(identity)
    try:
        c.version()
    except (ssl.SSLError, OSError, Exception) as e:  # noqa: BLE001
        return e
    raise AssertionError(f"a client with identity {identity!r} was served")


@check("set/get/delete over TLS with a client certificate")
def _():
    c = client()
    assert c.set("tls:k", b"v", noreply=False)
    assert c.get("tls:k") == b"v"
    assert c.delete("tls:k", noreply=False)
    assert c.get("tls:k") is None


@check("a 500 KB value both ways")
def _():
    c = client()
    big = bytes(range(256)) * 2000
    assert c.set("tls:big", big, noreply=False)
    assert c.get("tls:big") == big


@check("get_many, gets/cas, incr")
def _():
    c = client()
    c.set_many({"tls:a": b"1", "tls:b": b"2"}, noreply=False)
    assert c.get_many(["tls:a", "tls:b", "tls:none"]) == {"tls:a": b"1", "tls:b": b"2"}
    value, cas = c.gets("tls:a")
    assert value == b"1"
    assert c.cas("tls:a", b"3", cas, noreply=False)
    assert c.cas("tls:a", b"4", cas, noreply=False) is False
    assert c.incr("tls:a", 5) == 8


@check("stats shows the TLS counters and settings")
def _():
    c = client()
    s = c.stats()
    assert b"ssl_handshake_errors" in s and b"time_since_server_cert_refresh" in s, s
    settings = c.stats("settings")
    assert settings[b"ssl_enabled"] is True or settings[b"ssl_enabled"] == b"yes", settings
    assert settings[b"ssl_verify_mode"] == 3, settings


@check("refresh_certs answers OK over TLS")
def _():
    raw = context("client").wrap_socket(socket.create_connection((host, port), timeout=TIMEOUT), server_hostname=host)
    raw.sendall(b"refresh_certs\r\n")
    assert raw.recv(64) == b"OK\r\n"
    raw.close()


@check("no client certificate: refused")
def _():
    refused(None)


@check("a certificate the CA did not sign: refused")
def _():
    refused("rogue")


@check("plain text to the TLS port: closed")
def _():
    c = Client((host, port), connect_timeout=TIMEOUT, timeout=TIMEOUT)
    try:
        c.get("tls:k")
    except Exception:  # noqa: BLE001 - closed, reset or garbage: all refusals
        return
    raise AssertionError("plain text was answered")


failed = 0
for name, err in results:
    if err is None:
        print(f"ok {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {err}")
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
