//! What the autostart decision reads from the VM and HOST documents: the AUTOSTART attribute,
//! the VM's state, and its last history record (where it last ran, and what last acted on it).

use std::fmt;

use one_proto::states::{LcmState, VmAction, VmState};

use crate::xml_tree::{self, Element, XmlError};

/// Why a document does not describe a VM or a host.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("cannot read the {what} document: {source}")]
    Xml {
        what: &'static str,
        #[source]
        source: XmlError,
    },
    #[error("the document's root is <{found}>, expected <{expected}>")]
    Root {
        expected: &'static str,
        found: String,
    },
    #[error("{what} {field} is missing or not a number: {value:?}")]
    Field {
        what: &'static str,
        field: &'static str,
        value: Option<String>,
    },
    #[error("VM {id}: unknown {field} number {number}")]
    UnknownState {
        id: i64,
        field: &'static str,
        number: u32,
    },
}

/// The VM's USER_TEMPLATE/AUTOSTART, read case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Autostart {
    /// Not set, or a value that is neither yes/true nor always (kept for the log line).
    Off(Option<String>),
    /// `yes` or `true`: restart the VM if it was running when its host went down.
    Yes,
    /// `always`: restart the VM whatever its state before the host went down.
    Always,
}

impl Autostart {
    pub fn parse(value: Option<&str>) -> Autostart {
        match value.map(str::trim) {
            None | Some("") => Autostart::Off(None),
            Some(v) if v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true") => {
                Autostart::Yes
            }
            Some(v) if v.eq_ignore_ascii_case("always") => Autostart::Always,
            Some(v) => Autostart::Off(Some(v.to_string())),
        }
    }
}

impl fmt::Display for Autostart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Autostart::Off(None) => f.write_str("AUTOSTART not set"),
            Autostart::Off(Some(v)) => write!(f, "AUTOSTART={v}"),
            Autostart::Yes => f.write_str("AUTOSTART=yes"),
            Autostart::Always => f.write_str("AUTOSTART=always"),
        }
    }
}

/// History record ACTION numbers the decision looks at ([`VmAction`], oned's `VMActions`).
pub mod action {
    use one_proto::states::VmAction;

    pub const NONE: i64 = VmAction::None as i64;
    pub const LIVE_MIGRATE: i64 = VmAction::LiveMigrate as i64;
    pub const UNDEPLOY: i64 = VmAction::Undeploy as i64;
    pub const UNDEPLOY_HARD: i64 = VmAction::UndeployHard as i64;
    pub const STOP: i64 = VmAction::Stop as i64;
    pub const SUSPEND: i64 = VmAction::Suspend as i64;
    pub const RESUME: i64 = VmAction::Resume as i64;
    pub const POWEROFF: i64 = VmAction::Poweroff as i64;
    pub const POWEROFF_HARD: i64 = VmAction::PoweroffHard as i64;
    pub const TERMINATE: i64 = VmAction::Terminate as i64;
    pub const TERMINATE_HARD: i64 = VmAction::TerminateHard as i64;
    /// Set by the monitor, e.g. when it finds a VM powered off after its host rebooted.
    pub const MONITOR: i64 = VmAction::Monitor as i64;
}

/// The name oned gives a history ACTION number, or the number itself when unknown.
pub fn action_name(number: i64) -> String {
    u32::try_from(number)
        .ok()
        .and_then(VmAction::from_number)
        .map_or_else(|| number.to_string(), |a| a.name().to_string())
}

/// The VM's last history record: where it last ran and the last action on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastHistory {
    pub hid: i64,
    pub hostname: String,
    pub action: i64,
}

/// Everything the decision needs to know about one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmFacts {
    pub id: i64,
    pub name: String,
    pub state: VmState,
    pub lcm: LcmState,
    pub autostart: Autostart,
    pub last_history: Option<LastHistory>,
}

impl VmFacts {
    /// Reads a `<VM>` document (`one.vm.info`, or the body of a VM state event).
    pub fn from_xml(xml: &str) -> Result<VmFacts, FactsError> {
        let doc = xml_tree::parse(xml).map_err(|source| FactsError::Xml { what: "VM", source })?;
        VmFacts::from_element(&doc)
    }

    pub fn from_element(doc: &Element) -> Result<VmFacts, FactsError> {
        if doc.name != "VM" {
            return Err(FactsError::Root {
                expected: "VM",
                found: doc.name.clone(),
            });
        }
        let id = number(doc, "VM", "ID")?;
        let state_n = state_number(doc, "STATE")?;
        let lcm_n = state_number(doc, "LCM_STATE")?;
        let state = VmState::from_number(state_n).ok_or(FactsError::UnknownState {
            id,
            field: "STATE",
            number: state_n,
        })?;
        let lcm = LcmState::from_number(lcm_n).ok_or(FactsError::UnknownState {
            id,
            field: "LCM_STATE",
            number: lcm_n,
        })?;
        let last_history = match doc
            .child("HISTORY_RECORDS")
            .and_then(|h| h.children_named("HISTORY").last())
        {
            Some(h) => Some(LastHistory {
                hid: number(h, "VM history", "HID")?,
                hostname: h.text_at("HOSTNAME").unwrap_or("").to_string(),
                action: number(h, "VM history", "ACTION")?,
            }),
            None => None,
        };
        Ok(VmFacts {
            id,
            name: doc.text_at("NAME").unwrap_or("").to_string(),
            state,
            lcm,
            autostart: Autostart::parse(doc.text_at("USER_TEMPLATE/AUTOSTART")),
            last_history,
        })
    }

    /// `STATE` for inactive VMs, `LCM_STATE` for ACTIVE ones, as OpenNebula shows a VM.
    pub fn state_str(&self) -> &'static str {
        if self.state == VmState::Active {
            self.lcm.name()
        } else {
            self.state.name()
        }
    }

    /// The last history ACTION, if the VM has a history.
    pub fn last_action(&self) -> Option<i64> {
        self.last_history.as_ref().map(|h| h.action)
    }
}

/// The host of a HOST state event: which VMs it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    pub id: i64,
    pub name: String,
    /// `HOST/VMS/ID`, in document order.
    pub vm_ids: Vec<i64>,
}

impl HostFacts {
    pub fn from_xml(xml: &str) -> Result<HostFacts, FactsError> {
        let doc = xml_tree::parse(xml).map_err(|source| FactsError::Xml {
            what: "HOST",
            source,
        })?;
        if doc.name != "HOST" {
            return Err(FactsError::Root {
                expected: "HOST",
                found: doc.name,
            });
        }
        let vm_ids = match doc.child("VMS") {
            Some(vms) => vms
                .children_named("ID")
                .map(|e| {
                    e.text.trim().parse().map_err(|_| FactsError::Field {
                        what: "HOST",
                        field: "VMS/ID",
                        value: Some(e.text.clone()),
                    })
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        Ok(HostFacts {
            id: number(&doc, "HOST", "ID")?,
            name: doc.text_at("NAME").unwrap_or("").to_string(),
            vm_ids,
        })
    }
}

fn number(e: &Element, what: &'static str, field: &'static str) -> Result<i64, FactsError> {
    let text = e.text_at(field);
    text.and_then(|t| t.parse().ok())
        .ok_or_else(|| FactsError::Field {
            what,
            field,
            value: text.map(str::to_string),
        })
}

fn state_number(e: &Element, field: &'static str) -> Result<u32, FactsError> {
    let text = e.text_at(field);
    text.and_then(|t| t.parse().ok())
        .ok_or_else(|| FactsError::Field {
            what: "VM",
            field,
            value: text.map(str::to_string),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    #[test]
    fn autostart_values_are_case_insensitive() {
        assert_eq!(Autostart::parse(Some("YES")), Autostart::Yes);
        assert_eq!(Autostart::parse(Some(" true ")), Autostart::Yes);
        assert_eq!(Autostart::parse(Some("Always")), Autostart::Always);
        assert_eq!(Autostart::parse(None), Autostart::Off(None));
        assert_eq!(Autostart::parse(Some("")), Autostart::Off(None));
        assert_eq!(
            Autostart::parse(Some("no")),
            Autostart::Off(Some("no".into()))
        );
        assert_eq!(Autostart::parse(Some("no")).to_string(), "AUTOSTART=no");
    }

    #[test]
    fn reads_a_vm_powered_off_by_the_monitor() {
        let vm = VmFacts::from_xml(&samples::vm(0, "web", 8, 0, Some("yes"), &[(0, 44)])).unwrap();
        assert_eq!(vm.id, 0);
        assert_eq!(vm.name, "web");
        assert_eq!(vm.state, VmState::Poweroff);
        assert_eq!(vm.lcm, LcmState::LcmInit);
        assert_eq!(vm.state_str(), "POWEROFF");
        assert_eq!(vm.autostart, Autostart::Yes);
        assert_eq!(
            vm.last_history,
            Some(LastHistory {
                hid: 0,
                hostname: "node0".into(),
                action: action::MONITOR
            })
        );
    }

    #[test]
    fn the_last_history_record_counts() {
        let vm = VmFacts::from_xml(&samples::vm(3, "db", 3, 16, None, &[(1, 0), (2, 11)])).unwrap();
        assert_eq!(vm.state_str(), "UNKNOWN");
        assert_eq!(vm.autostart, Autostart::Off(None));
        assert_eq!(vm.last_history.as_ref().map(|h| h.hid), Some(2));
        assert_eq!(vm.last_action(), Some(action::RESUME));
        let none = VmFacts::from_xml(&samples::vm(4, "new", 1, 0, None, &[])).unwrap();
        assert_eq!(none.last_history, None);
    }

    #[test]
    fn bad_vm_documents_are_errors() {
        assert!(matches!(
            VmFacts::from_xml("<HOST><ID>1</ID></HOST>"),
            Err(FactsError::Root { .. })
        ));
        assert!(matches!(
            VmFacts::from_xml("<VM><ID>x</ID></VM>"),
            Err(FactsError::Field { field: "ID", .. })
        ));
        assert!(matches!(
            VmFacts::from_xml("<VM><ID>1</ID><STATE>7</STATE><LCM_STATE>0</LCM_STATE></VM>"),
            Err(FactsError::UnknownState {
                field: "STATE",
                number: 7,
                ..
            })
        ));
        assert!(matches!(
            VmFacts::from_xml("<VM><ID>1"),
            Err(FactsError::Xml { .. })
        ));
        let bad_history = "<VM><ID>1</ID><STATE>8</STATE><LCM_STATE>0</LCM_STATE>\
                           <HISTORY_RECORDS><HISTORY><HID>0</HID></HISTORY></HISTORY_RECORDS></VM>";
        assert!(matches!(
            VmFacts::from_xml(bad_history),
            Err(FactsError::Field {
                field: "ACTION",
                ..
            })
        ));
    }

    #[test]
    fn reads_the_host_and_its_vms() {
        let host = HostFacts::from_xml(&samples::host(0, "node0", &[0, 2, 5])).unwrap();
        assert_eq!(host.id, 0);
        assert_eq!(host.name, "node0");
        assert_eq!(host.vm_ids, vec![0, 2, 5]);
        let empty = HostFacts::from_xml(&samples::host(1, "node1", &[])).unwrap();
        assert!(empty.vm_ids.is_empty());
        assert!(matches!(
            HostFacts::from_xml("<HOST><ID>1</ID><VMS><ID>z</ID></VMS></HOST>"),
            Err(FactsError::Field {
                field: "VMS/ID",
                ..
            })
        ));
        assert!(matches!(
            HostFacts::from_xml("<VM/>"),
            Err(FactsError::Root { .. })
        ));
    }

    #[test]
    fn action_names() {
        assert_eq!(action_name(0), "none");
        assert_eq!(action_name(44), "monitor");
        assert_eq!(action_name(19), "poweroff");
        assert_eq!(action_name(57), "sg-detach");
        assert_eq!(action_name(99), "99");
        assert_eq!(action_name(-1), "-1");
    }
}
