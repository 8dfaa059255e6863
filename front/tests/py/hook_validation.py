"""TIMEOUT, REMOTE and unterminated quotes through Python's xmlrpc.client: each bad template is
refused by one.hook.allocate and one.hook.update with a clear message, and the pool and the
hook stay exactly as they were."""

from onelite import *

s = session()
p = proxy()

NONNEG = "TIMEOUT must be a non-negative integer (seconds)."
YES_NO = "REMOTE must be YES or NO."
VALID = "NAME = guarded\nTYPE = api\nCOMMAND = /bin/true\nCALL = one.vm.allocate\n"
ATTACKS = [
    ("TIMEOUT = -5\n", "Invalid TIMEOUT: -5. " + NONNEG),
    ("TIMEOUT = abc\n", "Invalid TIMEOUT: abc. " + NONNEG),
    ("REMOTE = maybe\n", "Invalid REMOTE: maybe. " + YES_NO),
]


def unterminated(name):
    """A template whose COMMAND opens a quote nothing closes, and the answer naming that quote."""
    text = 'NAME = %s\nTYPE = api\nCOMMAND = "/bin/true\nCALL = one.vm.allocate\n' % name
    column = text.index('"') + 1
    return text, "Parse error: unterminated quoted value at line 2, columns %d:%d" % (column, column + 1)



def pool():
    return ok(p.one.hookpool.info(s, -2, -1, -1))


# allocate on an empty pool: refused, and no id is burnt.
empty = pool()
for extra, message in ATTACKS:
    failure(p.one.hook.allocate(s, VALID + extra), INTERNAL, message, "one.hook.allocate")
    assert pool() == empty, pool()
failure(p.one.hook.allocate(s, unterminated("guarded")[0]), INTERNAL,
        "Parse error: unterminated quoted value at line 2, columns 37:38", "one.hook.allocate")
assert pool() == empty, pool()
hook_id = ok(p.one.hook.allocate(s, VALID + "TIMEOUT = 30\nREMOTE = yes\n"))
assert hook_id == 0, hook_id

# allocate next to an existing hook: the pool is unchanged byte for byte.
before = pool()
for extra, message in ATTACKS:
    failure(p.one.hook.allocate(s, VALID.replace("guarded", "other") + extra), INTERNAL, message,
            "one.hook.allocate")
    assert pool() == before, pool()
failure(p.one.hook.allocate(s, unterminated("other")[0]), INTERNAL, unterminated("other")[1],
        "one.hook.allocate")
assert pool() == before, pool()

# update, merge and replace: refused, the hook's template unchanged.
shown = ok(p.one.hook.info(s, hook_id))
assert dict(template(xml(shown)))["TIMEOUT"] == "30" and dict(template(xml(shown)))["REMOTE"] == "YES"
for mode, base in [(1, ""), (0, "COMMAND = /bin/true\nCALL = one.vm.allocate\n")]:
    for extra, message in ATTACKS:
        failure(p.one.hook.update(s, hook_id, base + extra, mode), INTERNAL,
                "Cannot update template. " + message, "one.hook.update")
        assert ok(p.one.hook.info(s, hook_id)) == shown, mode
    failure(p.one.hook.update(s, hook_id, base + 'TIMEOUT = "5\n', mode), INTERNAL,
            "Cannot update template. Parse error: unterminated quoted value at line %d, columns %d:%d"
            % (base.count("\n"), len(base) + 11, len(base) + 12), "one.hook.update")
    assert ok(p.one.hook.info(s, hook_id)) == shown, mode
assert pool() == before

# Valid values, in any case, are still taken.
ok(p.one.hook.update(s, hook_id, "TIMEOUT = 0\nREMOTE = No", 1))
t = dict(template(xml(ok(p.one.hook.info(s, hook_id)))))
assert (t["TIMEOUT"], t["REMOTE"]) == ("0", "NO"), t
print("hook_validation: ok")
