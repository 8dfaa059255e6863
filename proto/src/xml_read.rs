//! Reading the XML documents of the hook subsystem the way the reference's readers do.
//!
//! Two readers live here because the reference uses two:
//! - [`check`] is a strict well-formedness check, the test oned (libxml2) applies before it stores
//!   a hook-log record. A document that passes can be read by any XML parser.
//! - [`parse_lenient`] builds an element tree from anything and never fails, like Nokogiri in
//!   recovery mode, so that the malformed documents a real oned or HEM sends (raw `<` and `&` in
//!   API values, unescaped ARGUMENTS and COMMAND) can still be read. Elements named by a
//!   [`RawRule`] are not parsed: their content is taken verbatim up to their closing tag, so a raw
//!   XML value stays one value instead of becoming child elements.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::encoding::{first_non_xml_char, is_xml_char};

/// Checks that `xml` is a well-formed XML 1.0 document with exactly one root element: the test
/// oned (libxml2) applies to a hook-log record before storing it.
pub fn check_xml_document(xml: &str) -> Result<(), NotWellFormed> {
    check(xml, Shape::Document)
}

/// Checks that `xml` is well-formed element content (any mix of text, elements, CDATA and
/// references), i.e. that it can be embedded in an element as is.
pub fn check_xml_fragment(xml: &str) -> Result<(), NotWellFormed> {
    check(xml, Shape::Fragment)
}

/// Whether the input must be a whole document or may be element content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Exactly one root element, optionally preceded by a declaration, comments and PIs.
    Document,
    /// Element content: any mix of text, elements, CDATA, references, comments and PIs.
    Fragment,
}

/// Why a text is not well-formed XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not well-formed XML at byte {offset}: {reason}")]
pub struct NotWellFormed {
    /// Byte offset in the checked text where the problem was found.
    pub offset: usize,
    /// What is wrong, in words.
    pub reason: String,
}

fn malformed(offset: usize, reason: impl Into<String>) -> NotWellFormed {
    NotWellFormed {
        offset,
        reason: reason.into(),
    }
}

/// Checks that `input` is well-formed XML 1.0 of the given shape.
///
/// On top of quick-xml's tokenizer this checks what libxml2 checks and quick-xml does not: names,
/// characters, references, `]]>` in text, a single root, nothing but whitespace outside it, and
/// the position of the XML declaration and DOCTYPE.
pub(crate) fn check(input: &str, shape: Shape) -> Result<(), NotWellFormed> {
    let mut reader = Reader::from_str(input);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    config.allow_dangling_amp = false;
    config.allow_unmatched_ends = false;
    config.expand_empty_elements = false;
    config.trim_text(false);

    let base = match shape {
        Shape::Document => 0usize,
        Shape::Fragment => 1usize,
    };
    let mut depth = base;
    let mut roots = 0usize;
    loop {
        let at = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                let offset = usize::try_from(reader.error_position()).unwrap_or(at);
                return Err(malformed(offset, e.to_string()));
            }
        };
        match event {
            Event::Start(tag) => {
                check_tag(&tag, at)?;
                if depth == 0 {
                    roots += 1;
                    if roots > 1 {
                        return Err(malformed(at, "more than one root element"));
                    }
                }
                depth += 1;
            }
            Event::Empty(tag) => {
                check_tag(&tag, at)?;
                if depth == 0 {
                    roots += 1;
                    if roots > 1 {
                        return Err(malformed(at, "more than one root element"));
                    }
                }
            }
            Event::End(_) => {
                if depth <= base {
                    return Err(malformed(at, "end tag without a start tag"));
                }
                depth -= 1;
            }
            Event::Text(text) => {
                let text = as_str(&text, at)?;
                check_chars(text, at)?;
                if let Some(p) = text.find("]]>") {
                    return Err(malformed(at + p, "']]>' is not allowed in text"));
                }
                if depth == 0 && !text.chars().all(is_xml_space) {
                    return Err(malformed(at, "text outside the root element"));
                }
            }
            Event::CData(data) => {
                if depth == 0 {
                    return Err(malformed(at, "CDATA outside the root element"));
                }
                check_chars(as_str(&data, at)?, at)?;
            }
            Event::GeneralRef(reference) => {
                if depth == 0 {
                    return Err(malformed(at, "reference outside the root element"));
                }
                let name = as_str(&reference, at)?;
                if decode_reference(name).is_none() {
                    return Err(malformed(
                        at,
                        format!("undefined or invalid reference &{name};"),
                    ));
                }
            }
            Event::Comment(comment) => check_chars(as_str(&comment, at)?, at)?,
            Event::Decl(_) => {
                if shape == Shape::Fragment || at != 0 {
                    return Err(malformed(at, "XML declaration not at the start"));
                }
            }
            Event::PI(pi) => {
                if pi.target().eq_ignore_ascii_case(b"xml") {
                    return Err(malformed(at, "XML declaration not at the start"));
                }
                check_chars(as_str(&pi, at)?, at)?;
            }
            Event::DocType(_) => {
                if shape == Shape::Fragment || depth > 0 || roots > 0 {
                    return Err(malformed(at, "DOCTYPE not allowed here"));
                }
            }
            Event::Eof => break,
        }
    }
    if depth != base {
        return Err(malformed(input.len(), "element not closed"));
    }
    if shape == Shape::Document && roots == 0 {
        return Err(malformed(input.len(), "no root element"));
    }
    Ok(())
}

fn as_str(bytes: &[u8], at: usize) -> Result<&str, NotWellFormed> {
    std::str::from_utf8(bytes).map_err(|_| malformed(at, "invalid UTF-8"))
}

fn check_chars(text: &str, at: usize) -> Result<(), NotWellFormed> {
    let Some(p) = first_non_xml_char(text) else {
        return Ok(());
    };
    let c = text[p..].chars().next().unwrap_or('\u{FFFD}');
    Err(malformed(
        at + p,
        format!("character U+{:04X} is not allowed in XML", u32::from(c)),
    ))
}

fn check_tag(tag: &BytesStart<'_>, at: usize) -> Result<(), NotWellFormed> {
    let qname = tag.name();
    let name = as_str(qname.as_ref(), at)?;
    if !is_xml_name(name) {
        return Err(malformed(at, format!("invalid element name {name:?}")));
    }
    for attribute in tag.attributes().with_checks(true) {
        let attribute = attribute.map_err(|e| malformed(at, e.to_string()))?;
        let key = as_str(attribute.key.as_ref(), at)?;
        if !is_xml_name(key) {
            return Err(malformed(at, format!("invalid attribute name {key:?}")));
        }
        let value = as_str(&attribute.value, at)?;
        check_chars(value, at)?;
        if value.contains('<') {
            return Err(malformed(at, "'<' in an attribute value"));
        }
        let mut rest = value;
        while let Some(amp) = rest.find('&') {
            let after = &rest[amp + 1..];
            let Some(semi) = after.find(';') else {
                return Err(malformed(
                    at,
                    "'&' without a reference in an attribute value",
                ));
            };
            if decode_reference(&after[..semi]).is_none() {
                return Err(malformed(at, "invalid reference in an attribute value"));
            }
            rest = &after[semi + 1..];
        }
    }
    Ok(())
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | 'a'..='z' | '_' | ':'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// The XML `Name` production.
pub(crate) fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// Resolves the name of a reference (between `&` and `;`): the five predefined entities and
/// character references to characters XML allows.
fn decode_reference(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix('x') {
                Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u32::from_str_radix(hex, 16).ok()?
                }
                Some(_) => return None,
                None if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
                    number.parse().ok()?
                }
                None => return None,
            };
            char::from_u32(code).filter(|c| is_xml_char(*c))
        }
    }
}

/// Appends `raw` text to `out`, resolving valid references and normalising line ends as an XML
/// reader does. A `&` that does not start a valid reference is kept literally (recovery).
fn push_text_lenient(raw: &str, out: &mut String) {
    let mut rest = raw;
    while let Some(p) = rest.find(['&', '\r']) {
        out.push_str(&rest[..p]);
        let tail = &rest[p..];
        if let Some(after_cr) = tail.strip_prefix('\r') {
            out.push('\n');
            rest = after_cr.strip_prefix('\n').unwrap_or(after_cr);
            continue;
        }
        let after = &tail[1..];
        // References are short; looking further would make broken input quadratic.
        let resolved = after
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .and_then(|(semi, _)| decode_reference(&after[..semi]).map(|c| (c, semi)));
        match resolved {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

fn push_cdata(raw: &str, out: &mut String) {
    let mut rest = raw;
    while let Some(p) = rest.find('\r') {
        out.push_str(&rest[..p]);
        out.push('\n');
        let after = &rest[p + 1..];
        rest = after.strip_prefix('\n').unwrap_or(after);
    }
    out.push_str(rest);
}

/// Reads element content that should be plain text: if it is well-formed text (character data,
/// valid references, CDATA sections, nothing else) the decoded text is returned; otherwise the
/// content is taken verbatim, which is what the reference wrote before it failed to escape it.
pub(crate) fn text_or_raw(content: &str) -> String {
    strict_text(content).unwrap_or_else(|| content.to_string())
}

fn strict_text(content: &str) -> Option<String> {
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>")?;
            let data = &after[..end];
            if first_non_xml_char(data).is_some() {
                return None;
            }
            push_cdata(data, &mut out);
            rest = &after[end + 3..];
            continue;
        }
        if rest.starts_with('<') {
            return None;
        }
        let end = rest.find('<').unwrap_or(rest.len());
        let chunk = &rest[..end];
        if chunk.contains("]]>") || !chunk.chars().all(is_xml_char) {
            return None;
        }
        // Every `&` must start a valid reference.
        let mut scan = chunk;
        while let Some(amp) = scan.find('&') {
            let after = &scan[amp + 1..];
            let semi = after.find(';')?;
            decode_reference(&after[..semi])?;
            scan = &after[semi + 1..];
        }
        push_text_lenient(chunk, &mut out);
        rest = &rest[end..];
    }
    Some(out)
}

/// An element whose content the lenient reader takes verbatim.
///
/// The content ends at the first `end` that is directly followed by `follow` (the way the
/// reference always continues), else at the first `end`, else at `limit`, else at the end of
/// the input; searches never go past the first `limit` after the start tag.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRule {
    /// Name of the parent element, `None` for a top-level element.
    pub parent: Option<&'static str>,
    pub name: &'static str,
    /// The closing tag, e.g. `</VALUE>`.
    pub end: &'static str,
    /// The closing tag and what the reference writes right after it, e.g. `</VALUE></PARAMETER>`.
    pub end_and_follow: &'static str,
    /// A string the content is assumed never to cross, e.g. `</HOOK_EXECUTION_RECORD>`.
    pub limit: Option<&'static str>,
}

/// One element of a leniently read document.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    pub name: &'a str,
    /// The element as written, from `<` of the start tag to `>` of the end tag.
    pub outer: &'a str,
    /// The content between the tags, as written.
    pub inner: &'a str,
    pub children: Vec<Node<'a>>,
    /// The element's own text and CDATA, decoded (empty for raw elements).
    pub text: String,
    /// The content was taken verbatim by a [`RawRule`] and not parsed.
    pub raw: bool,
}

impl<'a> Node<'a> {
    pub fn child(&self, name: &str) -> Option<&Node<'a>> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Node<'a>> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of a scalar element: decoded for parsed elements, `text_or_raw` for raw ones.
    pub fn value(&self) -> String {
        if self.raw {
            text_or_raw(self.inner)
        } else {
            self.text.clone()
        }
    }

    /// The first descendant (or self) with that name, in document order.
    pub fn find(&self, name: &str) -> Option<&Node<'a>> {
        if self.name == name {
            return Some(self);
        }
        // Iterative to stay safe on deeply nested input.
        let mut stack: Vec<&Node<'a>> = self.children.iter().rev().collect();
        while let Some(node) = stack.pop() {
            if node.name == name {
                return Some(node);
            }
            stack.extend(node.children.iter().rev());
        }
        None
    }
}

/// Deeper start tags are ignored rather than nested, which bounds the work on hostile input.
const MAX_DEPTH: usize = 256;

struct Open<'a> {
    name: &'a str,
    start: usize,
    content_start: usize,
    children: Vec<Node<'a>>,
    text: String,
}

impl<'a> Open<'a> {
    fn close(self, input: &'a str, content_end: usize, end: usize) -> Node<'a> {
        Node {
            name: self.name,
            outer: input.get(self.start..end).unwrap_or_default(),
            inner: input
                .get(self.content_start..content_end)
                .unwrap_or_default(),
            children: self.children,
            text: self.text,
            raw: false,
        }
    }
}

/// Remembers where each pattern was last found so that repeated searches from increasing
/// positions stay linear on input that lacks the pattern.
#[derive(Default)]
struct Finder<'p> {
    cache: HashMap<&'p str, (usize, Option<usize>)>,
}

impl<'p> Finder<'p> {
    fn find(&mut self, haystack: &str, pattern: &'p str, from: usize) -> Option<usize> {
        if let Some(&(searched_from, found)) = self.cache.get(pattern)
            && searched_from <= from
        {
            match found {
                None => return None,
                Some(p) if p >= from => return Some(p),
                Some(_) => {}
            }
        }
        let found = haystack
            .get(from..)
            .and_then(|tail| tail.find(pattern))
            .map(|p| p + from);
        self.cache.insert(pattern, (from, found));
        found
    }
}

/// Reads every top-level element of `input`, recovering from anything: a `<` that starts no
/// markup is text, a `&` that starts no valid reference is text, an end tag closes the nearest
/// open element of that name (and everything opened inside it) or is dropped, and elements left
/// open at the end are closed there. Text outside elements is dropped.
pub(crate) fn parse_lenient<'a>(input: &'a str, rules: &[RawRule]) -> Vec<Node<'a>> {
    let bytes = input.as_bytes();
    let len = bytes.len();
    let mut finder = Finder::default();
    let mut roots: Vec<Node<'a>> = Vec::new();
    let mut stack: Vec<Open<'a>> = Vec::new();
    let mut i = 0usize;

    fn attach<'a>(stack: &mut [Open<'a>], roots: &mut Vec<Node<'a>>, node: Node<'a>) {
        match stack.last_mut() {
            Some(parent) => parent.children.push(node),
            None => roots.push(node),
        }
    }

    while i < len {
        if bytes[i] != b'<' {
            let end = input[i..].find('<').map_or(len, |p| p + i);
            if let Some(top) = stack.last_mut() {
                push_text_lenient(&input[i..end], &mut top.text);
            }
            i = end;
            continue;
        }
        let rest = &input[i..];
        if rest.starts_with("<!--") {
            i = finder.find(input, "-->", i + 4).map_or(len, |p| p + 3);
            continue;
        }
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let start = i + 9;
            let end = finder.find(input, "]]>", start);
            let data = match end {
                Some(p) => &input[start..p],
                None => after,
            };
            if let Some(top) = stack.last_mut() {
                push_cdata(data, &mut top.text);
            }
            i = end.map_or(len, |p| p + 3);
            continue;
        }
        if rest.starts_with("<?") {
            i = finder.find(input, "?>", i + 2).map_or(len, |p| p + 2);
            continue;
        }
        if rest.starts_with("<!") {
            i = input[i..].find('>').map_or(len, |p| p + i + 1);
            continue;
        }
        if let Some(after) = rest.strip_prefix("</") {
            let name_len = after
                .char_indices()
                .find(|(_, c)| !is_name_char(*c))
                .map_or(after.len(), |(p, _)| p);
            let name = &after[..name_len];
            let gt = after[name_len..]
                .find(['>', '<'])
                .filter(|p| after.as_bytes().get(name_len + p) == Some(&b'>'))
                .map(|p| i + 2 + name_len + p);
            let Some(gt) = gt else {
                // An end tag that never closes is text.
                if let Some(top) = stack.last_mut() {
                    top.text.push('<');
                }
                i += 1;
                continue;
            };
            if let Some(index) = stack.iter().rposition(|open| open.name == name) {
                while stack.len() > index + 1 {
                    if let Some(inner) = stack.pop() {
                        let node = inner.close(input, i, i);
                        attach(&mut stack, &mut roots, node);
                    }
                }
                if let Some(open) = stack.pop() {
                    let node = open.close(input, i, gt + 1);
                    attach(&mut stack, &mut roots, node);
                }
            }
            i = gt + 1;
            continue;
        }
        let after = &rest[1..];
        if after.chars().next().is_some_and(is_name_start) {
            let name_len = after
                .char_indices()
                .find(|(_, c)| !is_name_char(*c))
                .map_or(after.len(), |(p, _)| p);
            let name_end = i + 1 + name_len;
            // The tag ends at the next `>`; a `<` first means this was no tag.
            let gt = input[name_end..]
                .find(['>', '<'])
                .map(|p| p + name_end)
                .filter(|p| bytes[*p] == b'>');
            if let Some(gt) = gt {
                let name = &input[i + 1..name_end];
                let self_closing = gt > name_end && bytes[gt - 1] == b'/';
                if self_closing {
                    let node = Node {
                        name,
                        outer: &input[i..gt + 1],
                        inner: "",
                        children: Vec::new(),
                        text: String::new(),
                        raw: false,
                    };
                    if stack.len() < MAX_DEPTH {
                        attach(&mut stack, &mut roots, node);
                    }
                    i = gt + 1;
                    continue;
                }
                let parent = stack.last().map(|open| open.name);
                let rule = rules
                    .iter()
                    .find(|rule| rule.name == name && rule.parent == parent);
                if let Some(rule) = rule {
                    let start = gt + 1;
                    let limit = rule
                        .limit
                        .and_then(|l| finder.find(input, l, start))
                        .unwrap_or(len);
                    let close = finder
                        .find(input, rule.end_and_follow, start)
                        .filter(|p| *p < limit)
                        .or_else(|| finder.find(input, rule.end, start).filter(|p| *p < limit));
                    let (content_end, end) = match close {
                        Some(p) => (p, p + rule.end.len()),
                        None => (limit, limit),
                    };
                    let node = Node {
                        name,
                        outer: &input[i..end],
                        inner: &input[start..content_end],
                        children: Vec::new(),
                        text: String::new(),
                        raw: true,
                    };
                    if stack.len() < MAX_DEPTH {
                        attach(&mut stack, &mut roots, node);
                    }
                    i = end;
                    continue;
                }
                if stack.len() < MAX_DEPTH {
                    stack.push(Open {
                        name,
                        start: i,
                        content_start: gt + 1,
                        children: Vec::new(),
                        text: String::new(),
                    });
                }
                i = gt + 1;
                continue;
            }
        }
        // A `<` that starts no markup.
        if let Some(top) = stack.last_mut() {
            top.text.push('<');
        }
        i += 1;
    }
    while let Some(open) = stack.pop() {
        let node = open.close(input, len, len);
        attach(&mut stack, &mut roots, node);
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed() {
        for ok in [
            "<A/>",
            "<?xml version=\"1.0\"?><A>x</A>",
            "<A b=\"1\" c='&amp;'><B>&lt;&#60;&#x3C;</B><![CDATA[<&]]><!-- c --></A>\n",
            "<!DOCTYPE A><A/>",
            "<A>é ]] > </A>",
        ] {
            assert_eq!(check(ok, Shape::Document), Ok(()), "{ok}");
        }
        for ok in ["", "text", "<A/><B/>", "a &amp; b<C>x</C>", "<![CDATA[x]]>"] {
            assert_eq!(check(ok, Shape::Fragment), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "text",
            "<A>",
            "<A></B>",
            "<A/><B/>",
            "<A>a & b</A>",
            "<A>a &foo; b</A>",
            "<A>a < b</A>",
            "<A>x ]]> y</A>",
            "<A>\u{1}</A>",
            "<A>&#1;</A>",
            "<A b=\"<\"/>",
            "<A b=c/>",
            "<A b=\"1\" b=\"2\"/>",
            "<1A/>",
            "<A><?xml version=\"1.0\"?></A>",
            "<A/>junk",
            "</A>",
            "<A><!-- a -- b --></A>",
        ] {
            assert!(check(bad, Shape::Document).is_err(), "{bad:?}");
        }
        for bad in ["</A>", "<A>", "a & b", "x]]>", "<?xml version=\"1.0\"?>"] {
            assert!(check(bad, Shape::Fragment).is_err(), "{bad:?}");
        }
    }

    const VALUE_RULE: RawRule = RawRule {
        parent: Some("P"),
        name: "VALUE",
        end: "</VALUE>",
        end_and_follow: "</VALUE></P>",
        limit: None,
    };

    #[test]
    fn lenient_tree() {
        let input = "<R><A>a &amp; b & c < d</A><B><C/>x</B><D>unclosed</R>";
        let roots = parse_lenient(input, &[]);
        assert_eq!(roots.len(), 1);
        let r = &roots[0];
        assert_eq!(r.outer, input);
        assert_eq!(r.child("A").unwrap().text, "a & b & c < d");
        assert_eq!(r.child("B").unwrap().inner, "<C/>x");
        assert_eq!(r.child("B").unwrap().child("C").unwrap().outer, "<C/>");
        assert_eq!(r.child("D").unwrap().inner, "unclosed");
        assert_eq!(r.find("C").unwrap().name, "C");
    }

    #[test]
    fn raw_rule_takes_content_verbatim() {
        let input = "<P><VALUE><H><ID>5</ID></H> & <x</VALUE></P><P><VALUE>a &amp; b</VALUE></P>";
        let roots = parse_lenient(input, &[VALUE_RULE]);
        assert_eq!(roots.len(), 2);
        let v = roots[0].child("VALUE").unwrap();
        assert!(v.raw);
        assert_eq!(v.value(), "<H><ID>5</ID></H> & <x");
        assert_eq!(roots[1].child("VALUE").unwrap().value(), "a & b");
    }

    #[test]
    fn text_or_raw_decodes_only_clean_text() {
        assert_eq!(text_or_raw("a &amp; b"), "a & b");
        assert_eq!(text_or_raw("<![CDATA[x < y]]> z"), "x < y z");
        assert_eq!(text_or_raw("a & b"), "a & b");
        assert_eq!(text_or_raw("a &amp; <b/>"), "a &amp; <b/>");
        assert_eq!(text_or_raw("x\r\ny&#13;"), "x\ny\r");
    }
}
