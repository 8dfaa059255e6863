//! The hooks the HEM knows, indexed by the event key they match (reference §5.4), so matching
//! an event is one hash lookup whatever the number of hooks.

use std::collections::HashMap;
use std::sync::Arc;

use one_proto::hook::{Hook, HookType};
use one_proto::keys::hook_key;

/// The parts of a hook the HEM needs to run it. Kept small so that tens of thousands of hooks
/// fit in a few megabytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookSpec {
    pub id: i64,
    pub kind: HookType,
    /// The lookup key `one_proto::keys::hook_key` gives: CALL, or `RESOURCE/STATE/LCM_STATE`.
    pub key: String,
    pub command: Option<String>,
    /// TEMPLATE/ARGUMENTS, `""` when missing.
    pub arguments: String,
    /// ARGUMENTS_STDIN is `yes` or `true` (any case).
    pub arguments_stdin: bool,
    /// TIMEOUT in seconds, only when > 0.
    pub timeout_secs: Option<u64>,
    /// REMOTE is `yes` (any case).
    pub remote: bool,
}

impl HookSpec {
    /// The parts of a stored hook the HEM uses; `Err` says why the hook cannot be matched or
    /// run. A TIMEOUT or REMOTE the front-end would now refuse keeps the hook from loading:
    /// read leniently, `-5` would mean no timeout and `REMOTE=yse` a local run.
    pub fn from_hook(hook: &Hook) -> Result<HookSpec, String> {
        let Some((_, key)) = hook_key(hook) else {
            return Err(format!("API hook {} has no CALL", hook.id));
        };
        hook.check_run_settings()
            .map_err(|e| format!("Hook {}: {e}", hook.id))?;
        Ok(HookSpec {
            id: hook.id,
            kind: hook.hook_type,
            key,
            command: hook
                .command()
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty()),
            arguments: hook.arguments().to_string(),
            arguments_stdin: hook.arguments_stdin(),
            timeout_secs: hook.timeout_secs(),
            remote: hook.remote(),
        })
    }
}

/// Hooks by id and by (kind, key).
#[derive(Debug, Default)]
pub struct HookMap {
    hooks: HashMap<i64, Arc<HookSpec>>,
    api: HashMap<String, Vec<i64>>,
    state: HashMap<String, Vec<i64>>,
}

impl HookMap {
    pub fn new() -> HookMap {
        HookMap::default()
    }

    /// A map holding exactly `specs` (a later duplicate id replaces an earlier one).
    pub fn from_specs(specs: impl IntoIterator<Item = HookSpec>) -> HookMap {
        let mut map = HookMap::new();
        for spec in specs {
            map.insert(spec);
        }
        map
    }

    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    pub fn get(&self, id: i64) -> Option<&Arc<HookSpec>> {
        self.hooks.get(&id)
    }

    /// Adds a hook or replaces the one with the same id (whose key may have changed).
    pub fn insert(&mut self, spec: HookSpec) {
        self.remove(spec.id);
        let ids = self
            .index_mut(spec.kind)
            .entry(spec.key.clone())
            .or_default();
        // Several hooks on one key all run, in id order.
        let pos = ids.partition_point(|&i| i < spec.id);
        ids.insert(pos, spec.id);
        self.hooks.insert(spec.id, Arc::new(spec));
    }

    /// Removes a hook; returns whether it was known.
    pub fn remove(&mut self, id: i64) -> bool {
        let Some(old) = self.hooks.remove(&id) else {
            return false;
        };
        let index = self.index_mut(old.kind);
        if let Some(ids) = index.get_mut(&old.key) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                index.remove(&old.key);
            }
        }
        true
    }

    /// The ids of the hooks matching an event key, in id order.
    pub fn lookup(&self, kind: HookType, key: &str) -> &[i64] {
        let index = match kind {
            HookType::Api => &self.api,
            HookType::State => &self.state,
        };
        index.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether two maps hold different hooks.
    pub fn differs_from(&self, other: &HookMap) -> bool {
        self.hooks.len() != other.hooks.len()
            || self
                .hooks
                .iter()
                .any(|(id, spec)| other.hooks.get(id).is_none_or(|o| o != spec))
    }

    fn index_mut(&mut self, kind: HookType) -> &mut HashMap<String, Vec<i64>> {
        match kind {
            HookType::Api => &mut self.api,
            HookType::State => &mut self.state,
        }
    }
}
