//! Validation of `one.hook.allocate` and `one.hook.update` templates and of hook names, in
//! oned's order and with its texts (reference §1, §7.2).

use crate::states::{HostState, ImageState, LcmState, NetState, ObjectKind, VmState};
use crate::template::{AttrValue, Template, trim_value};

use super::calls::is_valid_hook_call;
use super::{CreateError, Hook, HookType, NewHook, UpdateMode, yes, yes_no};

/// The characters oned forbids in object names.
const INVALID_NAME_CHARS: &[char] = &[
    '&', '|', ':', '\\', '"', ';', '/', '\'', '#', '{', '}', '$', '<', '>', '\t', '\n', '\u{0B}',
    '\u{0C}', '\r',
];

/// oned's name check, with the texts `one.hook.rename` returns (§7.2). The name is not
/// trimmed; its length is counted in bytes.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Invalid NAME, it cannot be empty".to_owned());
    }
    if let Some(c) = name.chars().find(|c| INVALID_NAME_CHARS.contains(c)) {
        return Err(format!("Invalid NAME, char '{c}' is not allowed"));
    }
    if name.len() > 128 {
        return Err("Invalid NAME, max length is 128 chars".to_owned());
    }
    Ok(())
}

/// The STATE/LCM_STATE pair of an `ON` shortcut other than CUSTOM (§1.3).
fn on_shortcut(on: &str) -> Option<(VmState, LcmState)> {
    Some(match on {
        "PROLOG" => (VmState::Active, LcmState::Prolog),
        "RUNNING" => (VmState::Active, LcmState::Running),
        "SHUTDOWN" => (VmState::Active, LcmState::Epilog),
        "STOP" => (VmState::Stopped, LcmState::LcmInit),
        "DONE" => (VmState::Done, LcmState::LcmInit),
        "UNKNOWN" => (VmState::Active, LcmState::Unknown),
        _ => return None,
    })
}

/// IMAGE states a hook may use: every state but INIT.
fn image_hook_state(s: &str) -> Option<ImageState> {
    ImageState::from_name(s).filter(|st| *st != ImageState::Init)
}

/// NET states a hook may use: exact names, neither INIT nor UPDATE_FAILURE.
fn net_hook_state(s: &str) -> Option<NetState> {
    NetState::from_name(s).filter(|st| !matches!(st, NetState::Init | NetState::UpdateFailure))
}

/// Checks TIMEOUT and REMOTE, which oned leaves unchecked: the reference HEM reads TIMEOUT
/// with Ruby's `to_i`, so `-5` or `abc` silently meant no timeout, and runs a hook locally
/// whenever REMOTE is not YES, so a mistyped `REMOTE=yse` ran it on the front-end. Every
/// TIMEOUT must be a whole number of seconds (0: no timeout), every REMOTE `yes` or `no`, in
/// any case as oned reads it. Absent attributes are fine.
fn check_run_settings(t: &Template) -> Result<(), String> {
    for attribute in t.attributes() {
        let value = match &attribute.value {
            AttrValue::Single(v) => Some(trim_value(v)),
            AttrValue::Vector(_) => None,
        };
        match attribute.name.as_str() {
            "TIMEOUT" => check_timeout(value)?,
            "REMOTE" => check_remote(value)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_timeout(value: Option<&str>) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("Invalid TIMEOUT: {}. {why}", shown(value)));
    match value {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            if v.parse::<u64>().is_err() {
                return invalid(&format!("TIMEOUT must be at most {} seconds.", u64::MAX));
            }
            Ok(())
        }
        _ => invalid("TIMEOUT must be a non-negative integer (seconds)."),
    }
}

fn check_remote(value: Option<&str>) -> Result<(), String> {
    match value {
        Some(v) if v.eq_ignore_ascii_case("YES") || v.eq_ignore_ascii_case("NO") => Ok(()),
        _ => Err(format!(
            "Invalid REMOTE: {}. REMOTE must be YES or NO.",
            shown(value)
        )),
    }
}

/// A value as an error message shows it: a vector is named as such, a long value cut short.
fn shown(value: Option<&str>) -> String {
    const MAX_CHARS: usize = 64;
    match value {
        None => "a vector attribute".to_owned(),
        Some(v) if v.chars().count() > MAX_CHARS => {
            format!("{}...", v.chars().take(MAX_CHARS).collect::<String>())
        }
        Some(v) => v.to_owned(),
    }
}

/// Validates a `one.hook.allocate` template (§1.2, steps 1 and 3 to 11; step 2, the
/// authorization, is the caller's). `name_owner` returns the id of the hook that already has
/// a name. On success the template is in its stored form: NAME and TYPE removed, COMMAND and
/// CALL single, REMOTE present as YES or NO, STATE/LCM_STATE canonical, ON removed for VM
/// hooks. TIMEOUT and REMOTE, which oned does not check, are checked after every check of
/// oned's, so that a template oned refuses gets oned's answer; such a refusal reserves no id.
pub fn validate_create(
    text: &str,
    name_owner: impl Fn(&str) -> Option<i64>,
) -> Result<NewHook, CreateError> {
    let early = |message: String| CreateError {
        message,
        id_reserved: false,
    };
    let late = |message: String| CreateError {
        message,
        id_reserved: true,
    };

    // 1. Parse.
    let mut t = Template::parse(text).map_err(|e| early(e.oned_message()))?;
    // Checked before REMOTE is normalised, reported last.
    let run_settings = check_run_settings(&t);

    // 3. TYPE, checked on the lower-cased value.
    let type_value = t.get("TYPE").unwrap_or("").to_ascii_lowercase();
    let Some(hook_type) = HookType::from_name(&type_value) else {
        return Err(early(format!("Invalid Hook type: {type_value}")));
    };

    // 4, 5. NAME.
    let name = t.get("NAME").unwrap_or("").to_owned();
    if validate_name(&name).is_err() {
        return Err(early("Invalid name.".to_owned()));
    }
    if let Some(owner) = name_owner(&name) {
        return Err(early(format!("NAME is already taken by Hook {owner}.")));
    }

    // From here on oned has reserved an id.
    t.remove("NAME");

    // 6. COMMAND: the first value survives.
    let command = t.get("COMMAND").unwrap_or("").to_owned();
    t.remove("COMMAND");
    if command.is_empty() {
        return Err(late("No COMMAND in template for Hook.".to_owned()));
    }
    t.set("COMMAND", command);

    // REMOTE is always present, as YES or NO.
    let remote = yes(t.get("REMOTE"));
    t.set("REMOTE", yes_no(remote));

    t.remove("TYPE");

    // 8 to 10.
    match hook_type {
        HookType::Api => {
            let call = t.get("CALL").unwrap_or("").to_owned();
            t.remove("CALL");
            if !is_valid_hook_call(&call) {
                return Err(late(format!(
                    "API call does not exist or is not supported: {call}"
                )));
            }
            t.set("CALL", call);
        }
        HookType::State => {
            let resource = t.get("RESOURCE").unwrap_or("").to_owned();
            if resource.is_empty() {
                return Err(late(
                    "RESOURCE attribute is required for STATE hooks.".to_owned(),
                ));
            }
            let Some(kind) = ObjectKind::from_name(&resource) else {
                return Err(late(format!("Invalid resource type: {resource}")));
            };
            create_state_rules(kind, &mut t).map_err(late)?;
        }
    }

    // 11. The stored body must be well-formed XML.
    let hook = Hook {
        id: 0,
        name,
        hook_type,
        lock: None,
        template: t,
    };
    if hook.to_xml(None).is_err() {
        return Err(late("Error transforming the Hook to XML.".to_owned()));
    }
    run_settings.map_err(early)?;
    Ok(NewHook {
        name: hook.name,
        hook_type: hook.hook_type,
        template: hook.template,
    })
}

/// Step 10 for state hooks: resource-specific STATE handling.
fn create_state_rules(kind: ObjectKind, t: &mut Template) -> Result<(), String> {
    match kind {
        ObjectKind::Vm => {
            let on = t.get("ON").unwrap_or("").to_ascii_uppercase();
            t.remove("ON");
            let (state, lcm) = match on_shortcut(&on) {
                Some(pair) => pair,
                None if on == "CUSTOM" => {
                    let state_value = t.get("STATE").unwrap_or("").to_ascii_uppercase();
                    let state = VmState::from_name(&state_value)
                        .ok_or_else(|| format!("Wrong STATE: {state_value}"))?;
                    let lcm_value = t.get("LCM_STATE").unwrap_or("").to_ascii_uppercase();
                    let lcm = LcmState::from_name(&lcm_value)
                        .ok_or_else(|| format!("Wrong LCM_STATE: {lcm_value}"))?;
                    (state, lcm)
                }
                None => return Err(format!("Unkown state condition: {on}")),
            };
            t.set("STATE", state.name());
            t.set("LCM_STATE", lcm.name());
        }
        ObjectKind::Host => {
            let value = t.get("STATE").unwrap_or("").to_ascii_uppercase();
            let state =
                HostState::from_name(&value).ok_or_else(|| format!("Invalid STATE: {value}"))?;
            t.set("STATE", state.name());
        }
        ObjectKind::Image => {
            let Some(value) = t.get("STATE") else {
                return Err("Hook STATE attribute not found or invalid".to_owned());
            };
            let value = value.to_ascii_uppercase();
            let state = image_hook_state(&value)
                .ok_or_else(|| format!("Invalid or unkown STATE condition: {value}"))?;
            // Events carry USED and LOCKED_USED for the persistent variants.
            t.set("STATE", state.event_name());
        }
        ObjectKind::Net => {
            let value = t.get("STATE").unwrap_or("").to_owned();
            let state = net_hook_state(&value).ok_or_else(|| format!("Invalid STATE: {value}"))?;
            t.set("STATE", state.name());
        }
    }
    Ok(())
}

/// Validates a `one.hook.update` (§1.5) and returns the template to store. The error text
/// goes after `Cannot update template. `. The type-specific checks follow the hook's stored
/// TYPE and RESOURCE, as oned's do; call [`Hook::check_loadable`] first, since oned cannot
/// even load a hook that fails it.
///
/// Deviations: oned reports success for an update whose result cannot be serialised (a value
/// containing `]]>`) and silently does not store it; this returns
/// `Error transforming the Hook to XML.` instead. TIMEOUT and REMOTE of the resulting template
/// are checked as on create, after oned's checks.
pub fn validate_update(hook: &Hook, text: &str, mode: UpdateMode) -> Result<Template, String> {
    let parsed = Template::parse(text).map_err(|e| e.oned_message())?;
    let mut t = match mode {
        UpdateMode::Replace => parsed,
        UpdateMode::Merge => {
            let mut t = hook.template.clone();
            t.merge(parsed);
            t
        }
    };
    // Checked before REMOTE is normalised, reported last.
    let run_settings = check_run_settings(&t);

    let command = t.get("COMMAND").unwrap_or("").to_owned();
    if command.is_empty() {
        return Err("The COMMAND attribute is not defined.".to_owned());
    }
    t.set("COMMAND", command);

    // REMOTE is re-normalised only when present.
    if let Some(remote) = t.get("REMOTE") {
        let remote = yes(Some(remote));
        t.set("REMOTE", yes_no(remote));
    }

    const STATE_ERROR: &str = "The STATE attribute is not defined or it's invalid.";
    match hook.hook_type {
        HookType::Api => {
            let call = t.get("CALL").unwrap_or("").to_owned();
            if !is_valid_hook_call(&call) {
                return Err("The CALL attribute is not defined or it's invalid.".to_owned());
            }
            t.set("CALL", call);
        }
        HookType::State => {
            let stored = hook.template.get("RESOURCE").unwrap_or("");
            match ObjectKind::from_name(stored) {
                // ON is ignored on update.
                Some(ObjectKind::Vm) => {
                    let state = t
                        .get("STATE")
                        .map(str::to_ascii_uppercase)
                        .filter(|s| VmState::from_name(s).is_some());
                    let Some(state) = state else {
                        return Err(STATE_ERROR.to_owned());
                    };
                    t.set("STATE", state);
                    let lcm = t
                        .get("LCM_STATE")
                        .map(str::to_ascii_uppercase)
                        .filter(|s| LcmState::from_name(s).is_some());
                    let Some(lcm) = lcm else {
                        return Err(
                            "The LCM_STATE attribute is not defined or it's invalid.".to_owned()
                        );
                    };
                    t.set("LCM_STATE", lcm);
                }
                Some(ObjectKind::Host) => {
                    let state = t.get("STATE").unwrap_or("").to_ascii_uppercase();
                    if HostState::from_name(&state).is_none() {
                        return Err(STATE_ERROR.to_owned());
                    }
                    t.set("STATE", state);
                }
                // IMAGE and NET: STATE must be present; an invalid value is kept as given.
                Some(ObjectKind::Image) => {
                    let Some(state) = t.get("STATE").map(str::to_ascii_uppercase) else {
                        return Err(STATE_ERROR.to_owned());
                    };
                    if image_hook_state(&state).is_some() {
                        t.set("STATE", state);
                    }
                }
                Some(ObjectKind::Net) => {
                    let Some(state) = t.get("STATE").map(str::to_owned) else {
                        return Err(STATE_ERROR.to_owned());
                    };
                    if net_hook_state(&state).is_some() {
                        t.set("STATE", state);
                    }
                }
                None => return Err(format!("Invalid resource type: {stored}")),
            }
        }
    }

    let updated = Hook {
        template: t,
        ..hook.clone()
    };
    if updated.to_xml(None).is_err() {
        return Err("Error transforming the Hook to XML.".to_owned());
    }
    run_settings?;
    Ok(updated.template)
}

impl Hook {
    /// TIMEOUT and REMOTE as create and update check them. A hook stored by oned, or before
    /// these checks existed, may fail this; the HEM does not load such a hook.
    pub fn check_run_settings(&self) -> Result<(), String> {
        check_run_settings(&self.template)
    }

    /// The checks oned runs whenever it loads a hook from its stored body, then
    /// [`Hook::check_run_settings`]. A hook that fails oned's checks cannot be loaded by oned:
    /// every `one.hook.*` call on it answers NO_EXISTS (§1.5).
    pub fn check_loadable(&self) -> Result<(), String> {
        let t = &self.template;
        match self.hook_type {
            HookType::Api => {
                let call = t.get("CALL").unwrap_or("");
                if !is_valid_hook_call(call) {
                    return Err(format!(
                        "API call does not exist or is not supported: {call}"
                    ));
                }
            }
            HookType::State => {
                let resource = t.get("RESOURCE").unwrap_or("");
                if resource.is_empty() {
                    return Err("RESOURCE attribute is required for STATE hooks.".to_owned());
                }
                let state = t.get("STATE");
                match ObjectKind::from_name(resource) {
                    None => return Err(format!("Invalid resource type: {resource}")),
                    Some(ObjectKind::Vm) => {
                        let lcm = t.get("LCM_STATE").unwrap_or("");
                        if VmState::from_name(state.unwrap_or("")).is_none()
                            || LcmState::from_name(lcm).is_none()
                        {
                            return Err("Invalid VM state".to_owned());
                        }
                    }
                    Some(ObjectKind::Host) => {
                        let state = state.unwrap_or("");
                        if HostState::from_name(state).is_none() {
                            return Err(format!("Invalid STATE: {}", state.to_ascii_uppercase()));
                        }
                    }
                    Some(kind @ (ObjectKind::Image | ObjectKind::Net)) => {
                        let Some(state) = state else {
                            return Err("STATE attribute not found or invalid".to_owned());
                        };
                        let valid = match kind {
                            ObjectKind::Image => image_hook_state(state).is_some(),
                            _ => net_hook_state(state).is_some(),
                        };
                        if !valid {
                            return Err("Invalid or unknown STATE attribute".to_owned());
                        }
                    }
                }
            }
        }
        self.check_run_settings()
    }
}
