//! Event keys on the ZeroMQ bus (reference §5.3 and §5.4).
//!
//! The driver derives the frame-1 keys of an event from the decoded `HOOK_MESSAGE` the way the
//! reference driver does: every element is looked up with "first match anywhere in the document"
//! semantics, except `HOOK_TYPE`, whose text is the concatenation of *all* matching elements. The
//! input is often not well-formed (oned writes API values raw) and sometimes plain garbage, so the
//! document is read by a small tolerant scanner rather than a strict XML parser:
//!
//! - a document that does not start with an element (after an optional XML declaration, comments
//!   and a DOCTYPE) is empty, so it has no `HOOK_TYPE` and is published as `EVENT␠`;
//! - everything after the root element closes is ignored;
//! - a `<` that does not start a tag is text, an unknown `&` entity loses its `&`;
//! - an end tag closes the nearest open element of that name (and everything opened inside it);
//!   an end tag that matches no open element is ignored; the end of input closes everything.
//!
//! The sequence token (ARCHITECTURE.md "Sequence token") is appended with [`with_seq`] and removed
//! again by [`parse_key`], which implements the HEM's matching rule.

use crate::hook::{Hook, HookType};

/// API calls whose successful events make the HEM reload its hook map (§5.4, §8.6).
pub const RELOAD_CALLS: [&str; 3] = ["one.hook.update", "one.hook.allocate", "one.hook.delete"];

/// Key of a retry message (§5.3).
pub const RETRY_KEY: &str = "RETRY";

/// Key of an event whose HOOK_TYPE is neither `API` nor `STATE` (garbage included).
pub const UNKNOWN_EVENT_KEY: &str = "EVENT ";

/// An event whose `HOOK_TYPE` is known but lacks an element its keys need. The reference driver
/// reports this to oned as `LOG E 0 <message>` and publishes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The element is missing from the decoded message.
    #[error("{hook_type} HOOK_MESSAGE has no {element} element")]
    MissingElement {
        /// `API` or `STATE`.
        hook_type: &'static str,
        /// The XPath-like name of the missing element (`CALL`, `CALL_INFO/RESULT`, …).
        element: &'static str,
    },
}

/// Frame-1 keys of one event, in the reference's publication order, byte-exact (§5.3).
///
/// `decoded_xml` is the base64-decoded `HOOK_MESSAGE` (decoded leniently, as the reference does).
pub fn event_keys(decoded_xml: &str) -> Result<Vec<String>, KeyError> {
    keys_from(scan(decoded_xml))
}

fn keys_from(found: Found) -> Result<Vec<String>, KeyError> {
    match found.hook_type.as_str() {
        "API" => {
            let call = required(found.call, "API", "CALL")?;
            let result = required(found.result, "API", "CALL_INFO/RESULT")?;
            Ok(vec![format!("EVENT API {call} {result}")])
        }
        "STATE" => {
            // The reference evaluates the lookups in this order; the first missing one is reported.
            let object = required(found.hook_object, "STATE", "HOOK_OBJECT")?;
            let state = required(found.state, "STATE", "STATE")?;
            let lcm = if object == "VM" {
                required(found.lcm_state, "STATE", "LCM_STATE")?
            } else {
                String::new()
            };
            let id = required(found.resource_id, "STATE", "RESOURCE_ID")?;
            let mut keys = Vec::with_capacity(3);
            keys.push(format!("EVENT {object} {id}/{state}/{lcm} "));
            keys.push(format!("EVENT STATE {object}/{state}/{lcm}/{id} "));
            if let Some(service) = found.service_id {
                keys.push(format!("EVENT SERVICE {service} "));
            }
            Ok(keys)
        }
        _ => Ok(vec![UNKNOWN_EVENT_KEY.to_owned()]),
    }
}

fn required(
    value: Option<String>,
    hook_type: &'static str,
    element: &'static str,
) -> Result<String, KeyError> {
    value.ok_or(KeyError::MissingElement { hook_type, element })
}

/// Appends the sequence token: the key, one space unless it already ends in one, then `#<seq>`.
pub fn with_seq(key: &str, seq: u64) -> String {
    let mut out = String::with_capacity(key.len() + 22);
    out.push_str(key);
    if !key.ends_with(' ') {
        out.push(' ');
    }
    out.push('#');
    out.push_str(&seq.to_string());
    out
}

/// A received frame-1 key, read with the HEM's matching rule (§5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// Word 1: `EVENT` or `RETRY` (anything else is not for the HEM).
    pub action: &'a str,
    /// Word 2 lower-cased (`api`, `state`, `vm`, …), only for `EVENT`.
    pub kind: Option<String>,
    /// Word 3, only for `EVENT`; for `state` keys with the trailing `/<id>` removed.
    pub key: Option<String>,
    /// The sequence token, when the last word is `#<digits>` (and is not word 1).
    pub seq: Option<u64>,
}

/// Splits a key the way the HEM does: words separated by whitespace runs, action first, then for
/// `EVENT` the type and the key (word 4, the API result, is ignored). A trailing `#<seq>` word is
/// returned as `seq` and does not count as a word.
pub fn parse_key(frame: &str) -> ParsedKey<'_> {
    let mut words: Vec<&str> = ruby_words(frame).collect();
    let mut seq = None;
    if words.len() >= 2
        && let Some(last) = words.last()
        && let Some(n) = parse_seq_token(last)
    {
        seq = Some(n);
        words.pop();
    }
    let action = words.first().copied().unwrap_or("");
    let (kind, key) = if action == "EVENT" {
        let kind = words.get(1).map(|w| w.to_lowercase());
        let key = words.get(2).map(|w| {
            if kind.as_deref() == Some("state") {
                strip_state_id(w).to_owned()
            } else {
                (*w).to_owned()
            }
        });
        (kind, key)
    } else {
        (None, None)
    };
    ParsedKey {
        action,
        kind,
        key,
        seq,
    }
}

fn parse_seq_token(word: &str) -> Option<u64> {
    let digits = word.strip_prefix('#')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `VM/ACTIVE/RUNNING/12` -> `VM/ACTIVE/RUNNING`, `HOST/ERROR//3` -> `HOST/ERROR/`. The reference
/// removes the last run of characters that are not followed by `/`, which for a word without any
/// `/` is the whole word.
fn strip_state_id(word: &str) -> &str {
    match word.rfind('/') {
        Some(i) => &word[..i],
        None => "",
    }
}

/// Ruby's `split(' ')`: runs of space, tab, LF, VT, FF and CR separate words; no empty words.
/// The HEM splits keys and hook ARGUMENTS (§8.2) with it.
pub fn ruby_words(s: &str) -> impl Iterator<Item = &str> {
    s.split([' ', '\t', '\n', '\x0b', '\x0c', '\r'])
        .filter(|w| !w.is_empty())
}

/// The HEM's lookup key of a hook (§5.4): `("api", CALL)` or `("state", "RESOURCE/STATE/LCM_STATE")`
/// with absent attributes as empty strings (so non-VM state hooks end in `/`). `None` for an API
/// hook without CALL, which no event can match.
///
/// Deviation from the reference: it keeps the LCM_STATE of a non-VM hook in the key (an update
/// can leave one in the template, §10), which makes the hook unmatchable because only VM events
/// carry an LCM state. Here the LCM part of a non-VM hook is always empty, so such a hook fires
/// on its STATE.
pub fn hook_key(hook: &Hook) -> Option<(String, String)> {
    match hook.hook_type {
        HookType::Api => hook.call().map(|call| ("api".to_owned(), call.to_owned())),
        HookType::State => {
            let resource = hook.resource().unwrap_or("");
            let state = hook.state().unwrap_or("");
            let lcm = if resource == "VM" {
                hook.lcm_state().unwrap_or("")
            } else {
                ""
            };
            Some(("state".to_owned(), format!("{resource}/{state}/{lcm}")))
        }
    }
}

/// The ZeroMQ subscription filter of a hook (§5.4): `EVENT API <CALL>` (no result suffix, so it
/// also fires on failed calls and on calls that merely start with CALL) or
/// `EVENT STATE <RESOURCE>/<STATE>/<LCM_STATE>`.
pub fn hook_filter(hook: &Hook) -> Option<String> {
    let (_, key) = hook_key(hook)?;
    Some(match hook.hook_type {
        HookType::Api => format!("EVENT API {key}"),
        HookType::State => format!("EVENT STATE {key}"),
    })
}

/// The elements the keys are made of. `Some` means the element exists (its text may be empty).
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    hook_type: String,
    call: Option<String>,
    result: Option<String>,
    hook_object: Option<String>,
    state: Option<String>,
    lcm_state: Option<String>,
    resource_id: Option<String>,
    service_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    HookType,
    Call,
    Result,
    HookObject,
    State,
    LcmState,
    ResourceId,
    ServiceId,
}

impl Found {
    fn buffer(&mut self, slot: Slot) -> &mut String {
        let cell = match slot {
            Slot::HookType => return &mut self.hook_type,
            Slot::Call => &mut self.call,
            Slot::Result => &mut self.result,
            Slot::HookObject => &mut self.hook_object,
            Slot::State => &mut self.state,
            Slot::LcmState => &mut self.lcm_state,
            Slot::ResourceId => &mut self.resource_id,
            Slot::ServiceId => &mut self.service_id,
        };
        cell.get_or_insert_with(String::new)
    }

    /// Which slot an element opening here starts, if any: the first element of each name, every
    /// HOOK_TYPE, and the first RESULT whose parent is CALL_INFO.
    fn slot_for(&self, name: &str, parent: Option<&str>) -> Option<Slot> {
        let (slot, taken) = match name {
            "HOOK_TYPE" => return Some(Slot::HookType),
            "CALL" => (Slot::Call, self.call.is_some()),
            "RESULT" if parent == Some("CALL_INFO") => (Slot::Result, self.result.is_some()),
            "HOOK_OBJECT" => (Slot::HookObject, self.hook_object.is_some()),
            "STATE" => (Slot::State, self.state.is_some()),
            "LCM_STATE" => (Slot::LcmState, self.lcm_state.is_some()),
            "RESOURCE_ID" => (Slot::ResourceId, self.resource_id.is_some()),
            "SERVICE_ID" => (Slot::ServiceId, self.service_id.is_some()),
            _ => return None,
        };
        (!taken).then_some(slot)
    }
}

/// Reads the document once and collects the text of the key elements.
fn scan(doc: &str) -> Found {
    scan_with(doc, true)
}

/// `early_stop` ends the scan as soon as the rest of the document cannot change the keys; the
/// keys are the same as after reading everything (a property test checks it), though elements
/// the keys do not use may be left unread.
fn scan_with(doc: &str, early_stop: bool) -> Found {
    let mut scanner = Scanner {
        doc,
        bytes: doc.as_bytes(),
        found: Found::default(),
        open: Vec::new(),
        captures: Vec::new(),
        early_stop,
        capture_ended: false,
    };
    scanner.run();
    scanner.found
}

struct Scanner<'a> {
    doc: &'a str,
    bytes: &'a [u8],
    found: Found,
    /// Names of the open elements, root first.
    open: Vec<&'a str>,
    /// Slots being filled, with the depth (index in `open`) of the element that fills each.
    captures: Vec<(Slot, usize)>,
    /// Whether to stop once the keys are settled.
    early_stop: bool,
    /// A capture ended since the last settled check.
    capture_ended: bool,
}

impl<'a> Scanner<'a> {
    fn run(&mut self) {
        let Some(mut pos) = self.skip_prolog() else {
            return;
        };
        loop {
            let Some(lt) = find_byte(self.doc, pos, b'<') else {
                self.text(&self.doc[pos..], true);
                return;
            };
            if lt > pos {
                self.text(&self.doc[pos..lt], true);
            }
            let rest = &self.bytes[lt..];
            if rest.starts_with(b"<!--") {
                pos = find_seq(self.doc, lt + 4, "-->").map_or(self.bytes.len(), |i| i + 3);
            } else if rest.starts_with(b"<![CDATA[") {
                let start = lt + 9;
                let end = find_seq(self.doc, start, "]]>").unwrap_or(self.bytes.len());
                self.text(&self.doc[start..end], false);
                pos = (end + 3).min(self.bytes.len());
            } else if rest.starts_with(b"<!") {
                pos = find_byte(self.doc, lt, b'>').map_or(self.bytes.len(), |i| i + 1);
            } else if rest.starts_with(b"<?") {
                pos = find_seq(self.doc, lt + 2, "?>").map_or(self.bytes.len(), |i| i + 2);
            } else if rest.starts_with(b"</") {
                let name_end = name_end(self.bytes, lt + 2);
                let name = &self.doc[lt + 2..name_end];
                pos = find_byte(self.doc, name_end, b'>').map_or(self.bytes.len(), |i| i + 1);
                if self.close(name) {
                    return;
                }
            } else if rest.len() > 1 && is_name_start(rest[1]) {
                let (next, self_closing) = self.start_tag(lt);
                pos = next;
                if self_closing && self.close_top() {
                    return;
                }
            } else {
                // A `<` that starts nothing is kept as text.
                self.text("<", false);
                pos = lt + 1;
            }
            if pos >= self.bytes.len() {
                return;
            }
            if self.capture_ended && self.captures.is_empty() {
                self.capture_ended = false;
                if self.early_stop && self.settled(pos) {
                    return;
                }
            }
        }
    }

    /// Whether the document from `pos` on can no longer change the keys: every element the keys
    /// of the current HOOK_TYPE need has been read whole, and the rest holds no further
    /// `HOOK_TYPE` (which would be concatenated) nor, while none was seen, a `SERVICE_ID`.
    /// Oned puts these elements before the object body, so the body is usually skipped.
    fn settled(&self, pos: usize) -> bool {
        let f = &self.found;
        let needs_service = match f.hook_type.as_str() {
            "API" => {
                if f.call.is_none() || f.result.is_none() {
                    return false;
                }
                false
            }
            "STATE" => {
                let vm = f.hook_object.as_deref() == Some("VM");
                if f.hook_object.is_none()
                    || f.state.is_none()
                    || f.resource_id.is_none()
                    || (vm && f.lcm_state.is_none())
                {
                    return false;
                }
                f.service_id.is_none()
            }
            _ => false,
        };
        let Some(rest) = self.doc.get(pos..) else {
            return false;
        };
        let more_types = rest.contains("HOOK_TYPE");
        let more_services = needs_service && rest.contains("SERVICE_ID");
        !more_types && !more_services
    }

    /// Skips a BOM, whitespace, the XML declaration, comments and a DOCTYPE. Returns the position
    /// of the root element, or `None` when the document does not start with one.
    fn skip_prolog(&self) -> Option<usize> {
        let b = self.bytes;
        let mut pos = if b.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        loop {
            while pos < b.len() && b[pos].is_ascii_whitespace() {
                pos += 1;
            }
            let rest = &b[pos..];
            if rest.starts_with(b"<?") {
                pos = find_seq(self.doc, pos + 2, "?>")? + 2;
            } else if rest.starts_with(b"<!--") {
                pos = find_seq(self.doc, pos + 4, "-->")? + 3;
            } else if rest.starts_with(b"<!DOCTYPE") {
                let gt = find_byte(self.doc, pos, b'>')?;
                pos = match find_byte(self.doc, pos, b'[') {
                    Some(bracket) if bracket < gt => find_seq(self.doc, bracket, "]>")? + 2,
                    _ => gt + 1,
                };
            } else if rest.len() > 1 && rest[0] == b'<' && is_name_start(rest[1]) {
                return Some(pos);
            } else {
                return None;
            }
        }
    }

    /// Reads a start tag at `lt`, opens its element and returns the position after the tag and
    /// whether it was self-closing. A tag cut short by another `<` ends right there.
    fn start_tag(&mut self, lt: usize) -> (usize, bool) {
        let b = self.bytes;
        let name_end = name_end(b, lt + 1);
        let name = &self.doc[lt + 1..name_end];
        let mut i = name_end;
        let (next, self_closing) = loop {
            match b.get(i) {
                None => break (b.len(), false),
                Some(b'>') => break (i + 1, i > name_end && b[i - 1] == b'/'),
                Some(b'<') => break (i, false),
                Some(&q @ (b'"' | b'\'')) => {
                    i = find_byte(self.doc, i + 1, q).map_or(b.len(), |j| j + 1);
                }
                Some(_) => i += 1,
            }
        };
        let parent = self.open.last().copied();
        if let Some(slot) = self.found.slot_for(name, parent) {
            self.found.buffer(slot);
            self.captures.push((slot, self.open.len()));
        }
        self.open.push(name);
        (next, self_closing)
    }

    /// Closes the nearest open element called `name`. Returns true when the root closed.
    fn close(&mut self, name: &str) -> bool {
        match self.open.iter().rposition(|open| *open == name) {
            Some(depth) => self.truncate(depth),
            None => false,
        }
    }

    fn close_top(&mut self) -> bool {
        match self.open.len().checked_sub(1) {
            Some(depth) => self.truncate(depth),
            None => false,
        }
    }

    fn truncate(&mut self, depth: usize) -> bool {
        self.open.truncate(depth);
        let before = self.captures.len();
        self.captures.retain(|(_, d)| *d < depth);
        self.capture_ended |= self.captures.len() < before;
        self.open.is_empty()
    }

    fn text(&mut self, raw: &str, decode_entities: bool) {
        if self.captures.is_empty() || raw.is_empty() {
            return;
        }
        let text = if decode_entities && raw.contains('&') {
            std::borrow::Cow::Owned(decode(raw))
        } else {
            std::borrow::Cow::Borrowed(raw)
        };
        for i in 0..self.captures.len() {
            let slot = self.captures[i].0;
            self.found.buffer(slot).push_str(&text);
        }
    }
}

/// Position of `needle` (ASCII) at or after `from`. Positions handed in always follow an ASCII
/// byte, so the fast `str` search applies; the byte loop is only a fallback.
fn find_byte(doc: &str, from: usize, needle: u8) -> Option<usize> {
    match doc.get(from..) {
        Some(hay) => hay.find(char::from(needle)).map(|i| from + i),
        None => doc
            .as_bytes()
            .get(from..)?
            .iter()
            .position(|&c| c == needle)
            .map(|i| from + i),
    }
}

fn find_seq(doc: &str, from: usize, needle: &str) -> Option<usize> {
    match doc.get(from..) {
        Some(hay) => hay.find(needle).map(|i| from + i),
        None => doc
            .as_bytes()
            .get(from..)?
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .map(|i| from + i),
    }
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':' || c >= 0x80
}

/// End of an element name: whitespace, `/`, `>`, `<` or the end of input. Only ASCII bytes stop
/// it, so the slice always ends on a character boundary.
fn name_end(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'>' | b'<') {
        i += 1;
    }
    i
}

/// Decodes the predefined and numeric character references; an `&` that starts none is dropped.
fn decode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let reference = after
            .find(';')
            .filter(|&semi| semi <= 10)
            .and_then(|semi| entity(&after[..semi]).map(|c| (c, semi)));
        match reference {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAGMENTS: &[&str] = &[
        "<HOOK_MESSAGE>",
        "</HOOK_MESSAGE>",
        "<HOOK_TYPE>",
        "</HOOK_TYPE>",
        "API",
        "STATE",
        "<CALL>",
        "</CALL>",
        "one.vm.x",
        "<CALL_INFO>",
        "</CALL_INFO>",
        "<RESULT>",
        "</RESULT>",
        "1",
        "<HOOK_OBJECT>",
        "</HOOK_OBJECT>",
        "VM",
        "HOST",
        "<STATE>",
        "</STATE>",
        "<LCM_STATE>",
        "</LCM_STATE>",
        "<RESOURCE_ID>",
        "</RESOURCE_ID>",
        "7",
        "<SERVICE_ID>",
        "</SERVICE_ID>",
        "<SERVICE_ID/>",
        "<HOOK_TYPE/>",
        "<X>",
        "</X>",
        "<Y a='>'/>",
        "<![CDATA[",
        "]]>",
        "&amp;",
        "&#65;",
        "<",
        ">",
        " ",
        "<!--",
        "-->",
        "HOOK_TYPE",
    ];

    proptest::proptest! {
        #[test]
        fn early_stop_reads_the_same_keys_as_a_full_scan(
            picks in proptest::collection::vec(0..FRAGMENTS.len(), 0..80),
            root in proptest::bool::ANY,
        ) {
            let mut doc = String::from(if root { "<HOOK_MESSAGE>" } else { "" });
            for i in picks {
                doc.push_str(FRAGMENTS[i]);
            }
            proptest::prop_assert_eq!(
                keys_from(scan_with(&doc, true)),
                keys_from(scan_with(&doc, false)),
                "{}",
                doc
            );
        }
    }

    #[test]
    fn early_stop_skips_the_body_of_a_reference_event() {
        let head = "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT><STATE>ACTIVE</STATE><LCM_STATE>RUNNING</LCM_STATE><RESOURCE_ID>1</RESOURCE_ID><REMOTE_HOST>n</REMOTE_HOST>";
        // An unterminated element in the body would swallow nothing if the body is skipped.
        let doc = format!(
            "{head}<VM><STATE>3</STATE><X>{}</X></VM></HOOK_MESSAGE>",
            "y".repeat(1000)
        );
        assert_eq!(scan_with(&doc, true), scan_with(&doc, false));
        assert_eq!(scan_with(&doc, true).state.as_deref(), Some("ACTIVE"));
    }

    #[test]
    fn non_vm_hooks_ignore_lcm_state() {
        let hook = |resource: &str| {
            Hook::from_xml(&format!(
                "<HOOK><ID>1</ID><NAME>h</NAME><TYPE>state</TYPE><TEMPLATE><COMMAND>x</COMMAND>\
                 <LCM_STATE>RUNNING</LCM_STATE><RESOURCE>{resource}</RESOURCE>\
                 <STATE>ERROR</STATE></TEMPLATE></HOOK>"
            ))
            .expect("hook")
        };
        let host = hook("HOST");
        assert_eq!(
            hook_key(&host),
            Some(("state".to_owned(), "HOST/ERROR/".to_owned()))
        );
        let published = "EVENT STATE HOST/ERROR//3 #9";
        assert!(published.starts_with(&hook_filter(&host).expect("filter")));
        assert_eq!(parse_key(published).key.as_deref(), Some("HOST/ERROR/"));
        // A VM hook keeps its LCM_STATE.
        assert_eq!(
            hook_key(&hook("VM")).map(|k| k.1).as_deref(),
            Some("VM/ERROR/RUNNING")
        );
    }

    #[test]
    fn words_split_on_ruby_whitespace() {
        let words: Vec<_> = ruby_words(" a\t\tb\x0bc \r\n").collect();
        assert_eq!(words, ["a", "b", "c"]);
    }

    #[test]
    fn entities_decode_and_stray_ampersands_drop() {
        assert_eq!(decode("a &amp; b &lt;&#65;&#x42;"), "a & b <AB");
        assert_eq!(decode("a & b"), "a  b");
        assert_eq!(decode("&unknown;x"), "unknown;x");
    }

    #[test]
    fn strip_state_id_matches_the_reference_regex() {
        assert_eq!(strip_state_id("VM/ACTIVE/RUNNING/12"), "VM/ACTIVE/RUNNING");
        assert_eq!(strip_state_id("HOST/ERROR//3"), "HOST/ERROR/");
        assert_eq!(strip_state_id("VM/X/"), "VM/X");
        assert_eq!(strip_state_id("abc"), "");
    }
}
