//! Reading the daemons' `/metrics` and `/health` as a monitoring system would: scrapes parsed
//! by Python's `prometheus_client` (a parser nobody here wrote), health over plain HTTP, and
//! the TCP ports a process listens on, from `/proc`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::stack::python;

/// For each address read on stdin, fetches `http://<addr>/metrics` with urllib, parses it with
/// `prometheus_client.parser.text_string_to_metric_families` and prints one JSON line (or
/// `{"error": ...}`).
const SCRAPER: &str = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
for line in sys.stdin:
    try:
        with urllib.request.urlopen("http://%s/metrics" % line.strip(), timeout=20) as r:
            ctype = r.headers.get("Content-Type")
            text = r.read().decode("utf-8")
        families = []
        for f in text_string_to_metric_families(text):
            families.append({
                "name": f.name, "type": f.type, "help": f.documentation,
                "samples": [[s.name, s.labels, s.value] for s in f.samples],
            })
        out = {"content_type": ctype, "families": families}
    except Exception as e:
        out = {"error": "%s: %s" % (type(e).__name__, e)}
    print(json.dumps(out), flush=True)
"#;

/// A Python process that scrapes and parses on request, so that scrapes follow each other
/// closely (the interpreter starts once). Killed when dropped.
pub struct Scraper {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Scraper {
    pub fn start() -> Result<Scraper> {
        let mut child = Command::new(python()?)
            .arg("-c")
            .arg(SCRAPER)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting the Python scraper")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = std::io::BufReader::new(child.stdout.take().context("no stdout")?);
        Ok(Scraper {
            child,
            stdin,
            stdout,
        })
    }

    /// Scrapes `addr` and parses the text with `prometheus_client`.
    pub fn scrape(&mut self, addr: SocketAddr) -> Result<Scrape> {
        use std::io::BufRead;
        writeln!(self.stdin, "{addr}")?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the Python scraper exited");
        }
        let doc: serde_json::Value =
            serde_json::from_str(&line).context("reading the scraper's JSON")?;
        if let Some(e) = doc["error"].as_str() {
            bail!("scraping {addr} failed: {e}");
        }
        parse_document(&doc)
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sample's name and its labels, sorted.
pub type SampleKey = (String, Vec<(String, String)>);

/// One parsed scrape.
#[derive(Clone, Debug)]
pub struct Scrape {
    pub content_type: String,
    /// Family name (as the parser reports it: counters without `_total`) to its type.
    pub types: BTreeMap<String, String>,
    /// Every sample: name and sorted labels to value.
    pub samples: BTreeMap<SampleKey, f64>,
}

impl Scrape {
    /// The value of the sample `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        self.samples.get(&(name.to_string(), l)).copied()
    }

    /// The sum of every sample named `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// Samples that only go up between scrapes: counters and histogram parts.
    pub fn monotonic(&self) -> impl Iterator<Item = (&SampleKey, &f64)> {
        self.samples.iter().filter(|((n, _), _)| {
            n.ends_with("_total")
                || n.ends_with("_bucket")
                || n.ends_with("_count")
                || n.ends_with("_sum")
        })
    }
}

fn parse_document(doc: &serde_json::Value) -> Result<Scrape> {
    let mut scrape = Scrape {
        content_type: doc["content_type"].as_str().unwrap_or_default().to_string(),
        types: BTreeMap::new(),
        samples: BTreeMap::new(),
    };
    for f in doc["families"].as_array().context("no families")? {
        let name = f["name"].as_str().unwrap_or_default().to_string();
        scrape
            .types
            .insert(name, f["type"].as_str().unwrap_or_default().to_string());
        for s in f["samples"].as_array().context("no samples")? {
            let sample = s[0].as_str().unwrap_or_default().to_string();
            let mut labels: Vec<(String, String)> = s[1]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            labels.sort();
            let value = s[2].as_f64().context("a sample without a number")?;
            scrape.samples.insert((sample, labels), value);
        }
    }
    Ok(scrape)
}

/// `GET path` over plain HTTP/1.1: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The TCP addresses process `pid` listens on: its socket descriptors matched with the
/// kernel's LISTEN sockets of its network namespace.
pub fn listening(pid: u32) -> Result<BTreeSet<SocketAddr>> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))?.flatten() {
        if let Ok(link) = std::fs::read_link(fd.path())
            && let Some(inode) = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
        {
            inodes.insert(inode.to_string());
        }
    }
    let mut out = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))?;
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address, state (0A is LISTEN), inode.
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                out.insert(parse_proc_addr(cols[1])?);
            }
        }
    }
    Ok(out)
}

/// `0100007F:0B4D`: the address as native-endian 32-bit words (one for IPv4, four for IPv6).
fn parse_proc_addr(s: &str) -> Result<SocketAddr> {
    let (ip, port) = s.split_once(':').context("no port")?;
    let port = u16::from_str_radix(port, 16)?;
    let ip: std::net::IpAddr = if ip.len() == 8 {
        std::net::Ipv4Addr::from(u32::from_str_radix(ip, 16)?.to_ne_bytes()).into()
    } else {
        let mut bytes = [0u8; 16];
        for (i, chunk) in bytes.chunks_mut(4).enumerate() {
            let word = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16)?;
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        std::net::Ipv6Addr::from(bytes).into()
    };
    Ok(SocketAddr::new(ip, port))
}
