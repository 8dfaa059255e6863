//! Hooks: the model and the accessors the HEM needs (reference §8.2, §8.3). Beside it, in
//! modules of their own: [`calls`], oned's XML-RPC method table as far as hooks care (§1.4);
//! [`validate`], create and update validation with oned's order and texts (§1); [`xml`], the
//! HOOK and HOOK_POOL documents (§4.1, §4.2).

use std::fmt;

use crate::template::Template;

mod calls;
mod validate;
mod xml;

pub use calls::{
    UNSUPPORTED_CALLS, is_registered_call, is_unsupported_call, is_valid_hook_call,
    registered_call_index, registered_call_name,
};
pub use validate::{validate_create, validate_name, validate_update};
pub use xml::{pool_from_xml, pool_from_xml_lenient, pool_to_xml};

/// The two kinds of hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookType {
    Api,
    State,
}

impl HookType {
    /// The stored form: `api` or `state`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookType::Api => "api",
            HookType::State => "state",
        }
    }

    /// Parses a TYPE value case-insensitively, as oned does.
    pub fn from_name(s: &str) -> Option<HookType> {
        if s.eq_ignore_ascii_case("api") {
            Some(HookType::Api)
        } else if s.eq_ignore_ascii_case("state") {
            Some(HookType::State)
        } else {
            None
        }
    }
}

impl fmt::Display for HookType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lock on a hook: level 1=USE, 2=MANAGE, 3=ADMIN (4=ALL is stored as 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lock {
    pub level: u8,
    pub owner: i64,
    pub time: i64,
    pub req_id: i64,
}

/// A stored hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub id: i64,
    pub name: String,
    pub hook_type: HookType,
    pub lock: Option<Lock>,
    pub template: Template,
}

/// A validated hook that has no id yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHook {
    pub name: String,
    pub hook_type: HookType,
    pub template: Template,
}

impl NewHook {
    /// The hook this becomes once stored with `id`.
    pub fn into_hook(self, id: i64) -> Hook {
        Hook {
            id,
            name: self.name,
            hook_type: self.hook_type,
            lock: None,
            template: self.template,
        }
    }
}

/// A failed `one.hook.allocate`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CreateError {
    /// The text after the `[one.hook.allocate] ` prefix.
    pub message: String,
    /// oned reserves an id before checks 6 to 11 (§1.2); when those fail, the reservation is
    /// rolled back to `max(previous, 0)`, which burns id 0 on an empty pool.
    pub id_reserved: bool,
}

/// The update modes of `one.hook.update`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateMode {
    /// Mode 0: the new text replaces the template.
    Replace,
    /// Mode 1: the new text is merged into the template (§1.5).
    Merge,
}

impl UpdateMode {
    /// The mode for the XML-RPC integer; `None` for anything but 0 and 1.
    pub fn from_flag(flag: i64) -> Option<UpdateMode> {
        match flag {
            0 => Some(UpdateMode::Replace),
            1 => Some(UpdateMode::Merge),
            _ => None,
        }
    }
}

/// A HOOK or HOOK_POOL document that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookParseError {
    #[error("malformed hook XML: {0}")]
    Malformed(String),
    #[error("expected a <{expected}> document, found <{found}>")]
    WrongRoot {
        expected: &'static str,
        found: String,
    },
    #[error("hook {id}: missing <{element}>")]
    Missing { id: String, element: &'static str },
    #[error("hook {id}: invalid <{element}> value {value:?}")]
    Invalid {
        id: String,
        element: &'static str,
        value: String,
    },
}

/// The boolean oned reads from a template: true when the upper-cased value is `YES`.
fn yes(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("YES"))
}

fn yes_no(b: bool) -> &'static str {
    if b { "YES" } else { "NO" }
}

/// Ruby's `String#to_i`: optional leading whitespace and sign, an optional `0d` prefix, then
/// decimal digits with single underscores between them; anything else ends the number. Values
/// beyond the `i128` range saturate.
fn ruby_to_i(s: &str) -> i128 {
    let s = s.trim_start_matches(crate::template::is_c_space);
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let b = s.as_bytes();
    let mut i =
        if b.len() > 2 && b[0] == b'0' && (b[1] == b'd' || b[1] == b'D') && b[2].is_ascii_digit() {
            2
        } else {
            0
        };
    let mut n: i128 = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            n = n.saturating_mul(10).saturating_add(i128::from(c - b'0'));
        } else if c == b'_'
            && i > 0
            && b[i - 1].is_ascii_digit()
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            // A single underscore between digits is a separator.
        } else {
            break;
        }
        i += 1;
    }
    if negative { -n } else { n }
}

impl Hook {
    /// The first COMMAND value.
    pub fn command(&self) -> Option<&str> {
        self.template.get("COMMAND")
    }

    /// The ARGUMENTS text, empty when missing.
    pub fn arguments(&self) -> &str {
        self.template.get("ARGUMENTS").unwrap_or("")
    }

    /// Whether the arguments go to the command's stdin: ARGUMENTS_STDIN is `yes` or `true`
    /// in any case. (The reference HEM only honours `yes`, §10; `true` is documented to work
    /// and is honoured here.)
    pub fn arguments_stdin(&self) -> bool {
        self.template
            .get("ARGUMENTS_STDIN")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true"))
    }

    /// TIMEOUT in seconds, read with Ruby `to_i` semantics; `None` (no timeout) when missing
    /// or not positive.
    pub fn timeout_secs(&self) -> Option<u64> {
        let n = ruby_to_i(self.template.get("TIMEOUT")?);
        (n > 0).then(|| u64::try_from(n).unwrap_or(u64::MAX))
    }

    /// Whether the hook runs on the host named by the event (REMOTE is `YES`, any case).
    pub fn remote(&self) -> bool {
        yes(self.template.get("REMOTE"))
    }

    pub fn resource(&self) -> Option<&str> {
        self.template.get("RESOURCE")
    }

    pub fn call(&self) -> Option<&str> {
        self.template.get("CALL")
    }

    pub fn state(&self) -> Option<&str> {
        self.template.get("STATE")
    }

    pub fn lcm_state(&self) -> Option<&str> {
        self.template.get("LCM_STATE")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ruby_to_i() {
        for (s, n) in [
            ("", 0),
            ("  -12x", -12),
            ("+3", 3),
            ("4_5_6", 456),
            ("4__5", 4),
            ("0D9", 9),
            ("0d", 0),
            ("\u{0B}7", 7),
        ] {
            assert_eq!(super::ruby_to_i(s), n, "{s:?}");
        }
    }
}
