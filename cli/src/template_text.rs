//! A TEMPLATE element as `KEY="value"` lines, the way the reference's `template_like_str`
//! prints it in `show`.

use crate::xml::Element;

/// One line per child element, in document order. Elements without a text node are skipped
/// (an empty CDATA value still prints as `KEY=""`); a vector prints as
/// `KEY=[\n  A="1",\n  B="2" ]`. Lines are joined by `\n`, without a final newline.
pub fn template_lines(template: &Element) -> String {
    let mut lines = Vec::new();
    for attr in template.elements() {
        if attr.has_elements() {
            let parts: Vec<String> = attr
                .elements()
                .filter_map(|sub| sub.text().map(|t| format!("  {}={}", sub.name, quote(t))))
                .collect();
            lines.push(format!("{}=[\n{} ]", attr.name, parts.join(",\n")));
        } else if let Some(value) = attr.text() {
            lines.push(format!("{}={}", attr.name, quote(value)));
        }
    }
    lines.join("\n")
}

fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn singles_vectors_and_empty_values() {
        let t = parse(
            "<TEMPLATE><A><![CDATA[say \"hi\"]]></A><B></B><C><![CDATA[]]></C>\
             <V><X><![CDATA[1]]></X><Y></Y><Z>2</Z></V></TEMPLATE>",
        )
        .unwrap();
        assert_eq!(
            template_lines(&t),
            "A=\"say \\\"hi\\\"\"\nC=\"\"\nV=[\n  X=\"1\",\n  Z=\"2\" ]"
        );
    }

    #[test]
    fn empty_template_is_empty() {
        assert_eq!(template_lines(&parse("<TEMPLATE/>").unwrap()), "");
    }
}
