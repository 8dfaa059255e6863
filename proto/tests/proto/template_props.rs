//! Property tests of template printing and serialisation: whatever `parse` can produce,
//! `to_text` prints back to the same template, and `to_xml` reads back as oned would read its
//! stored body.

use std::collections::BTreeMap;

use one_proto::template::{AttrValue, Attribute, Template};
use proptest::prelude::*;

/// C-locale `isspace`, the parser's trim set.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

/// Characters that stress the syntax: quotes, backslashes, line breaks, comment and
/// separator characters, brackets, XML specials, non-ASCII, control characters.
fn awkward_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![
            '"', '\\', '\n', '\r', '\t', ' ', '#', '=', ',', '[', ']', '>', '<', '&', '$', '\'', 'é', '日', '\u{0B}',
            '\u{0C}', '\u{1}', '\u{7F}', '🦀',
        ]),
        3 => prop::char::range('a', 'z'),
        1 => any::<char>().prop_filter("no NUL", |c| *c != '\0'),
    ]
}

/// A value as the parser leaves it: trimmed, without NUL. Fragments such as `]]>` and `\"`
/// are spliced in on purpose.
fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => awkward_char().prop_map(String::from),
            1 => prop::sample::select(vec!["]]>", "\\\"", "\"\"", "\\\\", "\r\n", "# c\n", "=[", "]]", "x\\"])
                .prop_map(str::to_owned),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat().trim_matches(is_c_space).to_owned())
}

/// A value XML can carry (no control characters but TAB, LF, CR).
fn xml_value() -> impl Strategy<Value = String> {
    value().prop_map(|v| {
        v.chars()
            .filter(|&c| xml_char(c))
            .collect::<String>()
            .trim_matches(is_c_space)
            .to_owned()
    })
}

/// A top-level name as the text parser produces it.
fn text_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[A-Z_][A-Z0-9_]{0,6}",
        1 => prop::sample::select(vec!["ONE_1A", "XMLB", "XML", "ONE_XMLA", "_", "NAME", "COMMAND"]).prop_map(str::to_owned),
    ]
}

/// A vector key as the text parser produces it.
fn text_key() -> impl Strategy<Value = String> {
    "[A-Z0-9_]{1,5}"
}

/// A top-level name as the XML form produces it: any XML name, ASCII-upper-cased, starting
/// with a letter or `_` (or carrying the ONE_ prefix).
fn xml_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Z_][A-Z0-9_.-]{0,6}",
        1 => "ONE_[é日A-Z0-9.-]{1,4}",
        1 => prop::sample::select(vec!["A-B", "XMLA", "X.Y", "A:B", "ONE_1"]).prop_map(str::to_owned),
    ]
}

/// A vector key as the XML form produces it: any XML name, case kept.
fn xml_key() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z_][a-zA-Z0-9_.-]{0,5}", "[é日][a-z]{0,2}"]
}

fn attribute<V: Strategy<Value = String>>(
    name: impl Strategy<Value = String>,
    key: impl Strategy<Value = String>,
    value: impl Fn() -> V,
) -> impl Strategy<Value = Attribute> {
    let pairs = prop::collection::vec((key, value()), 0..4);
    (name, prop::bool::weighted(0.3), value(), pairs).prop_map(|(name, is_vector, v, pairs)| {
        if is_vector {
            // The parsers build vectors in a map: sorted, one value per key.
            let map: BTreeMap<String, String> = pairs.into_iter().collect();
            Attribute {
                name,
                value: AttrValue::Vector(map.into_iter().collect()),
            }
        } else {
            Attribute {
                name,
                value: AttrValue::Single(v),
            }
        }
    })
}

fn text_template() -> impl Strategy<Value = Template> {
    prop::collection::vec(attribute(text_name(), text_key(), value), 0..8)
        .prop_map(Template::from_attributes)
}

fn xml_template() -> impl Strategy<Value = Template> {
    prop::collection::vec(attribute(xml_name(), xml_key(), xml_value), 0..8).prop_map(|attrs| {
        // The XML form never yields an empty vector from an empty element, but can from
        // an element whose children are all empty; keep both kinds.
        Template::from_attributes(attrs)
    })
}

/// What oned reads back from the XML it stored for `t`: attributes sorted by name, names
/// that start with XML prefixed again, line ends normalised then values trimmed, empty
/// vectors gone.
fn stored_and_reloaded(t: &Template) -> Template {
    let norm = |v: &str| {
        v.replace("\r\n", "\n")
            .replace('\r', "\n")
            .trim_matches(is_c_space)
            .to_owned()
    };
    let mut attrs: Vec<&Attribute> = t
        .attributes()
        .iter()
        .filter(|a| !matches!(&a.value, AttrValue::Vector(p) if p.is_empty()))
        .collect();
    attrs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let reloaded = attrs
        .into_iter()
        .map(|a| Attribute {
            name: if a.name.starts_with("XML") {
                format!("ONE_{}", a.name)
            } else {
                a.name.clone()
            },
            value: match &a.value {
                AttrValue::Single(v) => AttrValue::Single(norm(v)),
                AttrValue::Vector(p) => {
                    AttrValue::Vector(p.iter().map(|(k, v)| (k.clone(), norm(v))).collect())
                }
            },
        })
        .collect();
    Template::from_attributes(reloaded)
}

/// XML's `Char` production.
fn xml_char(c: char) -> bool {
    (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}') || matches!(c, '\t' | '\n' | '\r')
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn text_templates_print_and_parse_back(t in text_template()) {
        let text = t.to_text();
        prop_assert!(!text.starts_with('<'), "text form expected: {}", text);
        prop_assert_eq!(Template::parse(&text), Ok(t), "printed: {:?}", text);
    }

    #[test]
    fn xml_form_templates_print_and_parse_back(t in xml_template()) {
        let text = t.to_text();
        prop_assert_eq!(Template::parse(&text), Ok(t), "printed: {:?}", text);
    }

    #[test]
    fn serialised_xml_reads_back_as_oned_reloads_it(t in prop_oneof![text_template(), xml_template()]) {
        let clean = t.attributes().iter().all(|a| {
            let ok = |v: &str| !v.contains("]]>") && v.chars().all(xml_char);
            match &a.value {
                AttrValue::Single(v) => ok(v),
                AttrValue::Vector(p) => p.iter().all(|(k, v)| ok(v) && !k.starts_with(|c: char| c.is_ascii_digit())),
            }
        });
        match t.to_xml() {
            Ok(xml) => {
                prop_assert!(clean, "to_xml accepted a value XML cannot carry: {:?}", xml);
                prop_assert!(xml.starts_with("<TEMPLATE>") && xml.ends_with("</TEMPLATE>"));
                prop_assert_eq!(Template::parse(&xml), Ok(stored_and_reloaded(&t)), "xml: {:?}", xml);
            }
            Err(e) => {
                prop_assert!(!clean, "to_xml refused a clean template: {}", e);
                prop_assert_eq!(e.oned_message(), "Error transforming the Hook to XML.");
            }
        }
    }

    /// Any text that parses prints back to the same template.
    #[test]
    fn parsed_texts_print_back(parts in prop::collection::vec(prop::sample::select(vec![
        "A", "b", "xml", "XMLa", "1a", "=", " = ", "\"", "\\\"", "\\", "#", " # c\n", "[", "]", ",", "\n", "\t", " ",
        "]]>", ">", "\"a b\"", "é", "\r", "\"\"", "=\n", "[]", "-", "k=v", ",\n", " ]\n", "<",
    ]), 1..16)) {
        let text = parts.concat();
        if let Ok(t) = Template::parse(&text) {
            let printed = t.to_text();
            prop_assert_eq!(Template::parse(&printed), Ok(t), "input {:?} printed {:?}", text, printed);
        }
    }

    /// The parser never panics, whatever the input.
    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), s in ".{0,200}") {
        let lossy = String::from_utf8_lossy(&bytes);
        let _ = Template::parse(&lossy);
        let _ = Template::parse(&s);
        let _ = Template::parse(&format!("<{s}"));
        if let Ok(t) = Template::parse(&s) {
            let _ = t.to_xml();
            let _ = t.to_text();
        }
    }
}

#[test]
fn xml_serialisation_is_sorted_stably_and_byte_wise() {
    let t = Template::parse("b=1\nB=[Z=1,A=\"\"]\nA_=2\nA=3\nA=4\n_=5\nONE_1=6\n").unwrap();
    assert_eq!(
        t.to_xml_named("USER_TEMPLATE").unwrap(),
        "<USER_TEMPLATE><A><![CDATA[3]]></A><A><![CDATA[4]]></A><A_><![CDATA[2]]></A_><B><![CDATA[1]]></B>\
         <B><A><![CDATA[]]></A><Z><![CDATA[1]]></Z></B><ONE_1><![CDATA[6]]></ONE_1><_><![CDATA[5]]></_></USER_TEMPLATE>"
    );
}

#[test]
fn xml_serialisation_failures() {
    for text in ["A=\"x\ny]]>\"", "V=[1A=x]", "V=[K=\"a\nb]]>\"]", "A=\u{1}"] {
        let t = Template::parse(text).unwrap();
        assert_eq!(
            t.to_xml().unwrap_err().oned_message(),
            "Error transforming the Hook to XML.",
            "{text:?}"
        );
    }
}
