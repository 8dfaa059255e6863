//! The HOOK and HOOK_POOL documents (reference §4.1, §4.2).

use crate::template::xml::{self, Element};
use crate::template::{Template, TemplateError};

use super::{Hook, HookParseError, HookType, Lock};

impl Hook {
    /// The HOOK document (§4.1): `ID`, `NAME`, `TYPE`, `LOCK` when locked, `TEMPLATE`, then
    /// `hooklog_xml` (a whole `<HOOKLOG>…</HOOKLOG>`) verbatim when given. Fails when the
    /// template or the name cannot be written as well-formed XML.
    pub fn to_xml(&self, hooklog_xml: Option<&str>) -> Result<String, TemplateError> {
        let mut out = format!("<HOOK><ID>{}</ID><NAME>", self.id);
        if let Some(c) = self.name.chars().find(|&c| !xml::is_xml_char(c)) {
            return Err(TemplateError::NotXml {
                reason: format!(
                    "the hook name contains U+{:04X}, which XML does not allow",
                    c as u32
                ),
            });
        }
        xml::escape_text(&self.name, &mut out);
        out.push_str("</NAME><TYPE>");
        out.push_str(self.hook_type.as_str());
        out.push_str("</TYPE>");
        if let Some(lock) = &self.lock {
            out.push_str(&format!(
                "<LOCK><LOCKED>{}</LOCKED><OWNER>{}</OWNER><TIME>{}</TIME><REQ_ID>{}</REQ_ID></LOCK>",
                lock.level, lock.owner, lock.time, lock.req_id
            ));
        }
        out.push_str(&self.template.to_xml()?);
        if let Some(log) = hooklog_xml {
            out.push_str(log);
        }
        out.push_str("</HOOK>");
        Ok(out)
    }

    /// Reads one `<HOOK>` document. Child order does not matter, values may be text or
    /// CDATA, and a HOOKLOG child is ignored. The template is read as oned reads stored
    /// bodies (values are not trimmed).
    pub fn from_xml(xml: &str) -> Result<Hook, HookParseError> {
        let root = xml::parse_document(xml).map_err(HookParseError::Malformed)?;
        if root.name != "HOOK" {
            return Err(HookParseError::WrongRoot {
                expected: "HOOK",
                found: root.name,
            });
        }
        hook_from_element(&root)
    }
}

fn hook_from_element(e: &Element) -> Result<Hook, HookParseError> {
    let id_text = e.child("ID").map(|c| c.text());
    let id_label = id_text.as_deref().map(str::trim).unwrap_or("?").to_owned();
    let missing = |element: &'static str| HookParseError::Missing {
        id: id_label.clone(),
        element,
    };
    let invalid = |element: &'static str, value: &str| HookParseError::Invalid {
        id: id_label.clone(),
        element,
        value: value.to_owned(),
    };
    let int = |parent: &Element, element: &'static str| -> Result<Option<i64>, HookParseError> {
        match parent.child(element) {
            None => Ok(None),
            Some(c) => {
                let text = c.text();
                text.trim()
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| invalid(element, &text))
            }
        }
    };

    let id = int(e, "ID")?.ok_or_else(|| missing("ID"))?;
    let name = e
        .child("NAME")
        .map(|c| c.text())
        .ok_or_else(|| missing("NAME"))?;
    let type_text = e
        .child("TYPE")
        .map(|c| c.text())
        .ok_or_else(|| missing("TYPE"))?;
    let hook_type =
        HookType::from_name(type_text.trim()).ok_or_else(|| invalid("TYPE", &type_text))?;
    let lock = match e.child("LOCK") {
        None => None,
        Some(l) => {
            let level = int(l, "LOCKED")?.unwrap_or(0);
            let level = u8::try_from(level).map_err(|_| invalid("LOCKED", &level.to_string()))?;
            (level != 0)
                .then(|| -> Result<Lock, HookParseError> {
                    Ok(Lock {
                        level,
                        owner: int(l, "OWNER")?.unwrap_or(-1),
                        time: int(l, "TIME")?.unwrap_or(0),
                        req_id: int(l, "REQ_ID")?.unwrap_or(-1),
                    })
                })
                .transpose()?
        }
    };
    let template = e
        .child("TEMPLATE")
        .map(Template::from_element)
        .ok_or_else(|| missing("TEMPLATE"))?;
    Ok(Hook {
        id,
        name,
        hook_type,
        lock,
        template,
    })
}

/// The HOOK_POOL document (§4.2): the hooks in the order given, without HOOKLOG.
pub fn pool_to_xml(hooks: &[Hook]) -> Result<String, TemplateError> {
    let mut out = String::from("<HOOK_POOL>");
    for hook in hooks {
        out.push_str(&hook.to_xml(None)?);
    }
    out.push_str("</HOOK_POOL>");
    Ok(out)
}

/// Reads a HOOK_POOL document; any unreadable HOOK fails the whole document.
pub fn pool_from_xml(xml: &str) -> Result<Vec<Hook>, HookParseError> {
    let (hooks, errors) = pool_from_xml_lenient(xml)?;
    match errors.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(hooks),
    }
}

/// Reads a HOOK_POOL document, keeping the readable hooks and the errors of the others, so
/// that one damaged body does not hide the rest of the pool.
pub fn pool_from_xml_lenient(
    xml: &str,
) -> Result<(Vec<Hook>, Vec<HookParseError>), HookParseError> {
    let root = xml::parse_document(xml).map_err(HookParseError::Malformed)?;
    if root.name != "HOOK_POOL" {
        return Err(HookParseError::WrongRoot {
            expected: "HOOK_POOL",
            found: root.name,
        });
    }
    let mut hooks = Vec::new();
    let mut errors = Vec::new();
    for e in root.elements().filter(|e| e.name == "HOOK") {
        match hook_from_element(e) {
            Ok(h) => hooks.push(h),
            Err(err) => errors.push(err),
        }
    }
    Ok((hooks, errors))
}
