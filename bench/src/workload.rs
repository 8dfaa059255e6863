//! The fixed workloads: events as oned writes them to the driver, the hooks they trigger, and
//! how a result names the event it came from.

use std::time::{SystemTime, UNIX_EPOCH};

use one_proto::encoding::{b64_decode_strict, b64_encode};
use one_proto::event::{ApiEvent, HookMessage, ObjectKind, StateEvent};
use one_proto::hook_log::ExecutionResult;
use one_proto::mad::oned_execute_line;

/// A running VM's body as oned sends it in STATE events (about 1.5 KB): template with a disk
/// and a NIC, one history record.
pub fn vm_body(id: i64) -> String {
    format!(
        "<VM><ID>{id}</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>\
<NAME>web-{id}</NAME><PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A>\
<GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M>\
<OTHER_A>0</OTHER_A></PERMISSIONS><LAST_POLL>0</LAST_POLL><STATE>3</STATE><LCM_STATE>3</LCM_STATE>\
<PREV_STATE>3</PREV_STATE><PREV_LCM_STATE>2</PREV_LCM_STATE><RESCHED>0</RESCHED><STIME>1700000000</STIME>\
<ETIME>0</ETIME><DEPLOY_ID>one-{id}</DEPLOY_ID><MONITORING/><SCHED_ACTIONS/><TEMPLATE>\
<AUTOMATIC_REQUIREMENTS><![CDATA[!(PUBLIC_CLOUD = YES) & !(PIN_POLICY = PINNED)]]></AUTOMATIC_REQUIREMENTS>\
<CPU><![CDATA[1]]></CPU><MEMORY><![CDATA[1024]]></MEMORY><VCPU><![CDATA[2]]></VCPU>\
<DISK><DATASTORE><![CDATA[default]]></DATASTORE><DATASTORE_ID><![CDATA[1]]></DATASTORE_ID>\
<DISK_ID><![CDATA[0]]></DISK_ID><IMAGE><![CDATA[ubuntu-22.04]]></IMAGE><IMAGE_ID><![CDATA[3]]></IMAGE_ID>\
<SIZE><![CDATA[10240]]></SIZE><TARGET><![CDATA[vda]]></TARGET><TYPE><![CDATA[FILE]]></TYPE></DISK>\
<NIC><BRIDGE><![CDATA[br0]]></BRIDGE><IP><![CDATA[10.0.{a}.{b}]]></IP><MAC><![CDATA[02:00:0a:00:{a:02x}:{b:02x}]]></MAC>\
<NETWORK><![CDATA[private]]></NETWORK><NETWORK_ID><![CDATA[0]]></NETWORK_ID><NIC_ID><![CDATA[0]]></NIC_ID></NIC>\
<VMID><![CDATA[{id}]]></VMID></TEMPLATE><USER_TEMPLATE><AUTOSTART><![CDATA[YES]]></AUTOSTART>\
<LOGO><![CDATA[images/logos/ubuntu.png]]></LOGO></USER_TEMPLATE><HISTORY_RECORDS><HISTORY><OID>{id}</OID>\
<SEQ>0</SEQ><HOSTNAME>node1</HOSTNAME><HID>0</HID><CID>0</CID><STIME>1700000000</STIME><ETIME>0</ETIME>\
<VM_MAD><![CDATA[kvm]]></VM_MAD><TM_MAD><![CDATA[ssh]]></TM_MAD><DS_ID>0</DS_ID><ACTION>0</ACTION>\
</HISTORY></HISTORY_RECORDS></VM>",
        a = (id / 256) % 256,
        b = id % 256,
    )
}

/// `EXECUTE  -1 <b64>` of a VM state change, with LF.
pub fn vm_state_line(id: i64, state: &str, lcm: &str) -> String {
    let msg = HookMessage::State(StateEvent {
        object: ObjectKind::Vm,
        state: state.into(),
        lcm_state: Some(lcm.into()),
        resource_id: id,
        service_id: None,
        remote_host: Some("node1".into()),
        body: vm_body(id),
    });
    let mut line = oned_execute_line(&b64_encode(msg.to_xml().as_bytes()));
    line.push('\n');
    line
}

/// `EXECUTE  -1 <b64>` of a successful `one.vm.allocate` call, with LF.
pub fn vm_allocate_line(id: i64) -> String {
    let template = "NAME = \"web\"\nCPU = 1\nVCPU = 2\nMEMORY = 1024\n\
                    DISK = [ IMAGE = \"ubuntu-22.04\" ]\nNIC = [ NETWORK = \"private\" ]\n\
                    GRAPHICS = [ TYPE = \"VNC\", LISTEN = \"0.0.0.0\" ]\n";
    let api = ApiEvent::success(
        "one.vm.allocate",
        vec!["oneadmin:secret".into(), template.into(), "0".into()],
        id.to_string(),
        "",
    );
    let mut line = oned_execute_line(&b64_encode(HookMessage::Api(api).to_xml().as_bytes()));
    line.push('\n');
    line
}

/// State hook template: `command` on VM `state`/`lcm`, with the VM body and the word `bench`
/// as its arguments. Two arguments, not one: given exactly one, coreutils' `true` loads the
/// locale to look for `--help`/`--version` (about 0.35 ms of CPU here), work that the ceiling's
/// argument-less `/bin/true` never does; with two it exits at once, like the ceiling's.
pub fn vm_hook(name: &str, command: &str, state: &str, lcm: &str) -> String {
    format!(
        "NAME = \"{name}\"\nTYPE = state\nON = CUSTOM\nRESOURCE = VM\nSTATE = {state}\n\
         LCM_STATE = {lcm}\nCOMMAND = \"{command}\"\nARGUMENTS = \"$TEMPLATE bench\"\n"
    )
}

/// The VM id named by a result's `$TEMPLATE` argument.
pub fn vm_id_of(arguments: &str) -> Option<i64> {
    let b64 = arguments.split(' ').next()?;
    let xml = b64_decode_strict(b64).ok()?;
    let xml = String::from_utf8(xml).ok()?;
    xml.strip_prefix("<VM><ID>")?
        .split('<')
        .next()?
        .parse()
        .ok()
}

/// The start time a stamp hook printed, in nanoseconds since the epoch.
pub fn stamp_of(stdout: &[u8]) -> Option<i128> {
    String::from_utf8_lossy(stdout).trim().parse().ok()
}

/// Nanoseconds since the epoch.
pub fn wall_ns(t: SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// A driver result line `EXECUTE SUCCESS|FAILURE <hook_id> <rc> <b64 body>`, read.
pub struct ResultLine {
    pub hook_id: i64,
    pub rc: i64,
    pub result: ExecutionResult,
}

pub fn parse_result_line(line: &str) -> Option<ResultLine> {
    let mut words = line.split(' ');
    if words.next()? != "EXECUTE" {
        return None;
    }
    let _status = words.next()?;
    let hook_id = words.next()?.parse().ok()?;
    let rc = words.next()?.parse().ok()?;
    let body = b64_decode_strict(words.next()?).ok()?;
    let result = ExecutionResult::parse(&String::from_utf8(body).ok()?).ok()?;
    Some(ResultLine {
        hook_id,
        rc,
        result,
    })
}
