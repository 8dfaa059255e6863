"""Helpers for the oned-lite interoperability scripts.

The scripts are started by the Rust tests with ONE_XMLRPC (the endpoint) and ONE_AUTH (a file
holding "oneadmin:<password>"), the variables every OpenNebula client reads. A failed check
raises AssertionError, so the script exits non-zero with a traceback naming the check.
"""

import http.client
import os
import urllib.parse
import xml.etree.ElementTree as ET
import xmlrpc.client

AUTHENTICATION = 0x100
AUTHORIZATION = 0x200
NO_EXISTS = 0x400
ACTION = 0x800
RPC_API = 0x1000
INTERNAL = 0x2000
ALLOCATE = 0x4000


def endpoint():
    return os.environ["ONE_XMLRPC"]


def session():
    with open(os.environ["ONE_AUTH"]) as f:
        return f.read().rstrip()


def proxy():
    """A ServerProxy; its transport keeps the HTTP/1.1 connection alive between calls."""
    return xmlrpc.client.ServerProxy(endpoint())


def ok(response):
    """Checks a success array [True, value, 0] and returns the value."""
    assert isinstance(response, list), response
    assert len(response) == 3, response
    assert response[0] is True, response
    assert response[2] == 0, response
    return response[1]


def failure(response, code, message, method=None):
    """Checks a failure array [False, "[method] message", code, resp_id, -1]; returns resp_id."""
    assert isinstance(response, list), response
    assert len(response) == 5, response
    assert response[0] is False, response
    if method is not None:
        message = "[%s] %s" % (method, message)
    assert response[1] == message, "expected %r, got %r" % (message, response[1])
    assert response[2] == code, "expected code %#x, got %r" % (code, response[2])
    assert response[4] == -1, response
    return response[3]


def fault(call, code=None):
    """Runs call(), which must raise an XML-RPC fault; returns it."""
    try:
        result = call()
    except xmlrpc.client.Fault as f:
        if code is not None:
            assert f.faultCode == code, (f.faultCode, f.faultString)
        return f
    raise AssertionError("expected a fault, got %r" % (result,))


def xml(text):
    return ET.fromstring(text)


def template(hook_xml):
    """The TEMPLATE children of a HOOK element as a list of (name, text) in document order."""
    return [(c.tag, c.text or "") for c in hook_xml.find("TEMPLATE")]


def raw_post(body, path="/RPC2", method="POST"):
    """Sends body as is over a new connection; returns (status, response text)."""
    u = urllib.parse.urlparse(endpoint())
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "text/xml"})
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()
