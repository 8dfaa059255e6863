"""Every hook template of the user documentation is accepted (and stored as documented)."""

from onelite import *

s = session()
p = proxy()

SEED = {
    "hook-API": ('NAME      = hook-API\nTYPE      = api\nCOMMAND   = "log_new_user.rb"\n'
                 'ARGUMENTS = $API\nCALL      = "one.user.allocate"\nARGUMENTS_STDIN = yes\n'),
    "hook-vm": "NAME = hook-vm\nTYPE = state\nCOMMAND = new_vm.rb\nARGUMENTS = $TEMPLATE\nON = PROLOG\nRESOURCE = VM\n",
    "hook-host": "NAME = hook-host\nTYPE = state\nCOMMAND = host-disabled.rb\nSTATE = DISABLED\nRESOURCE = HOST\nREMOTE = yes\n",
    "hook-image": "NAME = hook-image\nTYPE = state\nCOMMAND = image-ready.rb\nSTATE = READY\nRESOURCE = IMAGE\n",
    "hook-vm-custom": ('     NAME      = hook-vm\n     TYPE      = state\n     COMMAND   = vm-pending.rb\n'
                       '     ARGUMENTS = "\\$TEMPLATE pending"\n     ON        = CUSTOM\n     RESOURCE  = VM\n'
                       '     STATE     = PENDING\n     LCM_STATE = LCM_INIT\n'),
    "user-create": 'NAME = user-create\nTYPE = api\nCOMMAND = "user_create.rb"\nARGUMENTS = "$API"\nCALL = "one.user.allocate"\n',
    "host-error": 'NAME = host-error\nTYPE = state\nCOMMAND = host_error.rb\nARGUMENTS="$TEMPLATE"\nSTATE = ERROR\nRESOURCE = HOST\n',
    "vm-prolog": "NAME = vm-prolog\nTYPE = state\nCOMMAND = vm_prolog.rb\nARGUMENTS = $TEMPLATE\nON = PROLOG\nRESOURCE = VM\n",
    "image-ready": 'NAME = image-ready\nTYPE = state\nCOMMAND = image_ready.rb\nSTATE = READY\nRESOURCE = IMAGE\nARGUMENTS = "$TEMPLATE"\n',
    "autostart-host": ("NAME = autostart-host\nTYPE = state\nCOMMAND = autostart/host\nARGUMENTS = \\$TEMPLATE\n"
                       "ARGUMENTS_STDIN = yes\nRESOURCE = HOST\nSTATE = MONITORED\n"),
    "autostart-vm": ("NAME = autostart-vm\nTYPE = state\nCOMMAND = autostart/vm\nARGUMENTS = \\$TEMPLATE\n"
                     "ARGUMENTS_STDIN = yes\nRESOURCE = VM\nSTATE = POWEROFF\nLCM_STATE = LCM_INIT\nON = CUSTOM\n"),
}

EXPECT = {
    "hook-vm": {"STATE": "ACTIVE", "LCM_STATE": "PROLOG", "REMOTE": "NO"},
    "hook-host": {"STATE": "DISABLED", "REMOTE": "YES"},
    "hook-vm-custom": {"STATE": "PENDING", "LCM_STATE": "LCM_INIT", "ARGUMENTS": "\\$TEMPLATE pending"},
    "autostart-vm": {"STATE": "POWEROFF", "LCM_STATE": "LCM_INIT"},
}

for key, text in SEED.items():
    hid = ok(p.one.hook.allocate(s, text))
    h = xml(ok(p.one.hook.info(s, hid)))
    t = dict(template(h))
    assert "ON" not in t or h.find("TEMPLATE/RESOURCE").text != "VM", t
    for k, v in EXPECT.get(key, {}).items():
        assert t.get(k) == v, (key, k, t)
    ok(p.one.hook.delete(s, hid))
print("hook_seed_templates: ok (%d templates)" % len(SEED))
