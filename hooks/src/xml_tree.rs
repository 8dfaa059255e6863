//! The VM and HOST documents as the hooks read them: each element with its text.
//!
//! The hooks need a handful of values by path (`USER_TEMPLATE/AUTOSTART`, the last
//! `HISTORY_RECORDS/HISTORY`, `VMS/ID`), trimmed, and an element that is present without text
//! reads as "". So each element of [`one_proto::xml_tree`]'s tree keeps its own text and CDATA
//! concatenated, and nothing else.

use one_proto::xml_tree;

pub use one_proto::xml_tree::XmlError;

/// An element with its text content (text and CDATA concatenated) and child elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

/// Parses a whole document and returns its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    xml_tree::parse(text).map(|root| Element::from(&root))
}

impl From<&xml_tree::Element> for Element {
    // Recursion is bounded by the parser's nesting limit.
    fn from(element: &xml_tree::Element) -> Element {
        Element {
            name: element.name.clone(),
            text: element.own_text(),
            children: element.elements().map(Element::from).collect(),
        }
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
