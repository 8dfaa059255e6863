//! A small element tree for the VM and HOST documents the hooks read.
//!
//! The hooks need a handful of values by path (`USER_TEMPLATE/AUTOSTART`, the last
//! `HISTORY_RECORDS/HISTORY`, `VMS/ID`), so a tree of elements with their text is enough.
//! Text and CDATA are merged; attributes, comments and processing instructions are ignored.

use quick_xml::events::Event;

/// Documents nest a few levels deep; anything deeper is not an OpenNebula object.
const MAX_DEPTH: usize = 64;

/// An element with its text content (text and CDATA concatenated) and child elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML at byte {position}: {message}")]
    Malformed { position: u64, message: String },
    #[error("malformed XML: no root element")]
    NoRoot,
    #[error("malformed XML: element <{0}> is not closed")]
    Unclosed(String),
    #[error("XML nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Parses a whole document and returns its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let malformed = |position: u64, e: &dyn std::fmt::Display| XmlError::Malformed {
        position,
        message: e.to_string(),
    };
    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| malformed(position, &e))?;
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(Element {
                    name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                    ..Element::default()
                });
            }
            Event::Empty(start) => {
                let element = Element {
                    name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                    ..Element::default()
                };
                close(&mut stack, &mut root, element, position)?;
            }
            Event::End(_) => {
                let Some(element) = stack.pop() else {
                    return Err(malformed(position, &"unexpected end tag"));
                };
                close(&mut stack, &mut root, element, position)?;
            }
            Event::Text(text) => {
                let value = text.xml10_content().map_err(|e| malformed(position, &e))?;
                push_text(&mut stack, &value, position)?;
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = reference.decode().map_err(|e| malformed(position, &e))?;
                        match name.as_ref() {
                            "lt" => "<".to_string(),
                            "gt" => ">".to_string(),
                            "amp" => "&".to_string(),
                            "apos" => "'".to_string(),
                            "quot" => "\"".to_string(),
                            other => {
                                return Err(malformed(
                                    position,
                                    &format!("unknown entity &{other};"),
                                ));
                            }
                        }
                    }
                    Err(e) => return Err(malformed(position, &e)),
                };
                push_text(&mut stack, &resolved, position)?;
            }
            Event::CData(data) => {
                let value = data.decode().map_err(|e| malformed(position, &e))?;
                match stack.last_mut() {
                    Some(parent) => parent.text.push_str(&value),
                    None => return Err(malformed(position, &"CDATA outside the root element")),
                }
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.pop() {
        return Err(XmlError::Unclosed(open.name));
    }
    root.ok_or(XmlError::NoRoot)
}

fn close(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
    position: u64,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => {
            return Err(XmlError::Malformed {
                position,
                message: "more than one root element".to_string(),
            });
        }
    }
    Ok(())
}

fn push_text(stack: &mut [Element], value: &str, position: u64) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            parent.text.push_str(value);
            Ok(())
        }
        // Whitespace around the root element is allowed; anything else is not.
        None if value.trim().is_empty() => Ok(()),
        None => Err(XmlError::Malformed {
            position,
            message: "text outside the root element".to_string(),
        }),
    }
}

impl Element {
    /// The first child element with this name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child element with this name, in document order.
    pub fn children_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element at a `/`-separated path of first children, e.g. `USER_TEMPLATE/AUTOSTART`.
    pub fn at(&self, path: &str) -> Option<&Element> {
        path.split('/').try_fold(self, |e, name| e.child(name))
    }

    /// The trimmed text at a path, if the element exists.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        self.at(path).map(|e| e.text.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_cdata_and_entities() {
        let doc = parse(
            "<VM><NAME>a &amp; b</NAME><USER_TEMPLATE><AUTOSTART><![CDATA[Yes]]></AUTOSTART>\
             </USER_TEMPLATE><E/></VM>",
        )
        .unwrap();
        assert_eq!(doc.name, "VM");
        assert_eq!(doc.text_at("NAME"), Some("a & b"));
        assert_eq!(doc.text_at("USER_TEMPLATE/AUTOSTART"), Some("Yes"));
        assert_eq!(doc.text_at("E"), Some(""));
        assert_eq!(doc.text_at("MISSING/X"), None);
    }

    #[test]
    fn rejects_malformed_documents() {
        assert!(matches!(parse(""), Err(XmlError::NoRoot)));
        assert!(matches!(
            parse("<A><B></A>"),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(parse("<A>"), Err(XmlError::Unclosed(n)) if n == "A"));
        assert!(matches!(parse("<A/><B/>"), Err(XmlError::Malformed { .. })));
        assert!(matches!(
            parse("<A>&bogus;</A>"),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(parse("junk<A/>"), Err(XmlError::Malformed { .. })));
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert!(matches!(parse(&deep), Err(XmlError::TooDeep)));
    }
}
