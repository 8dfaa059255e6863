//! The MAD line protocol between oned and the Hook Manager driver (reference §6), and the result
//! frame the HEM sends to the driver's REP socket (§5.5).
//!
//! Lines are handled here without their terminating LF: the functions that build a line return it
//! without LF, and the parsers accept a line with or without one.
//!
//! # Delivery acknowledgement (an additive extension between oned-lite and one_hm)
//!
//! The reference protocol has no acknowledgement for events, so lines in the pipe when a driver
//! dies are lost. A front-end may put its event id (1 or more, increasing in the order it sends)
//! in the id word that oned sets to -1 ([`oned_execute_line_with_id`]); the reference driver
//! ignores that word. A driver that supports it answers, after the INIT reply, with
//! [`journaled_line`] `JOURNALED SUCCESS <id> -` once every line it has read up to and including
//! the one with that id is journaled (or was refused with a `LOG E` line, or recognised as a
//! redelivery). After a driver restart the front-end sends again, in the same order and with the
//! same ids, every line no `JOURNALED` line has covered; the driver journals a redelivered line
//! only if it does not already hold an event with that id and the same content. Lines with id -1
//! are never acknowledged, so a reference oned never sees a `JOURNALED` line.
//!
//! # Result acknowledgement (the other direction, also between oned-lite and one_hm only)
//!
//! The reference driver considers a result delivered once its `EXECUTE SUCCESS|FAILURE` line is
//! written, so results in the pipe when oned dies are lost. A front-end that stores results and
//! says so sends [`stored_line`] `STORED  0 -` once, right before `INIT`: the reference driver
//! ignores an action it has no handler for, and a reference oned never sends the line, so
//! nothing changes for either. A driver that has read it then follows the result lines it
//! writes with [`forwarded_line`] `FORWARDED SUCCESS <result_id> -`: every result line before it
//! carries a driver result id up to `<result_id>` (ids grow in the order results are written).
//! Once the front-end has committed every result line it read before such a marker, it sends
//! `STORED  <result_id> -` (cumulative; one per hook-log commit at most). The driver then counts
//! results as delivered only when acknowledged, and after a restart writes every result not
//! acknowledged again; the front-end drops the ones it already stored by `<EXECUTION_UID>`.
//! Without the announcement the driver writes no marker and counts a result delivered once
//! written, as the reference does.

use crate::encoding::b64_decode_strict;

/// A line oned writes to the driver's stdin, as the driver reads it: words split on whitespace
/// runs, the first one upper-cased (§6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnedLine {
    /// `INIT`: answer `INIT SUCCESS - -`.
    Init,
    /// `FINALIZE`: shut down.
    Finalize,
    /// `EXECUTE  -1 <b64 HOOK_MESSAGE>`. `payload` is every word after the id, joined by single
    /// spaces (normally just the base64 message).
    Execute {
        /// The id word: -1 from oned, a front-end event id (1 or more) for delivery
        /// acknowledgement; -1 when it is not an integer.
        id: i64,
        /// The words after the id.
        payload: String,
    },
    /// `RETRY  -1 <b64 RETRY message>`, `id` and `payload` as for `Execute`.
    Retry {
        /// The id word.
        id: i64,
        /// The words after the id.
        payload: String,
    },
    /// `STORED  <result_id> -`: every result up to that driver result id is stored (result
    /// acknowledgement); `STORED  0 -` before `INIT` announces that the front-end sends these.
    Stored(u64),
    /// Anything else, kept whole (without the line end) for the log.
    Undefined(String),
}

impl OnedLine {
    /// Frame 2 of what the reference driver publishes for this line: for `EXECUTE` the first
    /// payload word (the exact base64 oned sent); for `RETRY` the first word, a space, and the
    /// second word if any, hence the trailing space of a normal retry (§5.3). `None` for other
    /// lines and for an empty payload.
    pub fn publish_content(&self) -> Option<String> {
        match self {
            OnedLine::Execute { payload, .. } => {
                let first = payload.split(' ').next().filter(|w| !w.is_empty())?;
                Some(first.to_owned())
            }
            OnedLine::Retry { payload, .. } => {
                let mut words = payload.split(' ').filter(|w| !w.is_empty());
                let first = words.next()?;
                let second = words.next().unwrap_or("");
                Some(format!("{first} {second}"))
            }
            OnedLine::Init | OnedLine::Finalize | OnedLine::Stored(_) | OnedLine::Undefined(_) => {
                None
            }
        }
    }
}

/// Reads one line from oned. A line of only whitespace is `Undefined("")`.
pub fn parse_oned_line(line: &str) -> OnedLine {
    let line = trim_line_end(line);
    let (first, rest) = next_word(line);
    if first.is_empty() {
        return OnedLine::Undefined(String::new());
    }
    let (id_word, rest) = next_word(rest);
    let id = id_word.parse::<i64>().unwrap_or(-1);
    let payload = || {
        let rest = rest.trim_end_matches(is_ruby_space);
        // The usual payload is one base64 word: a branch-free check for any byte that could be
        // whitespace avoids splitting it character by character.
        let maybe_spaces = rest.bytes().fold(false, |acc, b| acc | (b <= b' '));
        if !maybe_spaces {
            return rest.to_owned();
        }
        let mut payload = String::with_capacity(rest.len());
        for (i, word) in ruby_words(rest).enumerate() {
            if i > 0 {
                payload.push(' ');
            }
            payload.push_str(word);
        }
        payload
    };
    if first.eq_ignore_ascii_case("EXECUTE") {
        OnedLine::Execute {
            id,
            payload: payload(),
        }
    } else if first.eq_ignore_ascii_case("RETRY") {
        OnedLine::Retry {
            id,
            payload: payload(),
        }
    } else if first.eq_ignore_ascii_case("INIT") {
        OnedLine::Init
    } else if first.eq_ignore_ascii_case("FINALIZE") {
        OnedLine::Finalize
    } else if first.eq_ignore_ascii_case("STORED") {
        // `STORED  <id> -`: the empty status makes the id the second word.
        match id_word.parse::<u64>() {
            Ok(id) => OnedLine::Stored(id),
            Err(_) => OnedLine::Undefined(line.to_owned()),
        }
    } else {
        OnedLine::Undefined(line.to_owned())
    }
}

/// The line oned writes for an event: `EXECUTE  -1 <b64>` (empty status, hence two spaces).
pub fn oned_execute_line(b64: &str) -> String {
    format!("EXECUTE  -1 {b64}")
}

/// The line oned writes for a retry: `RETRY  -1 <b64>`.
pub fn oned_retry_line(b64: &str) -> String {
    format!("RETRY  -1 {b64}")
}

/// `EXECUTE  <id> <b64>`: an event with a front-end event id (1 or more) for delivery
/// acknowledgement.
pub fn oned_execute_line_with_id(id: u64, b64: &str) -> String {
    format!("EXECUTE  {id} {b64}")
}

/// `RETRY  <id> <b64>`, as [`oned_execute_line_with_id`].
pub fn oned_retry_line_with_id(id: u64, b64: &str) -> String {
    format!("RETRY  {id} {b64}")
}

/// `JOURNALED SUCCESS <id> -`: every line up to the one with event id `id` is journaled.
pub fn journaled_line(id: u64) -> String {
    format!("JOURNALED SUCCESS {id} -")
}

/// The event id of a `JOURNALED SUCCESS <id> …` line; `None` for any other line. A front-end
/// that uses delivery acknowledgement checks this before [`parse_driver_line`], which reads such
/// a line as undefined.
pub fn parse_journaled_line(line: &str) -> Option<u64> {
    let (kind, rest) = next_word(trim_line_end(line));
    let (status, rest) = next_word(rest);
    let (id, _) = next_word(rest);
    if kind != "JOURNALED" || status != "SUCCESS" {
        return None;
    }
    id.parse().ok().filter(|id| *id > 0)
}

/// `STORED  <result_id> -` (result acknowledgement, oned-lite to driver): every result up to
/// that driver result id is stored. With 0 and before `INIT`, it announces that the front-end
/// acknowledges results.
pub fn stored_line(result_id: u64) -> String {
    format!("STORED  {result_id} -")
}

/// `FORWARDED SUCCESS <result_id> -` (result acknowledgement, driver to oned-lite): the result
/// lines written before this one carry driver result ids up to `result_id`. Written only to a
/// front-end that announced itself with `STORED  0 -`.
pub fn forwarded_line(result_id: u64) -> String {
    format!("FORWARDED SUCCESS {result_id} -")
}

/// The result id of a `FORWARDED SUCCESS <id> …` line; `None` for any other line. Checked
/// before [`parse_driver_line`], which reads such a line as undefined.
pub fn parse_forwarded_line(line: &str) -> Option<u64> {
    let (kind, rest) = next_word(trim_line_end(line));
    let (status, rest) = next_word(rest);
    let (id, _) = next_word(rest);
    if kind != "FORWARDED" || status != "SUCCESS" {
        return None;
    }
    id.parse().ok().filter(|id| *id > 0)
}

/// A line the driver writes to oned, as oned reads it (§6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverLine {
    /// `INIT SUCCESS - -`.
    InitSuccess,
    /// `INIT <anything but SUCCESS> …`; holds the text after the status and id words.
    InitFailure(String),
    /// `EXECUTE SUCCESS|FAILURE <hook_id> <rc> <body>`.
    Result {
        /// STATUS was `SUCCESS`.
        success: bool,
        /// The hook the result belongs to.
        hook_id: i64,
        /// The return code oned stores.
        rc: i64,
        /// The strict-base64 result body (empty when oned could not read an rc, §6.2).
        body: String,
    },
    /// `LOG <E|I|W|D> <id> <text>`.
    Log {
        /// Severity letter.
        level: char,
        /// The id word (0 for the driver's internal errors).
        id: i64,
        /// The message, one line.
        text: String,
    },
    /// Anything oned would log as `Received UNDEFINED msg`.
    Undefined(String),
}

impl DriverLine {
    /// A result line with STATUS chosen from the rc as the reference driver does.
    pub fn result(hook_id: i64, rc: i64, body: impl Into<String>) -> DriverLine {
        DriverLine::Result {
            success: rc == 0,
            hook_id,
            rc,
            body: body.into(),
        }
    }

    /// `LOG E 0 <text>`, the only log line the reference driver sends.
    pub fn error(text: impl Into<String>) -> DriverLine {
        DriverLine::Log {
            level: 'E',
            id: 0,
            text: text.into(),
        }
    }

    /// The line without LF. Line breaks inside a log text become spaces, so one value is always
    /// one line.
    pub fn to_line(&self) -> String {
        match self {
            DriverLine::InitSuccess => "INIT SUCCESS - -".to_owned(),
            DriverLine::InitFailure(text) => {
                let text = if text.is_empty() { "-" } else { text };
                format!("INIT FAILURE - {}", one_line(text))
            }
            DriverLine::Result {
                success,
                hook_id,
                rc,
                body,
            } => {
                let status = if *success { "SUCCESS" } else { "FAILURE" };
                format!("EXECUTE {status} {hook_id} {rc} {body}")
            }
            DriverLine::Log { level, id, text } => format!("LOG {level} {id} {}", one_line(text)),
            DriverLine::Undefined(line) => one_line(line),
        }
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// Reads one line from the driver the way oned does: the type word is case-sensitive, the third
/// word must be an integer id; for `EXECUTE` the payload's first word is the rc, and an rc that is
/// not an integer gives rc 0 and an empty body (§6.2).
pub fn parse_driver_line(line: &str) -> DriverLine {
    let line = trim_line_end(line);
    let (kind, rest) = next_word(line);
    let (status, rest) = next_word(rest);
    match kind {
        "INIT" => {
            if status == "SUCCESS" {
                DriverLine::InitSuccess
            } else {
                let (_id, text) = next_word(rest);
                DriverLine::InitFailure(text.to_owned())
            }
        }
        "EXECUTE" => {
            let (id, payload) = next_word(rest);
            let Ok(hook_id) = id.parse::<i64>() else {
                return DriverLine::Undefined(line.to_owned());
            };
            let (rc_word, body) = next_word(payload);
            let (rc, body) = match rc_word.parse::<i64>() {
                Ok(rc) => (rc, body.to_owned()),
                Err(_) => (0, String::new()),
            };
            DriverLine::Result {
                success: status == "SUCCESS",
                hook_id,
                rc,
                body,
            }
        }
        "LOG" => {
            let (id, text) = next_word(rest);
            match (status.chars().next(), id.parse::<i64>()) {
                (Some(level), Ok(id)) => DriverLine::Log {
                    level,
                    id,
                    text: text.to_owned(),
                },
                _ => DriverLine::Undefined(line.to_owned()),
            }
        }
        _ => DriverLine::Undefined(line.to_owned()),
    }
}

/// Why a result frame was refused. The text is what the driver answers and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not UTF-8 text.
    #[error("result frame is not text")]
    NotText,
    /// Not three words.
    #[error("result frame has {words} words, expected 3: <rc> <hook_id> <base64 body>")]
    WordCount {
        /// How many words there were.
        words: usize,
    },
    /// The rc word is not a decimal integer.
    #[error("return code {word:?} is not an integer")]
    BadRc {
        /// The word (shortened).
        word: String,
    },
    /// The hook id word is not a non-negative decimal integer.
    #[error("hook id {word:?} is not a non-negative integer")]
    BadHookId {
        /// The word (shortened).
        word: String,
    },
    /// The body is not strict base64.
    #[error("result body is not strict base64: {reason}")]
    BadBody {
        /// What is wrong with it.
        reason: String,
    },
}

/// The result the HEM sends over REQ: `<rc> <hook_id> <strict-base64 body>` (§5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFrame {
    /// The hook's exit code.
    pub rc: i64,
    /// The hook id.
    pub hook_id: i64,
    /// The strict-base64 result body (§4.7).
    pub body: String,
}

impl ResultFrame {
    /// Parses a frame strictly. Accepted: UTF-8 text that, after trimming surrounding whitespace,
    /// splits on whitespace runs into exactly three words: the rc (an optional `-` and decimal
    /// digits, within i64), the hook id (decimal digits, within i64) and a non-empty strict-base64
    /// body (whole 4-character groups of the standard alphabet, `=` only as final padding).
    /// Everything else is refused; the reference's `to_i` leniency is not reproduced, because it
    /// turns a corrupt frame into a record for the wrong hook.
    pub fn parse(frame: &[u8]) -> Result<ResultFrame, FrameError> {
        Self::parse_decoded(frame).map(|(result, _)| result)
    }

    /// [`ResultFrame::parse`], and the body's [`ResultFrame::execution_uid`] read from the same
    /// decoding (the driver needs both for every result; the body is kilobytes).
    pub fn parse_with_uid(frame: &[u8]) -> Result<(ResultFrame, Option<String>), FrameError> {
        Self::parse_decoded(frame).map(|(result, body)| (result, uid_in(&body)))
    }

    /// [`ResultFrame::parse_with_uid`], and the decoded body itself (the driver stores it
    /// decoded, a quarter smaller than the text).
    pub fn parse_with_uid_and_body(
        frame: &[u8],
    ) -> Result<(ResultFrame, Option<String>, Vec<u8>), FrameError> {
        Self::parse_decoded(frame).map(|(result, body)| {
            let uid = uid_in(&body);
            (result, uid, body)
        })
    }

    /// The parsed frame and its decoded body.
    fn parse_decoded(frame: &[u8]) -> Result<(ResultFrame, Vec<u8>), FrameError> {
        let text = std::str::from_utf8(frame).map_err(|_| FrameError::NotText)?;
        let [rc_word, id_word, body] =
            three_words(text).map_err(|words| FrameError::WordCount { words })?;
        let rc = parse_int(rc_word, true).ok_or_else(|| FrameError::BadRc {
            word: shorten(rc_word),
        })?;
        let hook_id = parse_int(id_word, false).ok_or_else(|| FrameError::BadHookId {
            word: shorten(id_word),
        })?;
        let decoded = b64_decode_strict(body).map_err(|e| FrameError::BadBody {
            reason: e.to_string(),
        })?;
        let result = ResultFrame {
            rc,
            hook_id,
            body: body.to_owned(),
        };
        Ok((result, decoded))
    }

    /// `<rc> <hook_id> <body>`.
    pub fn to_frame(&self) -> String {
        format!("{} {} {}", self.rc, self.hook_id, self.body)
    }

    /// The line the driver forwards to oned for this result.
    pub fn to_driver_line(&self) -> DriverLine {
        DriverLine::result(self.hook_id, self.rc, self.body.clone())
    }

    /// The `EXECUTION_UID` the HEM put in the body (ARCHITECTURE.md "Execution uid"), trimmed;
    /// `None` when absent, empty, longer than 256 bytes, not UTF-8, or the body does not decode.
    pub fn execution_uid(&self) -> Option<String> {
        uid_in(&b64_decode_strict(&self.body).ok()?)
    }
}

/// The trimmed text of the first `<EXECUTION_UID>` element of a decoded result body; `None`
/// when absent, empty, longer than 256 bytes or not UTF-8.
fn uid_in(body: &[u8]) -> Option<String> {
    const OPEN: &[u8] = b"<EXECUTION_UID>";
    let start = memchr::memmem::find(body, OPEN)? + OPEN.len();
    let len = memchr::memmem::find(&body[start..], b"</EXECUTION_UID>")?;
    let uid = std::str::from_utf8(&body[start..start + len]).ok()?.trim();
    (!uid.is_empty() && uid.len() <= 256).then(|| uid.to_owned())
}

fn parse_int(word: &str, allow_negative: bool) -> Option<i64> {
    let digits = match word.strip_prefix('-') {
        Some(d) if allow_negative => d,
        Some(_) => return None,
        None => word,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok()
}

fn shorten(word: &str) -> String {
    const MAX: usize = 32;
    match word.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &word[..cut]),
        None => word.to_owned(),
    }
}

/// Whitespace as Ruby's `split(' ')` and `/\s+/` see it.
fn is_ruby_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// The words of `s` split on runs of Ruby whitespace. The separators are ASCII bytes, so every
/// word boundary is a character boundary; scanning bytes keeps this fast on long lines.
fn ruby_words(s: &str) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < bytes.len() && is_space(bytes[pos]) {
            pos += 1;
        }
        if pos >= bytes.len() {
            return None;
        }
        let start = pos;
        while pos < bytes.len() && !is_space(bytes[pos]) {
            pos += 1;
        }
        s.get(start..pos)
    })
}

/// The words of a result frame when there are exactly three, else how many there are. The last
/// word, the body, is most of the frame, so its end is found with `memchr` rather than byte by
/// byte; the split is the same as [`ruby_words`].
fn three_words(text: &str) -> Result<[&str; 3], usize> {
    let mut head = ruby_words(text);
    let (Some(rc), Some(id)) = (head.next(), head.next()) else {
        return Err(ruby_words(text).count());
    };
    // `id` is a subslice of `text`: the body starts after it.
    let after_id = id.as_ptr() as usize - text.as_ptr() as usize + id.len();
    let rest = text[after_id..].trim_start_matches(is_ruby_space);
    let bytes = rest.as_bytes();
    let end = match (
        memchr::memchr3(b' ', b'\t', b'\n', bytes),
        memchr::memchr3(0x0b, 0x0c, b'\r', bytes),
    ) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(bytes.len()),
    };
    let (body, tail) = rest.split_at(end);
    if body.is_empty() || !tail.bytes().all(|b| is_ruby_space(char::from(b))) {
        return Err(ruby_words(text).count());
    }
    Ok([rc, id, body])
}

fn trim_line_end(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

/// The next word and the rest after the whitespace that follows it.
fn next_word(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(is_ruby_space);
    match s.find(is_ruby_space) {
        Some(end) => (&s[..end], s[end..].trim_start_matches(is_ruby_space)),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_frames_split_into_words_as_ruby_does() {
        let frames = [
            "0 1 QUJD",
            "0 1 QUJD\n",
            " \t0\x0b1\x0cQUJD\r\n ",
            "-1 22 QUJD",
            "0 1",
            "0",
            "",
            "   ",
            "0 1 QUJD QUJD",
            "0 1 QUJD \t QUJD \n",
            "0 1 QU\rJD",
            "0 1 QU\x0bJD",
            "0 1 é",
            "0\n1\nQUJD\nx",
        ];
        for frame in frames {
            let words: Vec<&str> = ruby_words(frame).collect();
            let expected = match words[..] {
                [a, b, c] => Ok([a, b, c]),
                _ => Err(words.len()),
            };
            assert_eq!(three_words(frame), expected, "{frame:?}");
        }
        let long = format!("0 7 {}\n", "QUJD".repeat(10_000));
        assert_eq!(three_words(&long).map(|w| w[2].len()), Ok(40_000));
        assert_eq!(
            ResultFrame::parse(b"0 7 QUJD QUJD"),
            Err(FrameError::WordCount { words: 4 })
        );
    }

    #[test]
    fn result_acknowledgement_lines() {
        assert_eq!(stored_line(0), "STORED  0 -");
        assert_eq!(parse_oned_line(&stored_line(0)), OnedLine::Stored(0));
        assert_eq!(parse_oned_line("stored  17 -\n"), OnedLine::Stored(17));
        assert_eq!(
            parse_oned_line("STORED  x -"),
            OnedLine::Undefined("STORED  x -".into())
        );
        assert_eq!(parse_oned_line(&stored_line(3)).publish_content(), None);
        assert_eq!(forwarded_line(9), "FORWARDED SUCCESS 9 -");
        assert_eq!(parse_forwarded_line("FORWARDED SUCCESS 9 -\r\n"), Some(9));
        for other in [
            "FORWARDED FAILURE 9 -",
            "FORWARDED SUCCESS 0 -",
            "FORWARDED SUCCESS -3 -",
            "JOURNALED SUCCESS 9 -",
            "EXECUTE SUCCESS 9 0 QUJD",
        ] {
            assert_eq!(parse_forwarded_line(other), None, "{other:?}");
        }
        // A reference oned would log it as undefined; it is only sent to oned-lite.
        assert!(matches!(
            parse_driver_line(&forwarded_line(1)),
            DriverLine::Undefined(_)
        ));
    }
}
