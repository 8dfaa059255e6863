//! Sample VM and HOST documents for unit tests, in the layout oned-lite's `one.vm.info` and
//! HOST state events use (captured from a running front-end, trimmed of unread elements).

/// A `<VM>` with the given STATE and LCM_STATE numbers, AUTOSTART value and history records
/// `(hid, action)` on hosts named `node<hid>`.
pub fn vm(
    id: i64,
    name: &str,
    state: u32,
    lcm: u32,
    autostart: Option<&str>,
    history: &[(i64, i64)],
) -> String {
    let user = match autostart {
        Some(v) => format!("<USER_TEMPLATE><AUTOSTART><![CDATA[{v}]]></AUTOSTART></USER_TEMPLATE>"),
        None => "<USER_TEMPLATE></USER_TEMPLATE>".to_string(),
    };
    let records = if history.is_empty() {
        "<HISTORY_RECORDS/>".to_string()
    } else {
        let mut out = String::from("<HISTORY_RECORDS>");
        for (seq, (hid, action)) in history.iter().enumerate() {
            out.push_str(&format!(
                "<HISTORY><OID>{id}</OID><SEQ>{seq}</SEQ><HOSTNAME>node{hid}</HOSTNAME><HID>{hid}</HID>\
                 <CID>0</CID><STIME>1795632913</STIME><ETIME>0</ETIME><VM_MAD>kvm</VM_MAD>\
                 <TM_MAD>ssh</TM_MAD><DS_ID>0</DS_ID><PLAN_ID>-1</PLAN_ID><ACTION_ID>-1</ACTION_ID>\
                 <ACTION>{action}</ACTION><UID>-1</UID><GID>-1</GID><REQUEST_ID>-1</REQUEST_ID></HISTORY>"
            ));
        }
        out.push_str("</HISTORY_RECORDS>");
        out
    };
    format!(
        "<VM><ID>{id}</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>\
         <NAME>{name}</NAME><LAST_POLL>0</LAST_POLL><STATE>{state}</STATE><LCM_STATE>{lcm}</LCM_STATE>\
         <PREV_STATE>3</PREV_STATE><PREV_LCM_STATE>3</PREV_LCM_STATE><RESCHED>0</RESCHED>\
         <DEPLOY_ID>one-{id}</DEPLOY_ID><MONITORING/><SCHED_ACTIONS></SCHED_ACTIONS>\
         <TEMPLATE><CPU><![CDATA[1]]></CPU><MEMORY><![CDATA[128]]></MEMORY></TEMPLATE>\
         {user}{records}<BACKUPS><BACKUP_CONFIG/><BACKUP_IDS></BACKUP_IDS></BACKUPS></VM>"
    )
}

/// A MONITORED `<HOST>` holding the given VMs.
pub fn host(id: i64, name: &str, vms: &[i64]) -> String {
    let ids: String = vms.iter().map(|v| format!("<ID>{v}</ID>")).collect();
    format!(
        "<HOST><ID>{id}</ID><NAME>{name}</NAME><STATE>2</STATE><PREV_STATE>3</PREV_STATE>\
         <IM_MAD>kvm</IM_MAD><VM_MAD>kvm</VM_MAD><CLUSTER_ID>0</CLUSTER_ID><CLUSTER>default</CLUSTER>\
         <HOST_SHARE><RUNNING_VMS>{n}</RUNNING_VMS></HOST_SHARE><VMS>{ids}</VMS><TEMPLATE></TEMPLATE>\
         <MONITORING/></HOST>",
        n = vms.len()
    )
}
