"""The hook API through pyone, OpenNebula's own Python bindings (generated from its XSDs)."""

import pyone

from onelite import endpoint, session

one = pyone.OneServer(endpoint(), session=session())

hid = one.hook.allocate('NAME = py-hook\nTYPE = api\nCOMMAND = "/bin/echo"\nARGUMENTS = "$API"\n'
                        'CALL = "one.user.allocate"\nARGUMENTS_STDIN = yes\n')
assert isinstance(hid, int), hid

hook = one.hook.info(hid)
assert hook.ID == hid, hook.ID
assert hook.NAME == "py-hook", hook.NAME
assert hook.TYPE == "api", hook.TYPE
assert hook.TEMPLATE["CALL"] == "one.user.allocate", hook.TEMPLATE
assert hook.TEMPLATE["REMOTE"] == "NO", hook.TEMPLATE

sid = one.hook.allocate("NAME = py-state\nTYPE = state\nCOMMAND = c\nRESOURCE = HOST\nSTATE = error\n")
pool = one.hookpool.info(-1, -1, -1)
assert [h.ID for h in pool.HOOK] == [sid, hid], [h.ID for h in pool.HOOK]
assert pool.HOOK[0].TEMPLATE["STATE"] == "ERROR"

one.hook.update(hid, "NOTE = merged", 1)
assert one.hook.info(hid).TEMPLATE["NOTE"] == "merged"
one.hook.rename(hid, "py-renamed")
assert one.hook.info(hid).NAME == "py-renamed"
one.hook.lock(hid, 1, False)
assert one.hook.info(hid).LOCK.LOCKED == 1
try:
    one.hook.delete(hid)
    raise AssertionError("a locked hook was deleted")
except pyone.OneAuthorizationException as e:
    assert "HOOK is locked" in str(e), e
one.hook.unlock(hid)

# pyone has no binding for a standalone HOOKLOG document (with oned too), so the log is
# checked through the HOOKLOG element of one.hook.info.
assert len(one.hook.info(hid).HOOKLOG.HOOK_EXECUTION_RECORD) == 0

one.hook.delete(hid)
try:
    one.hook.info(hid)
    raise AssertionError("a deleted hook was found")
except pyone.OneNoExistsException as e:
    assert str(e) == "[one.hook.info] Error getting hook [%d]." % hid, e

users = one.userpool.info()
assert [u.NAME for u in users.USER] == ["oneadmin"], [u.NAME for u in users.USER]
me = one.user.info(0)
assert me.NAME == "oneadmin" and me.GID == 0 and me.GNAME == "oneadmin"
# The shapes of OpenNebula's user.xsd and user_pool.xsd: empty quotas as oned sends them for a
# user without quotas, and no LOGIN_TOKEN where no token was issued.
for quota in (me.DATASTORE_QUOTA, me.NETWORK_QUOTA, me.VM_QUOTA, me.IMAGE_QUOTA):
    assert quota is not None, me
assert me.DEFAULT_USER_QUOTAS is not None and me.DEFAULT_USER_QUOTAS.VM_QUOTA is not None
assert not me.VM_QUOTA.VM and not me.DATASTORE_QUOTA.DATASTORE, (me.VM_QUOTA.VM, me.DATASTORE_QUOTA.DATASTORE)
assert me.LOGIN_TOKEN == [], me.LOGIN_TOKEN
assert users.DEFAULT_USER_QUOTAS is not None and users.DEFAULT_USER_QUOTAS.IMAGE_QUOTA is not None
assert users.USER[0].LOGIN_TOKEN == []

assert isinstance(one.system.version(), str)
print("hook_pyone: ok")
