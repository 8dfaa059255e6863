//! Our encoders and readers checked against implementations we did not write: Ruby's `Base64`
//! (what the reference driver and HEM use) and Python's expat (a strict XML parser).
//!
//! Each test starts one interpreter, feeds it a batch of deterministic pseudo-random cases on
//! stdin and compares its answers line by line.

use std::io::Write;
use std::process::{Command, Stdio};

use one_proto::check_xml_document;
use one_proto::encoding::{b64_decode_lenient, b64_encode, b64_mime, is_xml_char, xml_escape};
use one_proto::event::{ApiEvent, HookMessage};
use one_proto::hook_log::{ExecutionResult, record_xml};

/// A small deterministic generator, so that a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Runs `program args…` with `input` on stdin and returns its stdout lines.
fn run(program: &str, args: &[&str], input: &str) -> Vec<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} (needed by this test): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{program} failed: {:?}",
        output.status
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn python() -> String {
    std::env::var("ONE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

const RUBY_BASE64: &str = r#"
require "base64"
STDIN.each_line do |line|
  kind, data = line.split(" ")
  bytes = [data[1..]].pack("H*")
  out = case kind
        when "mime" then Base64.encode64(bytes)
        when "strict" then Base64.strict_encode64(bytes)
        when "lenient" then Base64.decode64(bytes.force_encoding("UTF-8"))
        end
  puts "x" + out.unpack1("H*")
end
"#;

#[test]
fn base64_agrees_with_ruby() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for len in (0..100).chain([134, 135, 136, 180, 181, 1000]) {
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        cases.push(("mime", data.clone()));
        cases.push(("strict", data));
    }
    // Junk around and inside base64, as the HEM and driver meet it.
    let pieces = [
        "QUJD",
        "QQ==",
        "QUI=",
        "=",
        "==",
        "\n",
        " ",
        "\r\n",
        "!",
        "-",
        "_",
        "é",
        "A",
        "Qx",
        "/+",
        "RXhlY3V0ZWQhCg==\n",
        "#",
    ];
    for _ in 0..400 {
        let n = rng.below(8);
        let s: String = (0..n).map(|_| rng.pick(&pieces)).collect();
        cases.push(("lenient", s.into_bytes()));
    }
    let input: String = cases
        .iter()
        .map(|(kind, data)| format!("{kind} x{}\n", hex(data)))
        .collect();
    let answers = run("ruby", &["-e", RUBY_BASE64], &input);
    assert_eq!(answers.len(), cases.len());
    for ((kind, data), answer) in cases.iter().zip(&answers) {
        let ours = match *kind {
            "mime" => b64_mime(data).into_bytes(),
            "strict" => b64_encode(data).into_bytes(),
            _ => b64_decode_lenient(std::str::from_utf8(data).unwrap()),
        };
        assert_eq!(
            format!("x{}", hex(&ours)),
            *answer,
            "{kind} of {:?}",
            String::from_utf8_lossy(data)
        );
    }
}

const PYTHON_EXPAT: &str = r#"
import sys, json
import xml.parsers.expat
from xml.etree import ElementTree
for line in sys.stdin:
    doc = json.loads(line)
    parser = xml.parsers.expat.ParserCreate()
    try:
        parser.Parse(doc, True)
    except xml.parsers.expat.ExpatError as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        continue
    root = ElementTree.fromstring(doc)
    texts = {}
    for path in ["ARGUMENTS", "EXECUTION_RESULT/COMMAND", "EXECUTION_RESULT/CODE"]:
        el = root.find(path)
        if el is not None:
            texts[path] = el.text or ""
    values = [el.text or "" for el in root.iter("VALUE")]
    print(json.dumps({"ok": True, "texts": texts, "values": values}))
"#;

const TRICKY: &[&str] = &[
    "<",
    ">",
    "&",
    "]]>",
    "\"",
    "'",
    "\n",
    "\r",
    "\r\n",
    "\t",
    " ",
    "é",
    "漢字",
    "😀",
    "&amp;",
    "&#13;",
    "<![CDATA[",
    "</VALUE>",
    "\u{1}",
    "\u{fffe}",
    "\u{85}",
    "x",
    "$TEMPLATE",
];

fn tricky_text(rng: &mut Rng) -> String {
    let n = rng.below(8);
    (0..n).map(|_| rng.pick(TRICKY)).collect()
}

fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
        .collect()
}

/// Every document we build is accepted by expat, which reads the same values back.
#[test]
fn expat_reads_our_documents() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut docs = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..200 {
        let arguments = tricky_text(&mut rng);
        let command = tricky_text(&mut rng);
        let result = ExecutionResult {
            arguments: arguments.clone(),
            command: command.clone(),
            stdout: tricky_text(&mut rng).into_bytes(),
            code: rng.below(256) as i32,
            ..ExecutionResult::default()
        };
        docs.push(record_xml(1, 2, 3, &result.to_xml()).unwrap());
        expected.push((
            vec![
                ("ARGUMENTS", xml_text(&arguments)),
                ("EXECUTION_RESULT/COMMAND", xml_text(&command)),
                ("EXECUTION_RESULT/CODE", result.code.to_string()),
            ],
            Vec::new(),
        ));

        let values: Vec<String> = (0..4).map(|_| tricky_text(&mut rng)).collect();
        let event = ApiEvent::success(
            "one.vm.update",
            values.clone(),
            tricky_text(&mut rng),
            xml_escape(&tricky_text(&mut rng)).into_owned(),
        );
        let mut read_back: Vec<String> = values.iter().map(|v| xml_text(v)).collect();
        read_back[0] = "****".to_string();
        read_back.push("true".to_string());
        read_back.push(xml_text(&event.params[5].value));
        read_back.push("0".to_string());
        docs.push(HookMessage::Api(event).to_xml());
        expected.push((Vec::new(), read_back));
    }
    let input: String = docs
        .iter()
        .map(|d| format!("{}\n", json_string(d)))
        .collect();
    let answers = run(&python(), &["-c", PYTHON_EXPAT], &input);
    assert_eq!(answers.len(), docs.len());
    for ((doc, (texts, values)), answer) in docs.iter().zip(&expected).zip(&answers) {
        assert!(
            answer.starts_with("{\"ok\": true"),
            "expat rejected {doc:?}: {answer}"
        );
        for (path, text) in texts {
            let needle = format!("\"{path}\": {}", json_string(text));
            assert!(answer.contains(&needle), "{path} of {doc:?}: {answer}");
        }
        let values_json = format!(
            "\"values\": [{}]",
            values
                .iter()
                .map(|v| json_string(v))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(answer.contains(&values_json), "values of {doc:?}: {answer}");
    }
}

/// Our well-formedness check (which decides whether a record is stored) agrees with expat on
/// random markup soup inside a record.
#[test]
fn record_check_agrees_with_expat() {
    let tokens = [
        "<A>",
        "</A>",
        "<B/>",
        "<C x=\"1\">",
        "</C>",
        "text",
        " ",
        "\n",
        "<",
        ">",
        "&",
        "&amp;",
        "&lt;",
        "&bogus;",
        "&#1;",
        "&#65;",
        "&#x41;",
        "&#xD800;",
        "]]>",
        "]]",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "--",
        "<?pi x?>",
        "<?xml version=\"1.0\"?>",
        "<!DOCTYPE x>",
        "\u{1}",
        "é",
        "\u{fffe}",
        "<A b='1' b='2'>",
        "<A b=1>",
        "<1A>",
        "</1A>",
        "<A\n>",
        "</A >",
        "<ARGUMENTS>",
        "</ARGUMENTS>",
        "\"",
        "'",
        "=",
        "/>",
        "</",
        "<:A>",
        "</:A>",
    ];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut bodies = Vec::new();
    for _ in 0..3000 {
        let n = rng.below(7);
        let body: String = (0..n).map(|_| rng.pick(&tokens)).collect();
        bodies.push(body);
    }
    bodies.sort();
    bodies.dedup();
    let wrapped: Vec<String> = bodies
        .iter()
        .map(|body| {
            format!(
                "<HOOK_EXECUTION_RECORD><HOOK_ID>1</HOOK_ID><EXECUTION_ID>2</EXECUTION_ID><TIMESTAMP>3</TIMESTAMP>{body}</HOOK_EXECUTION_RECORD>"
            )
        })
        .collect();
    let input: String = wrapped
        .iter()
        .map(|d| format!("{}\n", json_string(d)))
        .collect();
    let answers = run(&python(), &["-c", PYTHON_EXPAT], &input);
    assert_eq!(answers.len(), bodies.len());
    let mut accepted = 0;
    for ((body, doc), answer) in bodies.iter().zip(&wrapped).zip(&answers) {
        let expat_ok = answer.starts_with("{\"ok\": true");
        let ours = record_xml(1, 2, 3, body);
        assert_eq!(
            ours.is_ok(),
            expat_ok,
            "body {body:?}: ours {ours:?}, expat {answer}"
        );
        assert_eq!(check_xml_document(doc).is_ok(), expat_ok);
        accepted += usize::from(expat_ok);
    }
    // Both outcomes must be well represented for the comparison to mean something.
    assert!(
        accepted > 100 && accepted < bodies.len() - 100,
        "{accepted}"
    );
}

/// A JSON string literal (what Python's `json.dumps` writes with its default settings).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) >= 0x7f => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
