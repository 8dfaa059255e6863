//! `onehook show`: the HOOK INFORMATION block, then either the template and the execution log
//! or, with `-e`, one execution record (reference §9.2).

use crate::exec_table::{HookColumn, render_records};
use crate::short_state::lock_level;
use crate::template_text::template_lines;
use crate::terminal::{Style, Terminal};
use crate::timestamp::{Zone, ruby_to_i, time_to_str};
use crate::xml::Element;

/// Renders a `one.hook.info` document. The output is bytes: decoded arguments, stdout and
/// stderr are shown as they are, even when they are not UTF-8.
pub fn render_hook(
    hook: &Element,
    execution: Option<i64>,
    terminal: &Terminal,
    zone: Zone,
) -> Vec<u8> {
    let style = Style::new(terminal);
    let mut out: Vec<u8> = Vec::new();
    let title = format!("HOOK {} INFORMATION", hook.str_at("ID"));
    push(&mut out, style.header(&format!("{title:<80}"), true));
    push(
        &mut out,
        row("ID", ruby_to_i(hook.str_at("ID")).to_string().as_bytes()),
    );
    push(&mut out, row("NAME", hook.str_at("NAME").as_bytes()));
    push(&mut out, row("TYPE", hook.str_at("TYPE").as_bytes()));
    push(
        &mut out,
        row("LOCK", lock_level(hook.text_at("LOCK/LOCKED")).as_bytes()),
    );
    out.push(b'\n');

    let records: Vec<&Element> = hook
        .child("HOOKLOG")
        .map(|l| l.children_named("HOOK_EXECUTION_RECORD").collect())
        .unwrap_or_default();

    if let Some(wanted) = execution {
        let record = records
            .iter()
            .find(|r| r.str_at("EXECUTION_ID").trim().parse::<i64>() == Ok(wanted));
        match record {
            Some(record) => render_record(&mut out, record, &style, zone),
            None => push(&mut out, format!("Cannot find execution record {wanted}\n")),
        }
        return out;
    }

    push(
        &mut out,
        style.header(&format!("{:<80}", "HOOK TEMPLATE"), false),
    );
    let template = hook
        .child("TEMPLATE")
        .map(template_lines)
        .unwrap_or_default();
    puts(&mut out, template.as_bytes());
    if !records.is_empty() {
        out.push(b'\n');
        push(&mut out, style.header("EXECUTION LOG", false));
        push(
            &mut out,
            render_records(&records, HookColumn::Hidden, terminal, zone),
        );
    }
    out.push(b'\n');
    out
}

fn render_record(out: &mut Vec<u8>, record: &Element, style: &Style, zone: Zone) {
    push(
        out,
        style.header(&format!("{:<80}", "HOOK EXECUTION RECORD"), true),
    );
    let arguments = decode_arguments(record.text_at("ARGUMENTS").unwrap_or(""));
    push(
        out,
        row("EXECUTION ID", record.str_at("EXECUTION_ID").as_bytes()),
    );
    push(
        out,
        row(
            "TIMESTAMP",
            time_to_str(record.str_at("TIMESTAMP"), true, zone).as_bytes(),
        ),
    );
    push(
        out,
        row(
            "COMMAND",
            record.str_at("EXECUTION_RESULT/COMMAND").as_bytes(),
        ),
    );
    push(out, row("ARGUMENTS", &arguments));
    push(
        out,
        row(
            "EXIT CODE",
            record.str_at("EXECUTION_RESULT/CODE").as_bytes(),
        ),
    );
    for (title, path) in [
        ("EXECUTION STDOUT", "EXECUTION_RESULT/STDOUT"),
        ("EXECUTION STDERR", "EXECUTION_RESULT/STDERR"),
    ] {
        out.push(b'\n');
        push(out, style.header(&format!("{title:<80}"), true));
        // The reference prints any element that is present, an empty one as an empty line
        // (it reads as an empty hash, whose text decodes to nothing); an absent one not at all.
        if let Some(element) = record.at(path) {
            let encoded = element.text().unwrap_or("");
            puts(out, &one_proto::encoding::b64_decode_lenient(encoded));
        }
    }
    out.push(b'\n');
}

/// The reference's ARGUMENTS heuristic: every whitespace-separated word that looks like base64
/// (the alphabet, length a multiple of 4, correct padding) is decoded, others are kept; each
/// word is followed by one space.
pub fn decode_arguments(arguments: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for word in arguments.split_whitespace() {
        if looks_like_base64(word) {
            out.extend_from_slice(&one_proto::encoding::b64_decode_lenient(word));
        } else {
            out.extend_from_slice(word.as_bytes());
        }
        out.push(b' ');
    }
    out
}

/// `^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)?$`
fn looks_like_base64(word: &str) -> bool {
    let bytes = word.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';

    match bytes {
        [rest @ .., b'=', b'='] => rest.len() >= 2 && rest.iter().all(alphabet),
        [rest @ .., b'='] => rest.len() >= 3 && rest.iter().all(alphabet),
        all => all.iter().all(alphabet),
    }
}

/// `%-18s: %-20s`, padding counted in characters.
fn row(label: &str, value: &[u8]) -> Vec<u8> {
    let mut line = format!("{label:<18}: ").into_bytes();
    line.extend_from_slice(value);
    let chars = String::from_utf8_lossy(value).chars().count();
    line.extend(std::iter::repeat_n(b' ', 20usize.saturating_sub(chars)));
    line.push(b'\n');
    line
}

fn push(out: &mut Vec<u8>, text: impl AsRef<[u8]>) {
    out.extend_from_slice(text.as_ref());
}

/// Ruby's `puts`: the text and a newline unless it already ends with one.
fn puts(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(text);
    if !text.ends_with(b"\n") {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_words() {
        assert!(looks_like_base64("PFZNPjxJRD4xMjwvSUQ+PC9WTT4="));
        assert!(looks_like_base64("test"));
        assert!(looks_like_base64("ab=="));
        assert!(!looks_like_base64("pending"));
        assert!(!looks_like_base64("a==="));
        assert!(!looks_like_base64("ab=c"));
        assert!(!looks_like_base64("0"));
        assert_eq!(
            decode_arguments("PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending"),
            b"<VM><ID>12</ID></VM> pending ".to_vec()
        );
        assert_eq!(decode_arguments("  "), Vec::<u8>::new());
    }

    #[test]
    fn rows_pad_to_twenty_characters() {
        assert_eq!(
            row("ID", b"3"),
            b"ID                : 3                   \n".to_vec()
        );
        assert_eq!(
            row("NAME", "é".as_bytes()),
            "NAME              : é                   \n"
                .as_bytes()
                .to_vec()
        );
    }
}
