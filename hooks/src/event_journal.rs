//! Reading back the events the driver journaled, through its replay endpoint
//! (ARCHITECTURE.md "Replay"), and one readable line per event.
//!
//! The autostart demo uses this to show what happened around a host reboot: the host and VM
//! state changes, and the `one.vm.action` calls the hooks made.

use std::time::Duration;

use one_proto::event::{HookMessage, ParamDir};
use one_proto::keys::parse_key;
use one_proto::replay::{ReplayError, ReplayHeader, ReplayRequest};

use crate::xml_tree;

/// Events asked for per request.
const BATCH: u32 = 500;
/// Requests per replay at most, so a journal that keeps growing cannot keep us forever.
const MAX_REQUESTS: usize = 1000;

/// Why the journal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("replay endpoint {endpoint}: {source}")]
    Zmq {
        endpoint: String,
        #[source]
        source: zmq::Error,
    },
    #[error("replay endpoint {endpoint}: no reply within {timeout:?}")]
    Timeout { endpoint: String, timeout: Duration },
    #[error("replay endpoint {endpoint}: {source}")]
    Replay {
        endpoint: String,
        #[source]
        source: ReplayError,
    },
    #[error("replay endpoint {endpoint}: {message}")]
    Protocol { endpoint: String, message: String },
}

/// One journaled event.
#[derive(Debug, Clone)]
pub struct JournalEvent {
    pub seq: u64,
    /// The event's document, or why it could not be read.
    pub message: Result<HookMessage, String>,
}

/// A REQ connection to a driver's replay endpoint.
pub struct Journal {
    socket: zmq::Socket,
    endpoint: String,
    timeout: Duration,
}

impl Journal {
    /// Connects to `endpoint`, with CURVE when `curve` holds keys (a driver with CURVE on
    /// answers nobody else).
    pub fn connect(
        endpoint: &str,
        timeout: Duration,
        curve: Option<&one_curve::ClientKeys>,
    ) -> Result<Journal, JournalError> {
        let zmq_err = |source| JournalError::Zmq {
            endpoint: endpoint.to_string(),
            source,
        };
        let ctx = zmq::Context::new();
        let socket = ctx.socket(zmq::REQ).map_err(zmq_err)?;
        one_curve::apply_client(curve, &socket).map_err(zmq_err)?;
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        socket.set_linger(0).map_err(zmq_err)?;
        socket.set_rcvtimeo(ms).map_err(zmq_err)?;
        socket.set_sndtimeo(ms).map_err(zmq_err)?;
        socket.connect(endpoint).map_err(zmq_err)?;
        Ok(Journal {
            socket,
            endpoint: endpoint.to_string(),
            timeout,
        })
    }

    fn request(&self, req: ReplayRequest) -> Result<(ReplayHeader, Vec<Vec<u8>>), JournalError> {
        let zmq_err = |source: zmq::Error| {
            if source == zmq::Error::EAGAIN {
                JournalError::Timeout {
                    endpoint: self.endpoint.clone(),
                    timeout: self.timeout,
                }
            } else {
                JournalError::Zmq {
                    endpoint: self.endpoint.clone(),
                    source,
                }
            }
        };
        self.socket
            .send(req.to_frame().as_bytes(), 0)
            .map_err(zmq_err)?;
        let mut frames = self.socket.recv_multipart(0).map_err(zmq_err)?.into_iter();
        let first = frames.next().ok_or_else(|| JournalError::Protocol {
            endpoint: self.endpoint.clone(),
            message: "empty reply".to_string(),
        })?;
        let header = ReplayHeader::parse(&first).map_err(|source| JournalError::Replay {
            endpoint: self.endpoint.clone(),
            source,
        })?;
        Ok((header, frames.collect()))
    }

    /// The newest sequence number assigned (0 before the first event).
    pub fn head(&self) -> Result<u64, JournalError> {
        Ok(self.request(ReplayRequest { after: 0, max: 0 })?.0.head)
    }

    /// Every retained event after `after`, up to the head at the time of the call, in order.
    pub fn events_after(&self, after: u64) -> Result<Vec<JournalEvent>, JournalError> {
        let mut out: Vec<JournalEvent> = Vec::new();
        let mut after = after;
        let mut head = None;
        for _ in 0..MAX_REQUESTS {
            let (header, frames) = self.request(ReplayRequest { after, max: BATCH })?;
            let target = *head.get_or_insert(header.head);
            if frames.len() % 2 != 0 {
                return Err(JournalError::Protocol {
                    endpoint: self.endpoint.clone(),
                    message: format!("{} frames after the header, not pairs", frames.len()),
                });
            }
            let before = out.len();
            for pair in frames.chunks(2) {
                let key = String::from_utf8_lossy(&pair[0]);
                let Some(seq) = parse_key(&key).seq else {
                    return Err(JournalError::Protocol {
                        endpoint: self.endpoint.clone(),
                        message: format!("key without a sequence token: {key}"),
                    });
                };
                // An event published under several keys comes once per key; keep the first.
                if out.last().is_some_and(|e| e.seq == seq) {
                    continue;
                }
                after = after.max(seq);
                out.push(JournalEvent {
                    seq,
                    message: HookMessage::from_content(&pair[1]).map_err(|e| e.to_string()),
                });
            }
            if out.len() == before || after >= target {
                break;
            }
        }
        Ok(out)
    }
}

/// One line for an event: `HOST 0 (node1) ERROR`, `VM 3 (web) UNKNOWN on node1`,
/// `API one.vm.action resume 3 ok`.
pub fn describe(message: &HookMessage) -> String {
    match message {
        HookMessage::Api(api) => {
            let args: Vec<&str> = api
                .params
                .iter()
                .filter(|p| p.dir == ParamDir::In && p.position > 1)
                .map(|p| p.value.as_str())
                .collect();
            let result = if api.success { "ok" } else { "failed" };
            format!("API  {} {} -> {result}", api.call, args.join(" "))
        }
        HookMessage::State(state) => {
            let name = xml_tree::parse(&state.body)
                .ok()
                .and_then(|doc| doc.text_at("NAME").map(str::to_string))
                .unwrap_or_default();
            let shown = match (state.state.as_str(), state.lcm_state.as_deref()) {
                ("ACTIVE", Some(lcm)) => lcm.to_string(),
                (s, _) => s.to_string(),
            };
            let object = format!("{} {} ({name})", state.object.name(), state.resource_id);
            match (&state.object, &state.remote_host) {
                (one_proto::states::ObjectKind::Vm, Some(host)) if !host.is_empty() => {
                    format!("{object:<16} {shown} on {host}")
                }
                _ => format!("{object:<16} {shown}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use one_proto::event::{ApiEvent, StateEvent};
    use one_proto::states::ObjectKind;

    #[test]
    fn describes_state_and_api_events() {
        let vm = HookMessage::State(StateEvent {
            object: ObjectKind::Vm,
            state: "ACTIVE".into(),
            lcm_state: Some("UNKNOWN".into()),
            resource_id: 3,
            service_id: None,
            remote_host: Some("node1".into()),
            body: "<VM><ID>3</ID><NAME>web</NAME></VM>".into(),
        });
        assert_eq!(describe(&vm), "VM 3 (web)       UNKNOWN on node1");
        let host = HookMessage::State(StateEvent {
            object: ObjectKind::Host,
            state: "MONITORED".into(),
            lcm_state: None,
            resource_id: 0,
            service_id: None,
            remote_host: Some("node1".into()),
            body: "<HOST><ID>0</ID><NAME>node1</NAME></HOST>".into(),
        });
        assert_eq!(describe(&host), "HOST 0 (node1)   MONITORED");
        let poweroff = HookMessage::State(StateEvent {
            object: ObjectKind::Vm,
            state: "POWEROFF".into(),
            lcm_state: Some("LCM_INIT".into()),
            resource_id: 12,
            service_id: None,
            remote_host: None,
            body: "not xml".into(),
        });
        assert_eq!(describe(&poweroff), "VM 12 ()         POWEROFF");
        let api = HookMessage::Api(ApiEvent::success(
            "one.vm.action",
            vec!["oneadmin:pw".into(), "resume".into(), "3".into()],
            "3",
            "",
        ));
        assert_eq!(describe(&api), "API  one.vm.action resume 3 -> ok");
    }

    #[test]
    fn an_unreachable_endpoint_times_out() {
        // Nothing listens on this loopback port: the request cannot be answered.
        let journal =
            Journal::connect("tcp://127.0.0.1:9", Duration::from_millis(200), None).unwrap();
        assert!(matches!(journal.head(), Err(JournalError::Timeout { .. })));
    }
}
