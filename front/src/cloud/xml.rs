//! Writing the object bodies: oned's element order, no whitespace, scalar values raw and
//! strings escaped (our well-formed XML extension; readers taking the text get the same string).

use std::fmt::{Display, Write as _};

use one_proto::encoding::xml_escape;
use one_proto::template::Template;

/// `<name>value</name>` for a value that needs no escaping (numbers).
pub(crate) fn num(out: &mut String, name: &str, value: impl Display) {
    let _ = write!(out, "<{name}>{value}</{name}>");
}

/// `<name>text</name>` with the text escaped.
pub(crate) fn text(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "<{name}>{}</{name}>", xml_escape(value));
}

/// A template as `<root>…</root>`. Templates are checked when they are stored, so this only
/// falls back to an empty element (with an error log) on data that bypassed the checks.
pub(crate) fn template(out: &mut String, t: &Template, root: &str) {
    match t.to_xml_named(root) {
        Ok(x) => out.push_str(&x),
        Err(e) => {
            tracing::error!(root, error = %e, "stored template cannot be written as XML");
            let _ = write!(out, "<{root}></{root}>");
        }
    }
}

/// The PERMISSIONS of objects created with oned's default umask (177): owner use and manage.
pub(crate) fn owner_permissions(out: &mut String) {
    out.push_str(
        "<PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A>\
         <GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A>\
         <OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS>",
    );
}

/// An id collection: `<name><ID>1</ID><ID>2</ID></name>`.
pub(crate) fn ids(out: &mut String, name: &str, ids: &[i64]) {
    let _ = write!(out, "<{name}>");
    for id in ids {
        num(out, "ID", id);
    }
    let _ = write!(out, "</{name}>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_escaped_text_and_collections() {
        let mut out = String::new();
        text(&mut out, "NAME", "a<b&c");
        num(&mut out, "ID", 3);
        ids(&mut out, "VMS", &[1, 2]);
        ids(&mut out, "CLONES", &[]);
        assert_eq!(
            out,
            "<NAME>a&lt;b&amp;c</NAME><ID>3</ID><VMS><ID>1</ID><ID>2</ID></VMS><CLONES></CLONES>"
        );
    }
}
