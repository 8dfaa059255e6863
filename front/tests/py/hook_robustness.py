"""Malformed requests get faults or HTTP errors, and the server keeps serving."""

from onelite import *

s = session()

cases = [
    b"",
    b"not xml at all",
    b"<methodCall>",
    b"<methodCall><methodName>one.hook.info</methodName><params><param><value><i4>x</i4></value></param></params></methodCall>",
    b"<methodCall><methodName>one.hook.info</methodName><params><param><value><bogus/></value></param></params></methodCall>",
    b"<?xml version='1.0'?><methodCall><methodName>one.hook.info</methodName><params><param><value><string>\xff\xfe</string></value></param></params></methodCall>",
    b"<methodCall><methodName>one.hook.info</methodName><params>" + b"<param><value><array><data><value>" * 300 + b"</params></methodCall>",
    b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]><methodCall><methodName>&a;</methodName></methodCall>",
]
for body in cases:
    status, text = raw_post(body)
    assert status == 200, (status, body[:60])
    assert "<fault>" in text and "faultCode" in text, text

# Untyped values are strings; <int> and <i4> both work.
body = ("<?xml version='1.0'?><methodCall><methodName>one.hookpool.info</methodName><params>"
        "<param><value>%s</value></param><param><value><int>-1</int></value></param>"
        "<param><value><i4>-1</i4></value></param><param><value><i8>-1</i8></value></param>"
        "</params></methodCall>" % s).encode()
status, text = raw_post(body)
assert status == 200 and "<value><boolean>1</boolean></value>" in text, text
assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\r\n<methodResponse>\r\n'), repr(text[:80])
assert "<value><string>&lt;HOOK_POOL&gt;" in text, text

# Wrong path or method, oversized body.
assert raw_post(b"<x/>", path="/other")[0] == 404
assert raw_post(None, method="GET")[0] == 405
status, _ = raw_post(b"<methodCall>" + b" " * (9 * 1024 * 1024) + b"</methodCall>")
assert status == 413, status

# Failure arrays carry <i8>-1</i8> as the replication index.
body = ("<methodCall><methodName>one.hook.info</methodName><params><param><value><string>%s"
        "</string></value></param><param><value><i4>12345</i4></value></param></params></methodCall>" % s).encode()
status, text = raw_post(body)
assert "<value><i4>1024</i4></value>\r\n<value><i4>12345</i4></value>\r\n<value><i8>-1</i8></value>" in text, text

# Still serving, on a kept-alive connection.
p = proxy()
for _ in range(3):
    ok(p.one.hookpool.info(s, -1, -1, -1))
print("hook_robustness: ok")
