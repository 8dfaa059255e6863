//! Base64 in the three flavours the hook subsystem uses, and XML text escaping.
//!
//! - Strict base64 (RFC 4648, padded, no line breaks) is what oned, the driver and the HEM put on
//!   the wire. oned decodes it with OpenSSL's `EVP_DecodeBlock`, which rejects anything that is not
//!   a whole number of 4-character groups of the alphabet: [`b64_decode_strict`] mirrors that.
//! - Lenient decoding is what the Ruby driver and HEM do (`Base64.decode64`): characters outside the
//!   alphabet are skipped and decoding stops at padding. See [`b64_decode_lenient`].
//! - MIME base64 (`Base64.encode64`) is used for the STDOUT and STDERR of hook results: 60
//!   characters per line, every line terminated by LF.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

/// Why a string is not strict base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length is not a multiple of 4 (oned's decoder needs whole groups).
    #[error("base64 length {len} is not a multiple of 4")]
    InvalidLength {
        /// Length of the input in bytes.
        len: usize,
    },
    /// A byte outside the base64 alphabet (whitespace and line breaks included).
    #[error("invalid base64 byte 0x{byte:02x} at offset {offset}")]
    InvalidByte {
        /// Offset of the byte in the input.
        offset: usize,
        /// The byte itself.
        byte: u8,
    },
    /// Padding (`=`) somewhere other than the last one or two positions.
    #[error("misplaced base64 padding at offset {offset}")]
    InvalidPadding {
        /// Offset of the first misplaced `=`.
        offset: usize,
    },
}

/// The strict decoder. Trailing bits that are not zero are accepted, as OpenSSL does.
const STRICT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Strict base64: standard alphabet, padded, no line breaks.
pub fn b64_encode(data: &[u8]) -> String {
    general_purpose::STANDARD.encode(data)
}

/// Decodes strict base64 the way oned does: the length must be a multiple of 4, every byte must
/// belong to the alphabet (no whitespace, no line breaks), and `=` may only pad the last group.
/// The empty string decodes to nothing.
pub fn b64_decode_strict(s: &str) -> Result<Vec<u8>, DecodeError> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(DecodeError::InvalidLength { len: bytes.len() });
    }
    // Well-formed input, the usual case, decodes in one pass: the engine refuses every input
    // `check_strict` refuses, and that check then names the offending byte.
    if let Ok(decoded) = STRICT.decode(bytes) {
        return Ok(decoded);
    }
    let body_end = check_strict(bytes)?;
    Err(DecodeError::InvalidPadding { offset: body_end })
}

/// Checks base64 whose length is a multiple of 4 byte by byte: where its padding starts, or the
/// exact offending byte.
fn check_strict(bytes: &[u8]) -> Result<usize, DecodeError> {
    let body_len = bytes
        .iter()
        .rev()
        .take(2)
        .take_while(|b| **b == b'=')
        .count();
    let body_end = bytes.len() - body_len;
    for (offset, &byte) in bytes.iter().enumerate() {
        if byte == b'=' {
            if offset < body_end {
                return Err(DecodeError::InvalidPadding { offset });
            }
        } else if b64_value(byte).is_none() {
            return Err(DecodeError::InvalidByte { offset, byte });
        }
    }
    Ok(body_end)
}

/// Decodes like Ruby's `Base64.decode64` (`unpack1("m")`): bytes outside the alphabet are skipped,
/// decoding stops at the first `=` that stands in the third or fourth place of a group, and a final
/// incomplete group yields the bytes it fully determines. Never fails.
pub fn b64_decode_lenient(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 2);
    let mut i = 0;
    // Finds the next alphabet value; `stop_at_pad` makes `=` end the whole decode.
    let next = |i: &mut usize, stop_at_pad: bool| -> Next {
        while *i < bytes.len() {
            let b = bytes[*i];
            *i += 1;
            if let Some(v) = b64_value(b) {
                return Next::Value(v);
            }
            if stop_at_pad && b == b'=' {
                return Next::Stop;
            }
        }
        Next::Stop
    };
    while let Next::Value(a) = next(&mut i, false) {
        let Next::Value(b) = next(&mut i, false) else {
            break;
        };
        let Next::Value(c) = next(&mut i, true) else {
            out.push((a << 2) | (b >> 4));
            break;
        };
        let Next::Value(d) = next(&mut i, true) else {
            out.push((a << 2) | (b >> 4));
            out.push((b << 4) | (c >> 2));
            break;
        };
        out.push((a << 2) | (b >> 4));
        out.push((b << 4) | (c >> 2));
        out.push((c << 6) | d);
    }
    out
}

enum Next {
    Value(u8),
    Stop,
}

fn b64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// MIME base64 like Ruby's `Base64.encode64`: lines of 60 characters (45 input bytes), every line
/// ending in LF including the last one. Empty input gives the empty string.
pub fn b64_mime(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4 + data.len() / 45 + 1);
    for chunk in data.chunks(45) {
        general_purpose::STANDARD.encode_string(chunk, &mut out);
        out.push('\n');
    }
    out
}

/// Decodes MIME base64 (line breaks and anything else outside the alphabet are skipped), which is
/// how the CLI reads a record's STDOUT and STDERR.
pub fn b64_mime_decode(s: &str) -> Vec<u8> {
    b64_decode_lenient(s)
}

/// Whether `c` may appear in an XML 1.0 document at all (the `Char` production).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The byte index of the first character of `s` that XML 1.0 cannot carry (`!is_xml_char`):
/// a C0 control other than TAB, LF and CR, U+FFFE or U+FFFF (valid UTF-8 holds no others).
/// Scans bytes; the same answer as testing every character, much faster on long text.
pub fn first_non_xml_char(s: &str) -> Option<usize> {
    next_stop(s.as_bytes(), 0, false)
}

/// The index, from `from` on, of the first byte of `bytes` (valid UTF-8) that starts a
/// character XML cannot carry (a C0 control other than TAB, LF and CR; `EF BF BE` or
/// `EF BF BF`, U+FFFE and U+FFFF, the only such characters valid UTF-8 outside the C0 range
/// can hold), or, with `markup`, one that text must escape (`&`, `<`, `>`, CR).
///
/// Texts are mostly long runs of bytes that need nothing (base64, plain XML), so they are looked
/// at 16 bytes at a time with a test that branches once per block (the compiler turns it into
/// vector compares); only a block with a possible stop is looked at byte by byte.
fn next_stop(bytes: &[u8], from: usize, markup: bool) -> Option<usize> {
    const BLOCK: usize = 16;
    // Markup-rich text (XML bodies) has a stop every few bytes: the first block is looked at
    // byte by byte straight away.
    let mut at = (from + BLOCK).min(bytes.len());
    if let Some(stop) = exact_stop(bytes, from.min(at), at, markup) {
        return Some(stop);
    }
    // A superset of the stops: every C0 control (TAB and LF too) and every 0xEF.
    let maybe =
        |b: u8| (b < 0x20) | (b == 0xEF) | (markup & ((b == b'&') | (b == b'<') | (b == b'>')));
    for block in bytes[at..].chunks_exact(BLOCK) {
        if block.iter().fold(false, |any, &b| any | maybe(b))
            && let Some(stop) = exact_stop(bytes, at, at + BLOCK, markup)
        {
            return Some(stop);
        }
        at += BLOCK;
    }
    exact_stop(bytes, at, bytes.len(), markup)
}

/// [`next_stop`] within `bytes[from..to]`, byte by byte.
#[inline(always)]
fn exact_stop(bytes: &[u8], from: usize, to: usize, markup: bool) -> Option<usize> {
    (from..to).find(|&i| match bytes[i] {
        b'&' | b'<' | b'>' | b'\r' => markup,
        b'\t' | b'\n' => false,
        0..0x20 => true,
        0xEF => is_non_character(bytes, i),
        _ => false,
    })
}

/// Whether `bytes[i..]` starts with the encoding of U+FFFE or U+FFFF.
fn is_non_character(bytes: &[u8], i: usize) -> bool {
    bytes.get(i) == Some(&0xEF)
        && bytes.get(i + 1) == Some(&0xBF)
        && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
}

/// Escapes text for element content so that a reader taking the element's text gets `s` back.
///
/// `&`, `<` and `>` become entity references and CR becomes `&#13;` (a raw CR would be turned into
/// LF by every XML reader). Characters that XML 1.0 cannot carry at all (C0 controls other than
/// TAB, LF and CR, U+FFFE, U+FFFF) are replaced by U+FFFD so that the document stays well-formed:
/// a reference parser would reject the whole document otherwise. Quotes are left alone because
/// the result is only ever used as element content.
pub fn xml_escape(s: &str) -> Cow<'_, str> {
    match next_stop(s.as_bytes(), 0, true) {
        None => Cow::Borrowed(s),
        Some(first) => {
            let mut out = String::with_capacity(s.len() + 16);
            push_escaped(&mut out, s, first);
            Cow::Owned(out)
        }
    }
}

/// Appends `s` to `out`, escaped as [`xml_escape`] does.
///
/// Scans bytes, not characters: everything outside the few bytes that can need a change is
/// copied in runs, which matters for the kilobytes of base64 and XML that results and
/// XML-RPC responses carry.
pub fn xml_escape_into(out: &mut String, s: &str) {
    match next_stop(s.as_bytes(), 0, true) {
        None => out.push_str(s),
        Some(first) => push_escaped(out, s, first),
    }
}

/// Appends `s` escaped, given `first`, the position of its first byte to escape.
fn push_escaped(out: &mut String, s: &str, first: usize) {
    let bytes = s.as_bytes();
    let mut copied = 0;
    let mut next = Some(first);
    while let Some(at) = next {
        out.push_str(&s[copied..at]);
        let (replacement, len) = match bytes[at] {
            b'&' => ("&amp;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'\r' => ("&#13;", 1),
            // U+FFFE and U+FFFF, three bytes each.
            0xEF => ("\u{FFFD}", 3),
            // The other C0 controls (next_stop never stops at TAB or LF).
            _ => ("\u{FFFD}", 1),
        };
        out.push_str(replacement);
        copied = at + len;
        next = next_stop(bytes, copied, true);
    }
    out.push_str(&s[copied..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_round_trip_and_padding() {
        assert_eq!(b64_encode(b""), "");
        assert_eq!(b64_encode(b"A"), "QQ==");
        assert_eq!(
            b64_encode(b"<VM><ID>12</ID></VM>"),
            "PFZNPjxJRD4xMjwvSUQ+PC9WTT4="
        );
        assert_eq!(b64_decode_strict("QQ==").unwrap(), b"A");
        assert_eq!(b64_decode_strict("QUI=").unwrap(), b"AB");
        assert_eq!(b64_decode_strict("").unwrap(), b"");
    }

    #[test]
    fn strict_rejects_what_oned_rejects() {
        assert_eq!(
            b64_decode_strict("QQ="),
            Err(DecodeError::InvalidLength { len: 3 })
        );
        assert_eq!(
            b64_decode_strict("QQ"),
            Err(DecodeError::InvalidLength { len: 2 })
        );
        assert_eq!(
            b64_decode_strict("QUJD\nQUJD"),
            Err(DecodeError::InvalidLength { len: 9 })
        );
        assert_eq!(
            b64_decode_strict("QU D"),
            Err(DecodeError::InvalidByte {
                offset: 2,
                byte: b' '
            })
        );
        assert_eq!(
            b64_decode_strict("QU-D"),
            Err(DecodeError::InvalidByte {
                offset: 2,
                byte: b'-'
            })
        );
        assert_eq!(
            b64_decode_strict("Q=QD"),
            Err(DecodeError::InvalidPadding { offset: 1 })
        );
        assert_eq!(
            b64_decode_strict("QQ==QUJD"),
            Err(DecodeError::InvalidPadding { offset: 2 })
        );
        assert_eq!(
            b64_decode_strict("Q==="),
            Err(DecodeError::InvalidPadding { offset: 1 })
        );
    }

    /// The byte-by-byte check first, then the engine: what the one-pass decode must agree with.
    fn check_then_decode(s: &str) -> Result<Vec<u8>, DecodeError> {
        let bytes = s.as_bytes();
        if !bytes.len().is_multiple_of(4) {
            return Err(DecodeError::InvalidLength { len: bytes.len() });
        }
        let body_end = check_strict(bytes)?;
        STRICT
            .decode(bytes)
            .map_err(|_| DecodeError::InvalidPadding { offset: body_end })
    }

    #[test]
    fn strict_decodes_and_refuses_exactly_as_checking_first_does() {
        const SYMBOLS: &[u8] = b"AQw/+=- \n";
        let mut checked = 0;
        for len in [4usize, 8] {
            // Every string of `len` symbols for 4; for 8, a fixed valid half and every other half.
            let combos = SYMBOLS.len().pow(4);
            for n in 0..combos {
                let mut quad = Vec::with_capacity(4);
                let mut k = n;
                for _ in 0..4 {
                    quad.push(SYMBOLS[k % SYMBOLS.len()]);
                    k /= SYMBOLS.len();
                }
                let inputs = if len == 4 {
                    vec![quad.clone()]
                } else {
                    vec![
                        [b"QUJD".as_slice(), &quad].concat(),
                        [&quad, b"QQ==".as_slice()].concat(),
                    ]
                };
                for input in inputs {
                    let text = String::from_utf8(input).expect("ASCII");
                    assert_eq!(
                        b64_decode_strict(&text),
                        check_then_decode(&text),
                        "{text:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000);
    }

    #[test]
    fn strict_accepts_nonzero_trailing_bits_like_openssl() {
        assert_eq!(b64_decode_strict("QR==").unwrap(), b"A");
    }

    #[test]
    fn lenient_is_ruby_decode64() {
        assert_eq!(b64_decode_lenient("UkV4\nZWN1\n"), b"RExecu");
        assert_eq!(b64_decode_lenient("QUJD "), b"ABC");
        assert_eq!(b64_decode_lenient("QQ"), b"A");
        assert_eq!(b64_decode_lenient("QUI"), b"AB");
        assert_eq!(b64_decode_lenient("Q"), b"");
        // Decoding stops at padding in the third or fourth place.
        assert_eq!(b64_decode_lenient("QQ==QUJD"), b"A");
        // `=` in the first or second place is simply skipped.
        assert_eq!(b64_decode_lenient("=QUJD"), b"ABC");
        assert_eq!(b64_decode_lenient("Q=UJD"), b"ABC");
        assert_eq!(b64_decode_lenient("!!!"), b"");
    }

    #[test]
    fn mime_is_ruby_encode64() {
        assert_eq!(b64_mime(b""), "");
        assert_eq!(b64_mime(b"Executed!\n"), "RXhlY3V0ZWQhCg==\n");
        let data = [b'x'; 46];
        let encoded = b64_mime(&data);
        let lines: Vec<&str> = encoded.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), 60);
        assert_eq!(lines[1], "eA==");
        assert!(encoded.ends_with('\n'));
        assert_eq!(b64_mime(&[b'x'; 45]).len(), 61);
        assert_eq!(b64_mime_decode(&encoded), data);
    }

    #[test]
    fn escape() {
        assert!(matches!(xml_escape("plain text é"), Cow::Borrowed(_)));
        assert_eq!(xml_escape("a & b <c> ]]>"), "a &amp; b &lt;c&gt; ]]&gt;");
        assert_eq!(xml_escape("x\r\ny\t\"'"), "x&#13;\ny\t\"'");
        assert_eq!(xml_escape("bell\u{7}"), "bell\u{FFFD}");
    }

    /// The byte scan gives what a character-by-character escape gives, on every character
    /// class it treats apart, including the three-byte non-characters and their neighbours.
    #[test]
    fn escape_matches_the_character_rule() {
        fn by_char(s: &str) -> String {
            s.chars()
                .map(|c| match c {
                    '&' => "&amp;".to_string(),
                    '<' => "&lt;".to_string(),
                    '>' => "&gt;".to_string(),
                    '\r' => "&#13;".to_string(),
                    c if !is_xml_char(c) => '\u{FFFD}'.to_string(),
                    c => c.to_string(),
                })
                .collect()
        }
        let pieces = [
            "a",
            "&",
            "<",
            ">",
            "\r",
            "\n",
            "\t",
            "\u{0}",
            "\u{1f}",
            " ",
            "é",
            "\u{FFFD}",
            "\u{FFFE}",
            "\u{FFFF}",
            "\u{EFBF}",
            "\u{FFBE}",
            "\u{F000}",
            "\u{10000}",
            "\u{10FFFF}",
            "\u{D7FF}",
            "\u{E000}",
            "\u{7f}",
        ];
        // Clean runs around each combination put it at several places relative to the 16-byte
        // blocks of the scan: in the first block, across a block end, in a later block.
        let pads = [(0, 0), (13, 17), (14, 2), (15, 16), (30, 1)];
        for a in pieces {
            for b in pieces {
                for (c, (before, after)) in pieces.iter().flat_map(|c| pads.map(|p| (c, p))) {
                    let s = format!("{}{a}{b}{c}{}", "p".repeat(before), "q".repeat(after));
                    assert_eq!(xml_escape(&s), by_char(&s), "{s:?}");
                    assert_eq!(
                        first_non_xml_char(&s),
                        s.char_indices()
                            .find(|(_, c)| !is_xml_char(*c))
                            .map(|(i, _)| i),
                        "{s:?}"
                    );
                    let mut out = String::from("x");
                    xml_escape_into(&mut out, &s);
                    assert_eq!(out, format!("x{}", by_char(&s)), "{s:?}");
                }
            }
        }
    }
}
