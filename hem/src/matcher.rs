//! From one event to the executions it triggers: the hook map, kept current by the hook events
//! themselves (reference §8.6) and by the periodic resync, and the planning of each execution.
//!
//! The event source decides the order of events and the execution uids; this module only knows
//! one event at a time. The single-HEM reader (`ingest`) keeps one matcher; in the distributed
//! mode each partition keeps its own, so that every partition applies a hook change at the
//! change's place in its own event order.

use std::time::Instant;

use one_proto::encoding::b64_decode_lenient;
use one_proto::event::{ApiEvent, HookMessage, ParamDir};
use one_proto::hook::{Hook, HookType};
use one_proto::keys::{ParsedKey, RELOAD_CALLS};
use one_proto::retry::RetryMessage;

use crate::execution::{Execution, HookPaths, Plan};
use crate::hook_map::{HookMap, HookSpec};
use crate::journal::BusMessage;

/// Where the HEM gets hook definitions from (the front-end's XML-RPC API).
pub trait HookSource: Send {
    /// Every hook (`one.hookpool.info`).
    fn pool(&self) -> Result<Vec<HookSpec>, String>;
    /// One hook (`one.hook.info`); `Ok(None)` when it exists but cannot be used (unknown type).
    fn hook(&self, id: i64) -> Result<Option<HookSpec>, String>;
}

/// A full hook list fetched by the periodic resync, with the time its fetch started: a matcher
/// that reloaded a hook from an event after that time has newer knowledge and discards it.
#[derive(Clone)]
pub struct Snapshot {
    pub fetched_at: Instant,
    pub hooks: Vec<HookSpec>,
}

/// Gives each planned execution its uid.
pub trait Uids {
    fn uid(&mut self, seq: u64, hook_id: i64) -> String;
}

/// Which of an event's effects to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// Plan its executions and reload hooks (the normal case).
    All,
    /// Only reload hooks: another partition runs this event's hooks.
    ReloadOnly,
}

/// The hook map of one event reader and the planning of executions.
pub struct Matcher<H: HookSource> {
    hooks: HookMap,
    source: H,
    paths: HookPaths,
    /// When a hook was last reloaded from an event.
    last_reload: Option<Instant>,
    /// Set when a reload could not fetch its hook: the reader asks for an early resync.
    resync_wanted: bool,
}

impl<H: HookSource> Matcher<H> {
    pub fn new(source: H, paths: HookPaths) -> Self {
        Matcher {
            hooks: HookMap::new(),
            source,
            paths,
            last_reload: None,
            resync_wanted: false,
        }
    }

    /// The hook source, for the first load.
    pub fn source(&self) -> &H {
        &self.source
    }

    /// Number of hooks known.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Installs a whole new hook map. The old one may have been large: its memory goes back to
    /// the system.
    pub fn replace(&mut self, hooks: HookMap) {
        self.hooks = hooks;
        crate::memory::release_free_memory();
    }

    /// Applies a resync snapshot unless an event-driven reload happened since its fetch began.
    /// Returns whether the map was replaced.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> bool {
        if self.last_reload.is_some_and(|at| at >= snapshot.fetched_at) {
            tracing::debug!("hook resync discarded: hooks were reloaded while it ran");
            return false;
        }
        let fresh = HookMap::from_specs(snapshot.hooks);
        if fresh.differs_from(&self.hooks) {
            tracing::warn!(
                before = self.hooks.len(),
                after = fresh.len(),
                "hook resync found hooks the events had not updated; map replaced"
            );
        }
        self.replace(fresh);
        true
    }

    /// Whether a reload failed since the last call (the caller then asks for an early resync).
    pub fn take_resync_wanted(&mut self) -> bool {
        std::mem::take(&mut self.resync_wanted)
    }

    /// Whether an event with this key may change hooks (its handling may call the front-end).
    pub fn may_reload(parsed: &ParsedKey<'_>) -> bool {
        parsed.action == "EVENT"
            && parsed.kind.as_deref() == Some("api")
            && parsed
                .key
                .as_deref()
                .is_some_and(|k| RELOAD_CALLS.contains(&k))
    }

    /// Handles one primary event (see [`is_primary`]): appends its executions to `out` and
    /// applies the hook changes it carries, in that order, so that the event's own hooks are
    /// those that existed before it.
    pub fn handle(
        &mut self,
        seq: u64,
        parsed: &ParsedKey<'_>,
        msg: &BusMessage,
        apply: Apply,
        uids: &mut impl Uids,
        out: &mut Vec<Execution>,
    ) {
        tracing::debug!(key = %msg.key, seq, "New event receive");
        match parsed.action {
            "RETRY" if apply == Apply::All => self.retry(seq, msg, uids, out),
            "EVENT" => self.event(seq, parsed, msg, apply, uids, out),
            _ => {}
        }
    }

    fn event(
        &mut self,
        seq: u64,
        parsed: &ParsedKey<'_>,
        msg: &BusMessage,
        apply: Apply,
        uids: &mut impl Uids,
        out: &mut Vec<Execution>,
    ) {
        let kind = parsed.kind.as_deref().and_then(HookType::from_name);
        let (Some(kind), Some(key)) = (kind, parsed.key.as_deref()) else {
            return;
        };
        let ids = match apply {
            Apply::All => self.hooks.lookup(kind, key).to_vec(),
            Apply::ReloadOnly => Vec::new(),
        };
        let reload = kind == HookType::Api && RELOAD_CALLS.contains(&key);
        if ids.is_empty() && !reload {
            return;
        }
        let event = decode_event(&msg.content, seq);
        let event_key = reference_key(&msg.key, parsed).to_string();
        let resource = event
            .as_ref()
            .map(HookMessage::resource)
            .unwrap_or_default();
        for id in ids {
            let Some(hook) = self.hooks.get(id) else {
                continue;
            };
            let plan = Plan::for_event(hook, event.as_ref(), &self.paths);
            out.push(Execution {
                lane: format!("{id}|{resource}"),
                uid: uids.uid(seq, id),
                seq,
                hook_id: id,
                resource: resource.clone(),
                event_key: event_key.clone(),
                plan,
            });
        }
        if reload && let Some(HookMessage::Api(api)) = &event {
            self.reload(api, seq);
        }
    }

    fn retry(
        &mut self,
        seq: u64,
        msg: &BusMessage,
        uids: &mut impl Uids,
        out: &mut Vec<Execution>,
    ) {
        let retry = match RetryMessage::from_content(msg.content.as_bytes()) {
            Ok(r) => r,
            Err(e) => {
                // Without a hook id there is no hook log to write a record to.
                tracing::error!(seq, error = %e, "cannot read a RETRY message; nothing to retry");
                return;
            }
        };
        let hook = self.hooks.get(retry.hook_id).cloned();
        if hook.is_none() {
            tracing::error!(
                hook_id = retry.hook_id,
                seq,
                "RETRY for a hook the HEM does not know; recording a failure"
            );
        }
        let plan = Plan::for_retry(retry.hook_id, hook.as_deref(), &retry, &self.paths);
        let uid = uids.uid(seq, retry.hook_id);
        out.push(Execution {
            lane: uid.clone(),
            uid,
            seq,
            hook_id: retry.hook_id,
            resource: String::new(),
            event_key: "RETRY".to_string(),
            plan,
        });
    }

    /// Reference §8.6, without its crash paths: the hook id comes from the event, a failed
    /// lookup is logged and repaired by the next resync.
    fn reload(&mut self, api: &ApiEvent, seq: u64) {
        if !api.success {
            return;
        }
        let allocate = api.call == "one.hook.allocate";
        let raw = if allocate {
            api.param(ParamDir::Out, 2)
        } else {
            api.param(ParamDir::In, 2)
        };
        let Some(id) = raw.and_then(|v| v.trim().parse::<i64>().ok()) else {
            tracing::warn!(call = %api.call, seq, "hook event without a usable hook id; no reload");
            return;
        };
        self.last_reload = Some(Instant::now());
        if !allocate && self.hooks.remove(id) && api.call == "one.hook.delete" {
            tracing::info!(hook_id = id, seq, "Hook ({id}) removed");
        }
        if api.call == "one.hook.delete" {
            return;
        }
        match self.source.hook(id) {
            Ok(Some(spec)) => {
                self.hooks.insert(spec);
                tracing::info!(hook_id = id, seq, "Hook ({id}) successfully reloaded");
            }
            Ok(None) => {}
            Err(e) => {
                // The allocate event carries the new hook in EXTRA: a front-end that is
                // unreachable, or a hook deleted since (its delete event follows), does not
                // leave the map behind the event stream.
                let from_event = allocate
                    .then(|| Hook::from_xml(&api.extra).ok())
                    .flatten()
                    .filter(|h| h.id == id)
                    .and_then(|h| HookSpec::from_hook(&h).ok());
                match from_event {
                    Some(spec) => {
                        tracing::warn!(hook_id = id, seq, error = %e,
                            "cannot get hook {id}; using the definition carried by its allocate event");
                        self.hooks.insert(spec);
                    }
                    None => {
                        tracing::error!(hook_id = id, seq, error = %e, "Error getting hook {id}.");
                        self.resync_wanted = true;
                    }
                }
            }
        }
    }
}

/// Keys that carry an event for the HEM: API, STATE, RETRY and unknown-type events. The
/// per-object keys (`EVENT VM …`) repeat a STATE event under the same sequence number.
pub fn is_primary(parsed: &ParsedKey<'_>) -> bool {
    match parsed.action {
        "RETRY" => true,
        "EVENT" => matches!(parsed.kind.as_deref(), None | Some("api") | Some("state")),
        _ => false,
    }
}

/// The key as the reference publishes it: without the sequence token `parse_key` found (its
/// last word) and without trailing blanks.
fn reference_key<'a>(key: &'a str, parsed: &ParsedKey<'_>) -> &'a str {
    let key = key.trim_end();
    match parsed.seq {
        Some(_) => key
            .rsplit_once(char::is_whitespace)
            .map_or(key, |(head, _)| head.trim_end()),
        None => key,
    }
}

fn decode_event(content: &str, seq: u64) -> Option<HookMessage> {
    let xml = b64_decode_lenient(content);
    let xml = String::from_utf8_lossy(&xml);
    match HookMessage::parse(&xml) {
        Ok(ev) => Some(ev),
        Err(e) => {
            tracing::warn!(seq, error = %e, "cannot read the event; its hooks run with empty arguments");
            None
        }
    }
}
