"""The hook API end to end with Python's xmlrpc.client, as oneadmin and as a plain user."""

import sys

from onelite import *

s = session()
p = proxy()

# The first allocate on an empty pool that fails after the id reservation burns id 0.
failure(p.one.hook.allocate(s, "NAME=h0\nTYPE=api\nCALL=one.vm.allocate"), INTERNAL,
        "No COMMAND in template for Hook.", "one.hook.allocate")
api_id = ok(p.one.hook.allocate(s, 'NAME = api-h\nTYPE = API\nCOMMAND = "/usr/bin/echo"\n'
                                   'ARGUMENTS = "$API"\nCALL = one.vm.allocate\n'))
assert api_id == 1, api_id

vm_id = ok(p.one.hook.allocate(s, "NAME = hook-vm\nTYPE = state\nCOMMAND = vm-pending.rb\n"
                                  'ARGUMENTS = "$TEMPLATE pending"\nON = CUSTOM\nRESOURCE = VM\n'
                                  "STATE = pending\nLCM_STATE = lcm_init\n"))
assert vm_id == 2

# info: element order, canonical states, ON removed, REMOTE added, empty HOOKLOG.
h = xml(ok(p.one.hook.info(s, vm_id)))
assert [c.tag for c in h] == ["ID", "NAME", "TYPE", "TEMPLATE", "HOOKLOG"], [c.tag for c in h]
assert h.findtext("NAME") == "hook-vm" and h.findtext("TYPE") == "state"
assert template(h) == [("ARGUMENTS", "$TEMPLATE pending"), ("COMMAND", "vm-pending.rb"),
                       ("LCM_STATE", "LCM_INIT"), ("REMOTE", "NO"), ("RESOURCE", "VM"),
                       ("STATE", "PENDING")], template(h)
assert len(h.find("HOOKLOG")) == 0

# update, replace mode: the template is exactly the new one (NAME stays, REMOTE absent).
ok(p.one.hook.update(s, api_id, "COMMAND = /bin/true\nCALL = one.vm.action\nNOTE = x", 0))
h = xml(ok(p.one.hook.info(s, api_id)))
assert template(h) == [("CALL", "one.vm.action"), ("COMMAND", "/bin/true"), ("NOTE", "x")], template(h)
assert h.findtext("NAME") == "api-h"
# update, merge mode: NOTE replaced, A added, the rest kept.
ok(p.one.hook.update(s, api_id, "NOTE = y\nA = [ K = v ]", 1))
t = dict(template(xml(ok(p.one.hook.info(s, api_id)))))
assert t["NOTE"] == "y" and t["CALL"] == "one.vm.action" and t["COMMAND"] == "/bin/true", t
# Update errors, in the reference's order and words.
failure(p.one.hook.update(s, api_id, "COMMAND = x", 2), RPC_API, "Wrong update type", "one.hook.update")
failure(p.one.hook.update(s, api_id, "CALL = one.vm.allocate", 0), INTERNAL,
        "Cannot update template. The COMMAND attribute is not defined.", "one.hook.update")
failure(p.one.hook.update(s, api_id, "COMMAND = x\nCALL = one.vm.info", 0), INTERNAL,
        "Cannot update template. The CALL attribute is not defined or it's invalid.", "one.hook.update")
failure(p.one.hook.update(s, 99, "COMMAND = x", 0), NO_EXISTS, "Error getting hook [99].", "one.hook.update")
assert dict(template(xml(ok(p.one.hook.info(s, api_id)))))["NOTE"] == "y"  # unchanged

# rename: same name is a no-op, collisions and invalid names are refused.
assert ok(p.one.hook.rename(s, api_id, "api-h")) == api_id
failure(p.one.hook.rename(s, api_id, "hook-vm"), ACTION,
        "hook cannot be renamed to hook-vm because it collides with hook %d" % vm_id, "one.hook.rename")
failure(p.one.hook.rename(s, api_id, ""), ACTION, "Invalid NAME, it cannot be empty", "one.hook.rename")
failure(p.one.hook.rename(s, api_id, "a/b"), ACTION, "Invalid NAME, char '/' is not allowed", "one.hook.rename")
ok(p.one.hook.rename(s, api_id, "api-renamed"))
assert xml(ok(p.one.hook.info(s, api_id))).findtext("NAME") == "api-renamed"

# lock: USE blocks update/rename/delete/retry but not info; lock and unlock ignore the lock.
ok(p.one.hook.lock(s, vm_id, 1, False))
h = xml(ok(p.one.hook.info(s, vm_id)))
assert h.findtext("LOCK/LOCKED") == "1" and h.findtext("LOCK/OWNER") == "0", ET.tostring(h)
assert [c.tag for c in h][:4] == ["ID", "NAME", "TYPE", "LOCK"]
locked = "User [0] : HOOK is locked. [%d]." % vm_id
failure(p.one.hook.update(s, vm_id, "COMMAND = x", 1), AUTHORIZATION, locked, "one.hook.update")
failure(p.one.hook.rename(s, vm_id, "other"), AUTHORIZATION, locked, "one.hook.rename")
failure(p.one.hook.delete(s, vm_id), AUTHORIZATION, locked, "one.hook.delete")
failure(p.one.hook.retry(s, vm_id, 0), AUTHORIZATION, locked, "one.hook.retry")
ts = xml(ok(p.one.hook.info(s, vm_id))).findtext("LOCK/TIME")
failure(p.one.hook.lock(s, vm_id, 2, True), ACTION, ts, "one.hook.lock")
failure(p.one.hook.lock(s, vm_id, 7), ACTION, "Wrong lock level specified", "one.hook.lock")
ok(p.one.hook.unlock(s, vm_id))
assert xml(ok(p.one.hook.info(s, vm_id))).find("LOCK") is None
# An ADMIN lock blocks no hook call.
ok(p.one.hook.lock(s, vm_id, 3))
ok(p.one.hook.update(s, vm_id, "TIMEOUT = 5", 1))
ok(p.one.hook.unlock(s, vm_id))

# pool: descending ids, no HOOKLOG.
pool = xml(ok(p.one.hookpool.info(s, -1, -1, -1)))
assert pool.tag == "HOOK_POOL"
assert [int(x.findtext("ID")) for x in pool] == [vm_id, api_id]
assert all(x.find("HOOKLOG") is None for x in pool)
ok(p.one.hookpool.info(s))  # HEAD reads no parameters

# retry without records; hook log is empty.
failure(p.one.hook.retry(s, vm_id, 0), INTERNAL,
        "Invalid HookLog body. Arguments not found: execution 0 of hook %d does not exist." % vm_id,
        "one.hook.retry")
assert len(xml(ok(p.one.hooklog.info(s, -1, -1, -1, 0)))) == 0

# delete: gone from info and pool; ids are not reused.
assert ok(p.one.hook.delete(s, api_id)) == api_id
failure(p.one.hook.info(s, api_id), NO_EXISTS, "Error getting hook [%d]." % api_id, "one.hook.info")
failure(p.one.hook.info(s, -1), NO_EXISTS, "Error getting hook Pool.", "one.hook.info")
failure(p.one.hook.delete(s, api_id), NO_EXISTS, "Error getting hook [%d]." % api_id, "one.hook.delete")
new_id = ok(p.one.hook.allocate(s, "NAME=api-h\nTYPE=api\nCOMMAND=/bin/true\nCALL=one.hook.delete"))
assert new_id == vm_id + 1, new_id

# Bad templates get the reference's messages and change nothing.
bad = [
    ("NAME=x\nTYPE=bogus\nCOMMAND=c", "Invalid Hook type: bogus"),
    ("TYPE=api\nCOMMAND=c\nCALL=one.vm.allocate", "Invalid name."),
    ("NAME=hook-vm\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate", "NAME is already taken by Hook %d." % vm_id),
    ("NAME=x\nTYPE=state\nCOMMAND=c", "RESOURCE attribute is required for STATE hooks."),
    ("NAME=x\nTYPE=state\nCOMMAND=c\nRESOURCE=VNET\nSTATE=READY", "Invalid resource type: VNET"),
    ("NAME=x\nTYPE=api\nCOMMAND=c\nCALL=one.vm.info", "API call does not exist or is not supported: one.vm.info"),
    ("NAME=x\nTYPE=state\nCOMMAND=c\nRESOURCE=VM\nON=boot", "Unkown state condition: BOOT"),
    ("NAME=x\nTYPE=state\nCOMMAND=c\nRESOURCE=HOST\nSTATE=up", "Invalid STATE: UP"),
    ("NAME=x\nTYPE=state\nCOMMAND=c\nRESOURCE=IMAGE", "Hook STATE attribute not found or invalid"),
    ("A=[B=1 C=2]", "Parse error: syntax error, unexpected VARIABLE, expecting COMMA or CBRACKET at line 0, columns 8:9"),
    ("<TEMPLATE><NAME>x</TEMPLATE>", "Parse error: XML Template malformed."),
]
for text, message in bad:
    failure(p.one.hook.allocate(s, text), INTERNAL, message, "one.hook.allocate")
assert len(xml(ok(p.one.hookpool.info(s, -1, -1, -1)))) == 2

# Authentication failures: AUTHENTICATION, resp_id -1.
failure(p.one.hook.info(s + "x", vm_id), AUTHENTICATION,
        "User couldn't be authenticated, aborting call.", "one.hook.info")
failure(p.one.hookpool.info("nobody:x"), AUTHENTICATION,
        "User couldn't be authenticated, aborting call.", "one.hookpool.info")

# A plain user (group "users") is refused everywhere and sees no hooks.
uid = ok(p.one.user.allocate(s, "alice", "wonder", ""))
u = xml(ok(p.one.user.info(s, uid)))
assert u.findtext("NAME") == "alice" and u.findtext("GID") == "1" and u.findtext("GNAME") == "users"
a = "alice:wonder"
failure(p.one.hook.allocate(a, "NAME=z\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate"), AUTHORIZATION,
        "User [%d] : Not authorized to perform CREATE HOOK." % uid, "one.hook.allocate")
failure(p.one.hook.info(a, vm_id), AUTHORIZATION,
        "User [%d] : Not authorized to perform USE HOOK [%d]." % (uid, vm_id), "one.hook.info")
for call in (lambda: p.one.hook.delete(a, vm_id), lambda: p.one.hook.update(a, vm_id, "X=1", 1),
             lambda: p.one.hook.rename(a, vm_id, "q"), lambda: p.one.hook.lock(a, vm_id, 1),
             lambda: p.one.hook.unlock(a, vm_id), lambda: p.one.hook.retry(a, vm_id, 0)):
    r = call()
    failure(r, AUTHORIZATION, r[1].split("] ", 1)[0] + "] " +
            "User [%d] : Not authorized to perform MANAGE HOOK [%d]." % (uid, vm_id))
failure(p.one.hooklog.info(a, -1, -1, -1, 0), AUTHORIZATION,
        "User [%d] not authorized to perform action on hook." % uid, "one.hooklog.info")
assert len(xml(ok(p.one.hookpool.info(a, -1, -1, -1)))) == 0
# The hooks are untouched.
assert xml(ok(p.one.hook.info(s, vm_id))).findtext("NAME") == "hook-vm"

# Faults: wrong types, missing parameters, unknown methods; the connection keeps working.
fault(lambda: p.one.hook.info(s, "zero"), -501)
fault(lambda: p.one.hook.info(s), -501)
fault(lambda: p.one.hook.update(s, vm_id, "X=1", "merge"), -501)
fault(lambda: p.one.hook.lock(s, vm_id, 1, "no"), -501)
fault(lambda: p.one.no.such.method(s), -506)
fault(lambda: p.one.hook.info(), -501)
fault(lambda: p.one.hook.info(17, vm_id), -501)
assert ok(p.one.system.version(s))

print("hook_api: ok")
