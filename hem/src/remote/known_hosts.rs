//! Host key verification against OpenSSH known_hosts files. A key is accepted only when a line
//! for the host lists exactly that key; an unknown, changed or revoked key is refused with its
//! fingerprint, never learned.
//!
//! Supported: comments, `[host]:port` entries, comma-separated patterns with `*`/`?` wildcards
//! and `!` negation, hashed names (`|1|salt|hash`), `@revoked`. `@cert-authority` lines are
//! ignored (host certificates are not accepted).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::{Algorithm, HashAlg, PublicKey};
use sha1::Sha1;

/// Why a presented host key is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyProblem {
    /// No line for the host lists a key of this type.
    Unknown {
        /// `SHA256:…` of the presented key.
        fingerprint: String,
        /// Its type (`ssh-ed25519`).
        algorithm: String,
    },
    /// A line for the host lists another key of the same type.
    Changed {
        /// `SHA256:…` of the presented key.
        fingerprint: String,
        /// Its type.
        algorithm: String,
        /// The file holding the recorded key.
        file: PathBuf,
        /// The line number (from 1).
        line: usize,
    },
    /// The key is marked `@revoked`.
    Revoked {
        /// `SHA256:…` of the presented key.
        fingerprint: String,
        /// The file holding the mark.
        file: PathBuf,
        /// The line number (from 1).
        line: usize,
    },
    /// The server presented a certificate instead of a plain host key.
    Certificate,
}

impl fmt::Display for HostKeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostKeyProblem::Unknown {
                fingerprint,
                algorithm,
            } => write!(f, "unknown {algorithm} host key {fingerprint}"),
            HostKeyProblem::Changed {
                fingerprint,
                algorithm,
                file,
                line,
            } => write!(
                f,
                "{algorithm} host key changed to {fingerprint}; {}:{line} has another key",
                file.display()
            ),
            HostKeyProblem::Revoked {
                fingerprint,
                file,
                line,
            } => write!(
                f,
                "host key {fingerprint} is revoked ({}:{line})",
                file.display()
            ),
            HostKeyProblem::Certificate => write!(f, "host certificates are not accepted"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum Pattern {
    Plain { negated: bool, glob: String },
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Debug, Clone)]
struct Entry {
    file: Arc<PathBuf>,
    line: usize,
    marker: Marker,
    patterns: Vec<Pattern>,
    key: PublicKey,
}

/// The parsed lines of one or more known_hosts files.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    /// Lines that could not be parsed, as `file:line`; they never match.
    pub skipped: Vec<String>,
}

/// The name under which OpenSSH records a host: `host`, or `[host]:port` off port 22.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_ascii_lowercase()
    } else {
        format!("[{}]:{port}", host.to_ascii_lowercase())
    }
}

/// `SHA256:…` fingerprint of a key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl KnownHosts {
    /// Reads the files that exist; a missing file is an empty one.
    pub fn load(paths: &[PathBuf]) -> std::io::Result<KnownHosts> {
        let mut all = KnownHosts::default();
        for path in paths {
            match std::fs::read_to_string(path) {
                Ok(text) => all.add(path, &text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("{}: {e}", path.display()),
                    ));
                }
            }
        }
        Ok(all)
    }

    /// Adds the lines of one file.
    pub fn add(&mut self, file: &Path, text: &str) {
        let file = Arc::new(file.to_path_buf());
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Some((marker, patterns, key)) => self.entries.push(Entry {
                    file: Arc::clone(&file),
                    line: i + 1,
                    marker,
                    patterns,
                    key,
                }),
                None => self.skipped.push(format!("{}:{}", file.display(), i + 1)),
            }
        }
    }

    /// Key types recorded for any of `names`, most useful first, so that the client can ask
    /// the server for a key it can verify.
    pub fn algorithms_for(&self, names: &[String]) -> Vec<Algorithm> {
        let mut out: Vec<Algorithm> = Vec::new();
        for e in &self.entries {
            if e.marker == Marker::None
                && names.iter().any(|n| matches(&e.patterns, n))
                && !out.contains(&e.key.algorithm())
            {
                out.push(e.key.algorithm());
            }
        }
        out
    }

    /// Accepts `key` if a line for one of `names` lists it and it is not revoked.
    pub fn verify(&self, names: &[String], key: &PublicKey) -> Result<(), HostKeyProblem> {
        let fp = || fingerprint(key);
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.marker == Marker::Revoked && e.key.key_data() == key.key_data())
        {
            return Err(HostKeyProblem::Revoked {
                fingerprint: fp(),
                file: e.file.as_ref().clone(),
                line: e.line,
            });
        }
        let for_host: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.marker == Marker::None && names.iter().any(|n| matches(&e.patterns, n)))
            .collect();
        if for_host.iter().any(|e| e.key.key_data() == key.key_data()) {
            return Ok(());
        }
        let family = key_family(&key.algorithm());
        if let Some(e) = for_host
            .iter()
            .find(|e| key_family(&e.key.algorithm()) == family)
        {
            return Err(HostKeyProblem::Changed {
                fingerprint: fp(),
                algorithm: key.algorithm().as_str().to_string(),
                file: e.file.as_ref().clone(),
                line: e.line,
            });
        }
        Err(HostKeyProblem::Unknown {
            fingerprint: fp(),
            algorithm: key.algorithm().as_str().to_string(),
        })
    }
}

/// RSA keys are one type whatever the signature hash; other types are their own family.
pub fn key_family(a: &Algorithm) -> String {
    match a {
        Algorithm::Rsa { .. } => "ssh-rsa".to_string(),
        other => other.as_str().to_string(),
    }
}

fn parse_line(line: &str) -> Option<(Marker, Vec<Pattern>, PublicKey)> {
    let mut words = line.split_whitespace();
    let mut first = words.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = words.next()?;
    }
    let patterns = first
        .split(',')
        .filter(|p| !p.is_empty())
        .map(parse_pattern)
        .collect::<Option<Vec<_>>>()?;
    let _key_type = words.next()?;
    let key = russh::keys::parse_public_key_base64(words.next()?).ok()?;
    Some((marker, patterns, key))
}

fn parse_pattern(p: &str) -> Option<Pattern> {
    if let Some(rest) = p.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        let b64 = base64::engine::general_purpose::STANDARD;
        return Some(Pattern::Hashed {
            salt: b64.decode(salt).ok()?,
            hash: b64.decode(hash).ok()?,
        });
    }
    let (negated, glob) = match p.strip_prefix('!') {
        Some(g) => (true, g),
        None => (false, p),
    };
    Some(Pattern::Plain {
        negated,
        glob: glob.to_ascii_lowercase(),
    })
}

/// A line matches when one of its positive patterns matches and none of its negated ones does.
fn matches(patterns: &[Pattern], name: &str) -> bool {
    let mut positive = false;
    for p in patterns {
        match p {
            Pattern::Plain { negated, glob } => {
                if glob_match(glob.as_bytes(), name.as_bytes()) {
                    if *negated {
                        return false;
                    }
                    positive = true;
                }
            }
            Pattern::Hashed { salt, hash } => {
                if let Ok(mac) = Hmac::<Sha1>::new_from_slice(salt)
                    && mac.chain_update(name.as_bytes()).verify_slice(hash).is_ok()
                {
                    positive = true;
                }
            }
        }
    }
    positive
}

/// `*` and `?` wildcards, iterative with single backtracking point (linear in practice).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIKTeapNacXv8l4kPvIwqKppDFVZjLBNxQPIjzOpqogE8";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFG5xpVac+N5uZxreiAuO7eswupv89nxp1XT6nM0Y/mH";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    fn kh(text: &str) -> KnownHosts {
        let mut k = KnownHosts::default();
        k.add(Path::new("/kh"), text);
        k
    }

    #[test]
    fn exact_port_and_name_entries() {
        let k = kh(&format!(
            "# comment\n[127.0.0.2]:2222,[host2]:2222 ssh-ed25519 {KEY_A}\nnode1 ssh-ed25519 {KEY_B} c\n"
        ));
        assert!(k.verify(&[lookup_name("host2", 2222)], &key(KEY_A)).is_ok());
        assert!(
            k.verify(&[lookup_name("127.0.0.2", 2222)], &key(KEY_A))
                .is_ok()
        );
        assert!(k.verify(&[lookup_name("NODE1", 22)], &key(KEY_B)).is_ok());
        // Same host on port 22 is another entry.
        assert!(matches!(
            k.verify(&[lookup_name("host2", 22)], &key(KEY_A)),
            Err(HostKeyProblem::Unknown { .. })
        ));
        match k.verify(&[lookup_name("host2", 2222)], &key(KEY_B)) {
            Err(HostKeyProblem::Changed {
                line, fingerprint, ..
            }) => {
                assert_eq!(line, 2);
                assert!(fingerprint.starts_with("SHA256:"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wildcards_negation_revocation() {
        let k = kh(&format!(
            "*.lab,!bad.lab ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_B}\n@cert-authority * ssh-ed25519 {KEY_A}\n"
        ));
        assert!(k.verify(&["n1.lab".into()], &key(KEY_A)).is_ok());
        assert!(k.verify(&["bad.lab".into()], &key(KEY_A)).is_err());
        assert!(matches!(
            k.verify(&["n1.lab".into()], &key(KEY_B)),
            Err(HostKeyProblem::Revoked { line: 2, .. })
        ));
    }

    #[test]
    fn hashed_names() {
        // Produced by `ssh-keygen -H` for the name "hashed.example".
        let salt = b"0123456789abcdefghij";
        let mac = Hmac::<Sha1>::new_from_slice(salt)
            .unwrap()
            .chain_update(b"hashed.example")
            .finalize()
            .into_bytes();
        let b64 = base64::engine::general_purpose::STANDARD;
        let line = format!(
            "|1|{}|{} ssh-ed25519 {KEY_A}\n",
            b64.encode(salt),
            b64.encode(mac)
        );
        let k = kh(&line);
        assert!(k.verify(&["hashed.example".into()], &key(KEY_A)).is_ok());
        assert!(k.verify(&["other".into()], &key(KEY_A)).is_err());
    }

    #[test]
    fn bad_lines_are_skipped_not_fatal() {
        let k = kh(&format!(
            "garbage\nh ssh-ed25519 !!!\nh ssh-ed25519 {KEY_A}\n"
        ));
        assert_eq!(k.skipped, ["/kh:1", "/kh:2"]);
        assert!(k.verify(&["h".into()], &key(KEY_A)).is_ok());
        assert_eq!(k.algorithms_for(&["h".into()]), vec![Algorithm::Ed25519]);
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"a*b?c", b"axxbyc"));
        assert!(!glob_match(b"a*b?c", b"axxbc"));
        assert!(glob_match(b"**x", b"yx"));
        assert!(!glob_match(b"", b"x"));
        assert!(glob_match(b"", b""));
    }
}
