//! OpenNebula templates: the text syntax and the XML form (reference §2), printing, and the
//! XML serialisation oned stores (§1.1).
//!
//! A [`Template`] is a multimap of attributes kept in insertion order. An attribute is either
//! a single string value or a vector of key/value pairs sorted by key. [`Template::parse`]
//! accepts what oned accepts and fails with oned's messages, except for a value that opens a
//! quote no later `"` closes, which oned keeps as text and this refuses; [`Template::to_text`]
//! prints a template so that parsing the output gives the same template back.

mod grammar;
mod lexer;
pub(crate) mod xml;

use std::fmt;

/// The value of an attribute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttrValue {
    Single(String),
    /// Key/value pairs, sorted by key (byte-wise), keys unique.
    Vector(Vec<(String, String)>),
}

/// One template attribute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attribute {
    pub name: String,
    pub value: AttrValue,
}

impl Attribute {
    pub fn single(name: impl Into<String>, value: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: AttrValue::Single(value.into()),
        }
    }

    /// A vector attribute; the pairs are sorted by key and a repeated key keeps its first
    /// value, as the text parser builds them.
    pub fn vector<K: Into<String>, V: Into<String>>(
        name: impl Into<String>,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut map = std::collections::BTreeMap::new();
        for (k, v) in pairs {
            map.entry(k.into()).or_insert_with(|| v.into());
        }
        Attribute {
            name: name.into(),
            value: AttrValue::Vector(map.into_iter().collect()),
        }
    }
}

/// A template: attributes in insertion order; names may repeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Template {
    attributes: Vec<Attribute>,
}

/// The tokens of the template grammar, with bison's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    End,
    Equal,
    Comma,
    OBracket,
    CBracket,
    EqualEmpty,
    CData,
    String,
    Variable,
}

impl Token {
    /// All tokens in bison's token-number order.
    pub const ALL: &'static [Token] = &[
        Token::End,
        Token::Equal,
        Token::Comma,
        Token::OBracket,
        Token::CBracket,
        Token::EqualEmpty,
        Token::CData,
        Token::String,
        Token::Variable,
    ];

    /// The name bison prints.
    pub fn name(self) -> &'static str {
        match self {
            Token::End => "$end",
            Token::Equal => "EQUAL",
            Token::Comma => "COMMA",
            Token::OBracket => "OBRACKET",
            Token::CBracket => "CBRACKET",
            Token::EqualEmpty => "EQUAL_EMPTY",
            Token::CData => "CCDATA",
            Token::String => "STRING",
            Token::Variable => "VARIABLE",
        }
    }
}

/// A syntax error as bison reports it. `line` and the columns follow the reference's
/// conventions (§2.4): the columns are 1-based running byte offsets of the last lexeme, the
/// line counts the LFs consumed, starting at 0. Clients must not rely on either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub unexpected: Token,
    /// The tokens the parser state accepts, in token-number order (at most three here).
    pub expected: Vec<Token>,
    pub line: u64,
    pub first_column: usize,
    pub last_column: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "syntax error, unexpected {}", self.unexpected.name())?;
        // Bison lists at most four expected tokens; with more it lists none.
        if !self.expected.is_empty() && self.expected.len() <= 4 {
            let names: Vec<&str> = self.expected.iter().map(|t| t.name()).collect();
            write!(f, ", expecting {}", names.join(" or "))?;
        }
        write!(
            f,
            " at line {}, columns {}:{}",
            self.line, self.first_column, self.last_column
        )
    }
}

/// Why a template could not be parsed or serialised.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The text form has a syntax error.
    #[error("{0}")]
    Syntax(SyntaxError),
    /// A value's first line contains `]]>`; oned aborts without a parser message.
    #[error("a template value contains \"]]>\" on its first line (near column {column})")]
    CData { column: usize },
    /// A value opens a quote and no `"` follows anywhere in the text. oned reads the value
    /// as a bare word, quote included; this parser refuses it. The location is the opening quote's, in the
    /// conventions of [`SyntaxError`].
    #[error("unterminated quoted value at line {line}, columns {first_column}:{last_column}")]
    Unterminated {
        line: u64,
        first_column: usize,
        last_column: usize,
    },
    /// The text starts with `<` and is not a well-formed XML document.
    #[error("XML template malformed: {reason}")]
    XmlMalformed { reason: String },
    /// The template (or hook) cannot be written as well-formed XML.
    #[error("cannot be written as XML: {reason}")]
    NotXml { reason: String },
}

impl TemplateError {
    /// The text oned returns for this error (after the `[method] ` prefix).
    pub fn oned_message(&self) -> String {
        match self {
            TemplateError::Syntax(e) => format!("Parse error: {e}"),
            TemplateError::CData { .. } => "Parse error.".to_owned(),
            TemplateError::Unterminated { .. } => format!("Parse error: {self}"),
            TemplateError::XmlMalformed { .. } => "Parse error: XML Template malformed.".to_owned(),
            TemplateError::NotXml { .. } => "Error transforming the Hook to XML.".to_owned(),
        }
    }
}

/// `isspace` in the C locale.
pub(crate) fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

/// oned's value trim: leading and trailing C-locale whitespace.
pub(crate) fn trim_value(s: &str) -> &str {
    s.trim_matches(is_c_space)
}

/// The parser's only escape: every `\"` becomes `"`, scanning left to right.
pub(crate) fn unescape_quotes(s: &str) -> String {
    s.replace("\\\"", "\"")
}

/// oned's attribute-name rule for top-level names: upper-case (ASCII), then prefix `ONE_`
/// when the name as given does not start with a letter or `_`, or starts with `XML`.
pub(crate) fn fix_top_name(raw: &str) -> String {
    let upper = raw.to_ascii_uppercase();
    let first_ok = raw
        .bytes()
        .next()
        .is_none_or(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || raw.starts_with("XML") {
        format!("ONE_{upper}")
    } else {
        upper
    }
}

impl Template {
    pub fn new() -> Self {
        Template::default()
    }

    /// A template holding these attributes, in this order.
    pub fn from_attributes(attributes: Vec<Attribute>) -> Self {
        Template { attributes }
    }

    /// Parses a template as oned does: the XML form when the first character is `<`, the text
    /// syntax otherwise. Every value is trimmed afterwards.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut attributes = if text.starts_with('<') {
            let root = xml::parse_document(text)
                .map_err(|reason| TemplateError::XmlMalformed { reason })?;
            xml::attributes_from_element(&root)
        } else {
            grammar::parse(text)?
        };
        for attribute in &mut attributes {
            match &mut attribute.value {
                AttrValue::Single(v) => trim_in_place(v),
                AttrValue::Vector(pairs) => pairs.iter_mut().for_each(|(_, v)| trim_in_place(v)),
            }
        }
        Ok(Template { attributes })
    }

    /// Builds a template from the children of an already parsed element (oned's
    /// `from_xml_node`: no trimming).
    pub(crate) fn from_element(element: &xml::Element) -> Template {
        Template {
            attributes: xml::attributes_from_element(element),
        }
    }

    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    pub fn len(&self) -> usize {
        self.attributes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }

    /// Whether any attribute (single or vector) has this name.
    pub fn contains(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| a.name == name)
    }

    /// The value of the first single attribute with this name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find_map(|a| match &a.value {
            AttrValue::Single(v) if a.name == name => Some(v.as_str()),
            _ => None,
        })
    }

    /// The pairs of the first vector attribute with this name.
    pub fn get_vector(&self, name: &str) -> Option<&[(String, String)]> {
        self.attributes.iter().find_map(|a| match &a.value {
            AttrValue::Vector(p) if a.name == name => Some(p.as_slice()),
            _ => None,
        })
    }

    /// Replaces every attribute of this name by one single attribute, placed where the first
    /// of them was (or at the end).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let attribute = Attribute::single(name, value);
        match self.attributes.iter().position(|a| a.name == name) {
            Some(first) => {
                let mut index = 0;
                self.attributes.retain(|a| {
                    let keep = index == first || a.name != name;
                    index += 1;
                    keep
                });
                if let Some(slot) = self.attributes.get_mut(first) {
                    *slot = attribute;
                }
            }
            None => self.attributes.push(attribute),
        }
    }

    /// Removes every attribute of this name; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.attributes.len();
        self.attributes.retain(|a| a.name != name);
        before - self.attributes.len()
    }

    /// Appends an attribute (names may repeat).
    pub fn push(&mut self, attr: Attribute) {
        self.attributes.push(attr);
    }

    /// oned's merge (reference §1.5): every name present in `other` replaces all attributes of
    /// that name; an empty vector in `other` deletes the name without re-adding it.
    pub fn merge(&mut self, other: Template) {
        for attribute in &other.attributes {
            self.remove(&attribute.name);
        }
        for attribute in other.attributes {
            if !matches!(&attribute.value, AttrValue::Vector(p) if p.is_empty()) {
                self.attributes.push(attribute);
            }
        }
    }

    /// Prints the template so that [`Template::parse`] (and oned's parser) reads it back
    /// identically. The text syntax is used whenever it can express the template; names or
    /// keys only the XML form can carry (lower-case vector keys, `-` in names) make it use the
    /// XML form, which `parse` recognises by its leading `<`.
    pub fn to_text(&self) -> String {
        if !self.text_representable() && self.xml_representable() {
            return self.to_xml_form();
        }
        let mut out = String::new();
        for attribute in &self.attributes {
            push_text_name(&attribute.name, &mut out);
            out.push('=');
            match &attribute.value {
                AttrValue::Single(v) => push_quoted(v, &mut out),
                AttrValue::Vector(pairs) if pairs.is_empty() => out.push_str("[]"),
                AttrValue::Vector(pairs) => {
                    out.push('[');
                    for (i, (k, v)) in pairs.iter().enumerate() {
                        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
                        out.push_str(k);
                        out.push('=');
                        push_quoted(v, &mut out);
                    }
                    out.push_str(" ]");
                }
            }
            out.push('\n');
        }
        out
    }

    /// Whether the text syntax can carry every name, key and value exactly.
    fn text_representable(&self) -> bool {
        let name_ok = |n: &str| {
            n.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
                && n.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        };
        let key_ok = |k: &str| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        };
        let value_ok = |v: &str| !v.contains('\0');
        self.attributes.iter().all(|a| {
            name_ok(&a.name)
                && match &a.value {
                    AttrValue::Single(v) => value_ok(v),
                    AttrValue::Vector(p) => {
                        p.iter().all(|(k, v)| key_ok(k) && value_ok(v))
                            && p.windows(2).all(|w| w[0].0 < w[1].0)
                    }
                }
        })
    }

    /// Whether the XML form can carry every name, key and value exactly.
    fn xml_representable(&self) -> bool {
        let name_ok = |n: &str| {
            n.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && !n.bytes().any(|b| b.is_ascii_lowercase())
                && xml::is_xml_name(n)
        };
        let value_ok = |v: &str| v.chars().all(xml::is_xml_char);
        self.attributes.iter().all(|a| {
            name_ok(&a.name)
                && match &a.value {
                    AttrValue::Single(v) => value_ok(v),
                    AttrValue::Vector(p) => {
                        p.iter().all(|(k, v)| xml::is_xml_name(k) && value_ok(v))
                            && p.windows(2).all(|w| w[0].0 < w[1].0)
                    }
                }
        })
    }

    /// The XML form used by `to_text` when the text syntax cannot carry the template.
    fn to_xml_form(&self) -> String {
        // Escaped text rather than CDATA, so that "]]>" and CR survive; an empty value needs
        // an (empty) CDATA node, since an empty element is dropped.
        fn value(v: &str, out: &mut String) {
            if v.is_empty() {
                out.push_str("<![CDATA[]]>");
            } else {
                xml::escape_text(v, out);
            }
        }
        let mut out = String::from("<TEMPLATE>");
        for attribute in &self.attributes {
            let mut name = String::new();
            push_text_name(&attribute.name, &mut name);
            out.push('<');
            out.push_str(&name);
            out.push('>');
            match &attribute.value {
                AttrValue::Single(v) => value(v, &mut out),
                // A child element without content makes an empty vector.
                AttrValue::Vector(pairs) if pairs.is_empty() => out.push_str("<_/>"),
                AttrValue::Vector(pairs) => {
                    for (k, v) in pairs {
                        out.push_str(&format!("<{k}>"));
                        value(v, &mut out);
                        out.push_str(&format!("</{k}>"));
                    }
                }
            }
            out.push_str(&format!("</{name}>"));
        }
        out.push_str("</TEMPLATE>");
        out
    }

    /// The XML oned stores: `<TEMPLATE>` with the attributes sorted byte-wise by name (stable
    /// for repeated names), values in CDATA, vectors as nested elements. Fails when the result
    /// would not be well-formed XML: a value containing `]]>` or a character XML forbids, or
    /// a name or vector key that is not an XML name.
    pub fn to_xml(&self) -> Result<String, TemplateError> {
        self.to_xml_named("TEMPLATE")
    }

    /// [`Template::to_xml`] with another root element name (e.g. `USER_TEMPLATE`).
    pub fn to_xml_named(&self, root: &str) -> Result<String, TemplateError> {
        let not_xml = |reason: String| Err(TemplateError::NotXml { reason });
        if !xml::is_xml_name(root) {
            return not_xml(format!("{root:?} is not an XML name"));
        }
        let cdata = |what: &str, v: &str, out: &mut String| -> Result<(), TemplateError> {
            if v.contains("]]>") {
                return Err(TemplateError::NotXml {
                    reason: format!("the value of {what} contains \"]]>\""),
                });
            }
            if let Some(c) = v.chars().find(|&c| !xml::is_xml_char(c)) {
                return Err(TemplateError::NotXml {
                    reason: format!(
                        "the value of {what} contains U+{:04X}, which XML does not allow",
                        c as u32
                    ),
                });
            }
            out.push_str("<![CDATA[");
            out.push_str(v);
            out.push_str("]]>");
            Ok(())
        };
        let mut sorted: Vec<&Attribute> = self.attributes.iter().collect();
        sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let mut out = format!("<{root}>");
        for attribute in sorted {
            let name = &attribute.name;
            if !xml::is_xml_name(name) {
                return not_xml(format!("attribute name {name:?} is not an XML name"));
            }
            out.push_str(&format!("<{name}>"));
            match &attribute.value {
                AttrValue::Single(v) => cdata(name, v, &mut out)?,
                AttrValue::Vector(pairs) => {
                    for (k, v) in pairs {
                        // oned skips empty keys; any other key must be an element name.
                        if k.is_empty() {
                            continue;
                        }
                        if !xml::is_xml_name(k) {
                            return not_xml(format!(
                                "key {k:?} of vector {name} is not an XML name"
                            ));
                        }
                        out.push_str(&format!("<{k}>"));
                        cdata(&format!("{name}/{k}"), v, &mut out)?;
                        out.push_str(&format!("</{k}>"));
                    }
                }
            }
            out.push_str(&format!("</{name}>"));
        }
        out.push_str(&format!("</{root}>"));
        Ok(out)
    }
}

fn trim_in_place(v: &mut String) {
    let trimmed = trim_value(v);
    if trimmed.len() != v.len() {
        *v = trimmed.to_owned();
    }
}

/// Writes an attribute name so that the parser's `ONE_` rule leaves it unchanged: a stored
/// name starting with `XML` is written with a lower-case `x` (the rule looks at the name as
/// typed, and upper-casing restores it).
fn push_text_name(name: &str, out: &mut String) {
    match name.strip_prefix('X') {
        Some(rest) if name.starts_with("XML") => {
            out.push('x');
            out.push_str(rest);
        }
        _ => out.push_str(name),
    }
}

/// Writes a value as a quoted string the scanner reads back exactly (values are trimmed by
/// the parser, which the padding below relies on):
/// - every `"` becomes `\"`, the parser's only escape;
/// - a value ending in `\` gets a trailing blank, or its closing quote would read as `\"`;
/// - a value containing `]]>` starts with a LF, so that the first line of the value (where
///   the scanner looks for `]]>`) holds only the opening quote.
fn push_quoted(v: &str, out: &mut String) {
    out.push('"');
    if v.contains("]]>") {
        out.push('\n');
    }
    for c in v.chars() {
        if c == '"' {
            out.push_str("\\\"");
        } else {
            out.push(c);
        }
    }
    if v.ends_with('\\') {
        out.push(' ');
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Template::parse(text) {
            Err(e) => e.oned_message(),
            Ok(t) => panic!("{text:?} parsed: {t:?}"),
        }
    }

    #[test]
    fn reference_error_table() {
        assert_eq!(
            err("A=1\n# c"),
            "Parse error: syntax error, unexpected $end, expecting EQUAL or EQUAL_EMPTY at line 1, columns 7:8"
        );
        assert_eq!(
            err("A=1 B\n"),
            "Parse error: syntax error, unexpected $end, expecting EQUAL or EQUAL_EMPTY at line 1, columns 6:7"
        );
        assert_eq!(
            err("A="),
            "Parse error: syntax error, unexpected $end, expecting OBRACKET or CCDATA or STRING at line 0, columns 2:3"
        );
        assert_eq!(
            err("A=[B=1 C=2]"),
            "Parse error: syntax error, unexpected VARIABLE, expecting COMMA or CBRACKET at line 0, columns 8:9"
        );
        assert_eq!(
            err("=1"),
            "Parse error: syntax error, unexpected EQUAL, expecting $end at line 0, columns 1:2"
        );
    }

    #[test]
    fn basic_parse() {
        let t = Template::parse("A = \"  x  \"\nb=[k=1, K=2, a=\"q\"]\nE=\n1A=z\nxmlb=1\nXMLa=2\n")
            .unwrap();
        assert_eq!(t.get("A"), Some("x"));
        assert_eq!(
            t.get_vector("B").unwrap(),
            &[
                ("A".to_string(), "q".to_string()),
                ("K".to_string(), "1".to_string())
            ]
        );
        assert_eq!(t.get("E"), Some(""));
        assert_eq!(t.get("ONE_1A"), Some("z"));
        assert_eq!(t.get("XMLB"), Some("1"));
        assert_eq!(t.get("ONE_XMLA"), Some("2"));
    }

    #[test]
    fn printing_round_trips_awkward_values() {
        let mut t = Template::new();
        for v in [
            "a\"b",
            "x\\",
            "\\\"",
            "p]]>q",
            "line1\nline2",
            "a,b=c#d[e]",
            "é ü",
            "",
            "\"x\"y",
            "]]>",
        ] {
            t.push(Attribute::single("V", v));
        }
        t.push(Attribute::vector("VEC", [("K1", "a\\"), ("K2", "]]>,\"")]));
        t.push(Attribute::single("XMLB", "1"));
        let text = t.to_text();
        assert_eq!(Template::parse(&text).unwrap(), t, "{text}");
    }

    #[test]
    fn xml_form_fallback() {
        let t = Template::parse("<T><a-b>1</a-b><V><k>x</k><k>y</k><K>z</K></V><E><X/></E></T>")
            .unwrap();
        assert_eq!(t.get("A-B"), Some("1"));
        assert_eq!(
            t.get_vector("V").unwrap(),
            &[
                ("K".to_string(), "z".to_string()),
                ("k".to_string(), "y".to_string())
            ]
        );
        assert_eq!(t.get_vector("E").unwrap(), &[] as &[(String, String)]);
        let text = t.to_text();
        assert!(text.starts_with('<'));
        assert_eq!(Template::parse(&text).unwrap(), t);
    }

    #[test]
    fn to_xml_sorted_and_failing() {
        let t =
            Template::parse("STATE=PENDING\nARGUMENTS=a\nB=[Y=1,X=\"\"]\nARGUMENTS=b\n").unwrap();
        assert_eq!(
            t.to_xml().unwrap(),
            "<TEMPLATE><ARGUMENTS><![CDATA[a]]></ARGUMENTS><ARGUMENTS><![CDATA[b]]></ARGUMENTS><B><X><![CDATA[]]></X><Y><![CDATA[1]]></Y></B><STATE><![CDATA[PENDING]]></STATE></TEMPLATE>"
        );
        let t = Template::parse("A=\"x\ny]]>\"").unwrap();
        assert_eq!(
            t.to_xml().unwrap_err().oned_message(),
            "Error transforming the Hook to XML."
        );
        let t = Template::parse("V=[1a=x]").unwrap();
        assert!(t.to_xml().is_err());
    }

    #[test]
    fn merge_rules() {
        let mut t = Template::parse("A=1\nA=2\nB=3\nC=[X=1]\n").unwrap();
        t.merge(Template::parse("A=9\nC=[]\nD=4\n").unwrap());
        assert_eq!(t, Template::parse("B=3\nA=9\nD=4\n").unwrap());
    }
}
