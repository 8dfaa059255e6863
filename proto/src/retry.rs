//! The RETRY message oned sends through the driver to the HEM (reference §4.6, §8.4).

use crate::encoding::{b64_decode_lenient, b64_encode, xml_escape};
use crate::event::{EventError, message_root, parse_int};
use crate::xml_read;

/// A request to run a hook again with the arguments of one of its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryMessage {
    /// The record's ARGUMENTS text, decoded (on the wire it is base64 of this text).
    pub arguments: String,
    pub hook_id: i64,
    /// The record's REMOTE_HOST; written only when non-empty, `Some("")` is read back as `None`.
    pub remote_host: Option<String>,
}

impl RetryMessage {
    /// `<HOOK_MESSAGE><ARGUMENTS>b64</ARGUMENTS><HOOK_ID>n</HOOK_ID>[<REMOTE_HOST>h</REMOTE_HOST>]
    /// </HOOK_MESSAGE>`, ARGUMENTS holding strict base64 of the arguments text.
    pub fn to_xml(&self) -> String {
        let arguments = b64_encode(self.arguments.as_bytes());
        let mut out = String::with_capacity(arguments.len() + 96);
        out.push_str("<HOOK_MESSAGE><ARGUMENTS>");
        out.push_str(&arguments);
        out.push_str("</ARGUMENTS><HOOK_ID>");
        out.push_str(&self.hook_id.to_string());
        out.push_str("</HOOK_ID>");
        if let Some(host) = self.remote_host.as_deref().filter(|h| !h.is_empty()) {
            out.push_str("<REMOTE_HOST>");
            out.push_str(&xml_escape(host));
            out.push_str("</REMOTE_HOST>");
        }
        out.push_str("</HOOK_MESSAGE>");
        out
    }

    /// Reads the decoded message. Surrounding whitespace is ignored, and ARGUMENTS is decoded
    /// leniently as the reference HEM does (`Base64.decode64`).
    pub fn parse(xml: &str) -> Result<RetryMessage, EventError> {
        let roots = xml_read::parse_lenient(xml.trim(), &[]);
        let root = message_root(&roots, "HOOK_MESSAGE")?;
        let arguments_b64 = root
            .child("ARGUMENTS")
            .ok_or(EventError::Missing {
                element: "ARGUMENTS",
            })?
            .text
            .clone();
        let arguments = String::from_utf8(b64_decode_lenient(&arguments_b64)).map_err(|_| {
            EventError::Invalid {
                element: "ARGUMENTS",
                value: arguments_b64.clone(),
                reason: "does not decode to UTF-8 text",
            }
        })?;
        let hook_id = parse_int(
            "HOOK_ID",
            &root
                .child("HOOK_ID")
                .ok_or(EventError::Missing { element: "HOOK_ID" })?
                .text,
        )?;
        let remote_host = root
            .child("REMOTE_HOST")
            .map(|n| n.text.clone())
            .filter(|h| !h.is_empty());
        Ok(RetryMessage {
            arguments,
            hook_id,
            remote_host,
        })
    }

    /// Reads the content of a `RETRY` publication as the reference HEM does: the first
    /// whitespace-separated word (the driver appends a space), base64-decoded leniently.
    pub fn from_content(content: &[u8]) -> Result<RetryMessage, EventError> {
        let content = String::from_utf8_lossy(content);
        let word = content.split_ascii_whitespace().next().unwrap_or_default();
        let xml = String::from_utf8_lossy(&b64_decode_lenient(word)).into_owned();
        RetryMessage::parse(&xml)
    }
}
