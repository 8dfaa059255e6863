"""The simulated cloud through pyone, OpenNebula's own Python bindings: its VM, HOST and IMAGE
classes (generated from OpenNebula's XSDs) must read our documents, and the fields hooks use
must hold what the calls did."""

import time

import pyone

from onelite import endpoint, session

one = pyone.OneServer(endpoint(), session=session())


def wait(what, check):
    deadline = time.time() + 60
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("gave up waiting for " + what)


hid = one.host.allocate("py-node", "kvm", "kvm", -1)
host = wait("host MONITORED", lambda: (lambda h: h if h.STATE == 2 else None)(one.host.info(hid)))
assert host.NAME == "py-node", host.NAME
assert host.IM_MAD == "kvm" and host.VM_MAD == "kvm"

vid = one.vm.allocate("NAME = py-vm\nCPU = 0.5\nMEMORY = 256\nAUTOSTART = yes\n", False)
vm = one.vm.info(vid)
assert vm.NAME == "py-vm" and vm.STATE == 1 and vm.LCM_STATE == 0, (vm.STATE, vm.LCM_STATE)
assert vm.TEMPLATE["MEMORY"] == "256" and vm.TEMPLATE["VMID"] == str(vid), vm.TEMPLATE
assert vm.USER_TEMPLATE["AUTOSTART"] == "yes", vm.USER_TEMPLATE

one.vm.deploy(vid, hid, False, -1, "")
vm = wait("VM RUNNING", lambda: (lambda v: v if (v.STATE, v.LCM_STATE) == (3, 3) else None)(one.vm.info(vid)))
last = vm.HISTORY_RECORDS.HISTORY[-1]
assert (last.HID, last.HOSTNAME, last.ACTION) == (hid, "py-node", 0), (last.HID, last.HOSTNAME, last.ACTION)
assert vm.DEPLOY_ID == "one-%d" % vid, vm.DEPLOY_ID
assert list(one.host.info(hid).VMS.ID) == [vid]

one.hostsim.fail(hid, "power cut")
wait("VM UNKNOWN", lambda: one.vm.info(vid).LCM_STATE == 16)
assert one.host.info(hid).STATE == 3
one.hostsim.recover(hid)
vm = wait("VM POWEROFF", lambda: (lambda v: v if v.STATE == 8 else None)(one.vm.info(vid)))
assert vm.HISTORY_RECORDS.HISTORY[-1].ACTION == 44, vm.HISTORY_RECORDS.HISTORY[-1].ACTION

pool = one.vmpool.info(-2, -1, -1, -1)
assert [v.ID for v in pool.VM] == [vid], [v.ID for v in pool.VM]
assert [h.ID for h in one.hostpool.info().HOST] == [hid]

iid = one.image.allocate("NAME = py-disk\nTYPE = DATABLOCK\nSIZE = 64\n", 1, False)
image = wait("image READY", lambda: (lambda i: i if i.STATE == 1 else None)(one.image.info(iid)))
assert image.NAME == "py-disk" and image.SIZE == 64 and image.DATASTORE_ID == 1
assert [i.ID for i in one.imagepool.info(-2, -1, -1).IMAGE] == [iid]

try:
    one.vm.action("stop", vid)
    raise AssertionError("a POWEROFF VM was stopped")
except pyone.OneActionException as e:
    assert "This action is not available for state POWEROFF" in str(e), e
try:
    one.host.info(hid + 1000)
    raise AssertionError("a missing host was found")
except pyone.OneNoExistsException as e:
    assert str(e) == "[one.host.info] Error getting host [%d]." % (hid + 1000), e

print("cloud_pyone: ok")
