"""pylibmc (libmemcached) with binary=True against a running daemon.

Usage: pylibmc_binary.py HOST PORT [USER PASSWORD]
With USER and PASSWORD the client authenticates with SASL and the script
also checks that a client with a wrong password is refused.
Prints one line per check and 'pylibmc: N passed, M failed'.
"""
import sys
import traceback

import pylibmc

host, port = sys.argv[1], sys.argv[2]
user = sys.argv[3] if len(sys.argv) > 3 else None
password = sys.argv[4] if len(sys.argv) > 4 else None
server = ["%s:%s" % (host, port)]


def client(**kw):
    if user:
        kw.setdefault("username", user)
        kw.setdefault("password", password)
    return pylibmc.Client(server, binary=True, behaviors={"cas": True}, **kw)


checks = []


def check(fn):
    checks.append(fn)
    return fn


@check
def set_get_delete():
    mc = client()
    mc.flush_all()
    assert mc.set("greeting", b"hello")
    assert mc.get("greeting") == b"hello"
    assert mc.get("missing") is None
    assert mc.delete("greeting")
    assert not mc.delete("greeting")


@check
def add_replace_append_prepend():
    mc = client()
    assert mc.add("k", b"mid")
    assert not mc.add("k", b"other")
    assert mc.replace("k", b"mid")
    try:
        mc.replace("absent", b"x")
        raise AssertionError("replace of a missing key must fail")
    except pylibmc.NotFound:
        pass  # libmemcached reports the binary ENOENT status this way
    assert mc.append("k", b">")
    assert mc.prepend("k", b"<")
    assert mc.get("k") == b"<mid>"


@check
def python_values_round_trip_through_flags():
    mc = client()
    values = {"int": 42, "long": 2**40, "str": "unicode \u00e9", "list": [1, 2, 3], "bytes": b"\x00\x01\xff"}
    for k, v in values.items():
        assert mc.set(k, v)
    assert mc.get_multi(list(values)) == values


@check
def multi_get_and_set():
    mc = client()
    data = {"m%d" % i: ("v%d" % i).encode() * (i + 1) for i in range(200)}
    assert mc.set_multi(data) == []
    got = mc.get_multi(list(data) + ["absent"])
    assert got == data, (len(got), len(data))


@check
def incr_decr():
    mc = client()
    mc.set("n", 10)
    assert mc.incr("n", 5) == 15
    assert mc.decr("n", 100) == 0
    try:
        mc.incr("absent")
        raise AssertionError("incr on a missing key must fail")
    except pylibmc.NotFound:
        pass


@check
def cas():
    mc = client()
    mc.set("c", b"v1")
    value, token = mc.gets("c")
    assert value == b"v1" and token
    assert mc.cas("c", b"v2", token)
    assert not mc.cas("c", b"v3", token)
    assert mc.get("c") == b"v2"


@check
def large_value():
    mc = client()
    big = b"x" * (900 * 1024)
    assert mc.set("big", big)
    assert mc.get("big") == big


@check
def touch_and_expiry_arguments():
    mc = client()
    mc.set("t", b"v", time=100)
    assert mc.touch("t", 200)
    assert not mc.touch("absent", 200)


@check
def stats_and_flush():
    mc = client()
    stats = mc.get_stats()
    assert stats and "curr_items" in stats[0][1]
    assert mc.flush_all()
    assert mc.get("k") is None


if user:

    @check
    def wrong_password_is_refused():
        mc = client(password=password + "-wrong")
        try:
            mc.set("x", b"y")
            raise AssertionError("a wrong password must not store")
        except pylibmc.Error:
            pass


passed = failed = 0
for fn in checks:
    try:
        fn()
        passed += 1
        print("ok   %s" % fn.__name__)
    except Exception:
        failed += 1
        print("FAIL %s" % fn.__name__)
        traceback.print_exc()
print("pylibmc: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
