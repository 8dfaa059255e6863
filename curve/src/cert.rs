//! ZeroMQ certificate files, in the format CZMQ's `zcert` and pyzmq's `zmq.auth` write and read:
//! `NAME.key` holds the public key, `NAME.key_secret` the public and the secret key.
//!
//! ```text
//! #   ZeroMQ CURVE Public Certificate
//! metadata
//! curve
//!     public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
//! ```
//!
//! Lines are read as pyzmq reads them: comments (`#`) and other lines are skipped, a line whose
//! first word is `public-key` or `secret-key` carries a key in quotes. Unlike pyzmq, a key that
//! is not 40 Z85 characters, a key given twice, or a secret file other users may read is an
//! error naming the file and line, not a key that silently fails to authenticate.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::z85::{self, Z85Error};

/// A CURVE key (public or secret), 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// The key's Z85 text, as certificate files and logs show it.
    pub fn z85(&self) -> String {
        z85::encode_key(&self.0)
    }
}

impl fmt::Debug for Key {
    /// Only public keys are ever shown; a secret key's holder prints its public half.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.z85())
    }
}

/// A certificate with its secret key: the identity of one end.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretCert {
    pub public: Key,
    pub secret: Key,
}

impl fmt::Debug for SecretCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCert")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The keys of one certificate file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedCert {
    pub public: Option<Key>,
    pub secret: Option<Key>,
}

/// What is wrong with one line of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("expected `{field} = \"<40 Z85 characters>\"`")]
    Syntax { field: &'static str },
    #[error("{field}: {source}")]
    Key {
        field: &'static str,
        source: Z85Error,
    },
    #[error("{field} given a second time")]
    Repeated { field: &'static str },
}

/// Why certificate files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {problem}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        problem: LineProblem,
    },
    #[error("{}: no {field} line (a certificate holds `{field} = \"<40 Z85 characters>\"`)", path.display())]
    Missing { path: PathBuf, field: &'static str },
    #[error(
        "{}: holds a secret-key; a directory of allowed clients holds only their public `.key` files",
        path.display()
    )]
    SecretInPublic { path: PathBuf },
    #[error(
        "{}: mode {mode:04o} lets other users read this secret key; `chmod 600` it (or make a new pair)",
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{}: no public certificates (`*.key` files): no client could connect", path.display())]
    NoClients { path: PathBuf },
    #[error("{}: a certificate name is a plain file name, without `/`", name)]
    BadName { name: String },
    #[error("generating a key pair: {0}")]
    Generate(zmq::Error),
}

/// Reads the keys of certificate text; `Err` is the line (from 1) and its problem.
pub fn parse(text: &str) -> Result<ParsedCert, (usize, LineProblem)> {
    let mut cert = ParsedCert::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let (field, slot) = if line.starts_with("public-key") {
            ("public-key", &mut cert.public)
        } else if line.starts_with("secret-key") {
            ("secret-key", &mut cert.secret)
        } else {
            continue;
        };
        let value = line[field.len()..]
            .trim_start()
            .strip_prefix('=')
            .ok_or((n + 1, LineProblem::Syntax { field }))?
            .trim();
        let value = unquote(value).ok_or((n + 1, LineProblem::Syntax { field }))?;
        let key =
            z85::decode_key(value).map_err(|source| (n + 1, LineProblem::Key { field, source }))?;
        if slot.replace(Key(key)).is_some() {
            return Err((n + 1, LineProblem::Repeated { field }));
        }
    }
    Ok(cert)
}

/// The text between matching quotes (`"` or `'`), or the bare value.
fn unquote(value: &str) -> Option<&str> {
    for quote in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(quote) {
            return rest.strip_suffix(quote);
        }
    }
    (!value.contains(['"', '\''])).then_some(value)
}

fn read(path: &Path) -> Result<(String, std::fs::Metadata), CertError> {
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    // A certificate is a few hundred bytes; the bound keeps a wrong path from filling memory.
    let mut text = String::new();
    Read::by_ref(&mut file)
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(io)?;
    Ok((text, meta))
}

fn parse_file(path: &Path, text: &str) -> Result<ParsedCert, CertError> {
    parse(text).map_err(|(line, problem)| CertError::Line {
        path: path.to_path_buf(),
        line,
        problem,
    })
}

/// The public key of a certificate file (public or secret).
pub fn load_public(path: &Path) -> Result<Key, CertError> {
    let (text, _) = read(path)?;
    parse_file(path, &text)?.public.ok_or(CertError::Missing {
        path: path.to_path_buf(),
        field: "public-key",
    })
}

/// A secret certificate. As OpenSSH does with private keys, one that other users may read or
/// write is refused: its key may already be known, and CURVE would then protect nothing.
pub fn load_secret(path: &Path) -> Result<SecretCert, CertError> {
    let (text, meta) = read(path)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CertError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    let cert = parse_file(path, &text)?;
    let missing = |field| CertError::Missing {
        path: path.to_path_buf(),
        field,
    };
    Ok(SecretCert {
        public: cert.public.ok_or_else(|| missing("public-key"))?,
        secret: cert.secret.ok_or_else(|| missing("secret-key"))?,
    })
}

/// The client public keys a server accepts, with the name of the file each came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    keys: BTreeMap<Key, String>,
}

impl AllowList {
    /// Every `*.key` file of `dir` (not its subdirectories), as pyzmq's authenticator and CZMQ's
    /// `zcertstore` read a directory. Any bad file stops the load: a client left out because of
    /// a typo would be a confusing failure later.
    pub fn load_dir(dir: &Path) -> Result<AllowList, CertError> {
        let io = |source| CertError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "key") && p.is_file())
            .collect();
        files.sort();
        let mut list = AllowList::default();
        for path in files {
            let (text, _) = read(&path)?;
            let cert = parse_file(&path, &text)?;
            if cert.secret.is_some() {
                return Err(CertError::SecretInPublic { path });
            }
            let key = cert.public.ok_or_else(|| CertError::Missing {
                path: path.clone(),
                field: "public-key",
            })?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            list.keys.insert(key, name);
        }
        if list.keys.is_empty() {
            return Err(CertError::NoClients {
                path: dir.to_path_buf(),
            });
        }
        Ok(list)
    }

    /// The name (file stem) of an allowed key.
    pub fn name_of(&self, key: &Key) -> Option<&str> {
        self.keys.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The two files of a new key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPair {
    pub public_file: PathBuf,
    pub secret_file: PathBuf,
    pub public: Key,
}

/// Makes a key pair with libzmq and writes `dir/NAME.key` (0644) and `dir/NAME.key_secret`
/// (0600), creating `dir` (0700) if needed. Existing files are never overwritten.
pub fn generate(dir: &Path, name: &str) -> Result<NewPair, CertError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(CertError::BadName {
            name: name.to_string(),
        });
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CertError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    let pair = zmq::CurveKeyPair::new().map_err(CertError::Generate)?;
    let cert = SecretCert {
        public: Key(pair.public_key),
        secret: Key(pair.secret_key),
    };
    let public_file = dir.join(format!("{name}.key"));
    let secret_file = dir.join(format!("{name}.key_secret"));
    write_new(&secret_file, 0o600, &cert_text(&cert, true))?;
    if let Err(e) = write_new(&public_file, 0o644, &cert_text(&cert, false)) {
        // Half a pair is worse than none: the next attempt would find the secret file there.
        let _ = std::fs::remove_file(&secret_file);
        return Err(e);
    }
    Ok(NewPair {
        public_file,
        secret_file,
        public: cert.public,
    })
}

fn write_new(path: &Path, mode: u32, text: &str) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// A certificate in zcert's layout.
fn cert_text(cert: &SecretCert, with_secret: bool) -> String {
    let mut text = if with_secret {
        "#   ZeroMQ CURVE **Secret** Certificate\n\
         #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
            .to_string()
    } else {
        "#   ZeroMQ CURVE Public Certificate\n\
         #   Exchange securely, or use a secure mechanism to verify the contents\n\
         #   of this file after exchange.\n\n"
            .to_string()
    };
    text.push_str("metadata\ncurve\n");
    text.push_str(&format!("    public-key = \"{}\"\n", cert.public.z85()));
    if with_secret {
        text.push_str(&format!("    secret-key = \"{}\"\n", cert.secret.z85()));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const PUBLIC: &str = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    const SECRET: &str = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";

    fn pyzmq_style(secret: bool) -> String {
        let mut text = format!(
            "#   ****  Generated on 2026-01-01 by pyzmq  ****\n#   ZeroMQ CURVE Public Certificate\n\nmetadata\ncurve\n    public-key = \"{PUBLIC}\"\n"
        );
        if secret {
            text.push_str(&format!("    secret-key = \"{SECRET}\"\n"));
        }
        text
    }

    #[test]
    fn pyzmq_and_czmq_layouts_parse() {
        let public = parse(&pyzmq_style(false)).expect("public cert");
        assert_eq!(public.public.map(|k| k.z85()).as_deref(), Some(PUBLIC));
        assert_eq!(public.secret, None);
        let secret = parse(&pyzmq_style(true)).expect("secret cert");
        assert_eq!(secret.secret.map(|k| k.z85()).as_deref(), Some(SECRET));
        // Single quotes and no quotes, as pyzmq's reader also takes them.
        let bare = parse(&format!(
            "curve\n  public-key={PUBLIC}\n  secret-key = '{SECRET}'\n"
        ))
        .expect("bare values");
        assert_eq!(bare, secret);
    }

    #[test]
    fn bad_lines_name_their_line() {
        let cases: [(String, usize, &str); 6] = [
            (
                format!("curve\n    public-key = \"{}\"\n", &PUBLIC[..39]),
                2,
                "public-key: a key is 40 Z85 characters, this one has 39",
            ),
            (
                format!("curve\n\n    public-key = \"{}~\"\n", &PUBLIC[..39]),
                3,
                "public-key: '~' at character 40 is not a Z85 character",
            ),
            (
                format!("public-key \"{PUBLIC}\"\n"),
                1,
                "expected `public-key = \"<40 Z85 characters>\"`",
            ),
            (
                format!("public-key = \"{PUBLIC}\n"),
                1,
                "expected `public-key = \"<40 Z85 characters>\"`",
            ),
            (
                format!("public-key = \"{PUBLIC}\"\npublic-key = \"{PUBLIC}\"\n"),
                2,
                "public-key given a second time",
            ),
            (
                format!("public-key = \"{PUBLIC}\"\n    secret-key = \"\"\n"),
                2,
                "secret-key: a key is 40 Z85 characters, this one has 0",
            ),
        ];
        for (text, line, message) in cases {
            let (at, problem) = parse(&text).expect_err(&text);
            assert_eq!(
                (at, problem.to_string().as_str()),
                (line, message),
                "{text}"
            );
        }
    }

    #[test]
    fn files_missing_a_key_are_refused_with_their_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hem.key_secret");
        std::fs::write(&path, pyzmq_style(false)).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let e = load_secret(&path).expect_err("no secret");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: no secret-key line (a certificate holds `secret-key = \"<40 Z85 characters>\"`)",
                path.display()
            )
        );
        let empty = dir.path().join("empty.key");
        std::fs::write(&empty, "# nothing\n").expect("write");
        assert!(matches!(
            load_public(&empty),
            Err(CertError::Missing {
                field: "public-key",
                ..
            })
        ));
        let wrong = dir.path().join("wrong.key");
        std::fs::write(
            &wrong,
            format!("curve\n    public-key = \"{}\"\n", &PUBLIC[1..]),
        )
        .expect("write");
        assert_eq!(
            load_public(&wrong).expect_err("short").to_string(),
            format!(
                "{}:2: public-key: a key is 40 Z85 characters, this one has 39",
                wrong.display()
            )
        );
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("one_hm.key_secret");
        std::fs::write(&path, pyzmq_style(true)).expect("write");
        for mode in [0o644, 0o640, 0o604, 0o606, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            match load_secret(&path) {
                Err(CertError::Exposed { mode: m, .. }) => assert_eq!(m, mode),
                other => panic!("mode {mode:o}: {other:?}"),
            }
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        let cert = load_secret(&path).expect("0400 is private");
        assert_eq!(
            (cert.public.z85(), cert.secret.z85()),
            (PUBLIC.into(), SECRET.into())
        );
    }

    #[test]
    fn generated_pairs_load_back_and_are_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        let pair = generate(&keys, "one_hm").expect("generate");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!((mode(&keys), mode(&pair.secret_file)), (0o700, 0o600));
        assert_eq!(load_public(&pair.public_file).expect("public"), pair.public);
        let secret = load_secret(&pair.secret_file).expect("secret");
        assert_eq!(secret.public, pair.public);
        assert_ne!(secret.secret, secret.public);
        assert!(matches!(
            generate(&keys, "one_hm"),
            Err(CertError::Io { .. })
        ));
        assert_eq!(load_secret(&pair.secret_file).expect("kept"), secret);
        for bad in ["", "a/b", ".."] {
            assert!(matches!(
                generate(&keys, bad),
                Err(CertError::BadName { .. })
            ));
        }
    }

    #[test]
    fn a_client_directory_takes_only_public_key_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            AllowList::load_dir(dir.path()),
            Err(CertError::NoClients { .. })
        ));
        let a = generate(dir.path(), "hem").expect("pair");
        let b = generate(dir.path(), "events").expect("pair");
        std::fs::write(dir.path().join("notes.txt"), "not a key").expect("write");
        let list = AllowList::load_dir(dir.path()).expect("two clients");
        assert_eq!(list.len(), 2);
        assert_eq!(list.name_of(&a.public), Some("hem"));
        assert_eq!(list.name_of(&b.public), Some("events"));
        std::fs::copy(&a.secret_file, dir.path().join("leak.key")).expect("copy");
        assert!(matches!(
            AllowList::load_dir(dir.path()),
            Err(CertError::SecretInPublic { .. })
        ));
    }
}
