//! Quoting for the remote login shell. SSH carries one command string, which the remote user's
//! shell parses; quoting every word makes that shell pass each argument through unchanged.

/// One word for a POSIX shell: left bare when it only holds characters no shell treats
/// specially, otherwise single-quoted with embedded `'` written as `'\''`.
pub fn quote(word: &str) -> String {
    let bare = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if bare {
        return word.to_string();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A whole argv as one command line.
pub fn quote_argv<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(quote("/var/tmp/one/hooks/x.sh"), "/var/tmp/one/hooks/x.sh");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$HOME;`x`|&>*?~"), "'$HOME;`x`|&>*?~'");
        assert_eq!(quote_argv(&["a", "b c"]), "a 'b c'");
    }

    /// The real shell gets back exactly the words that were quoted.
    #[test]
    fn sh_round_trip() {
        let words = [
            "plain",
            "",
            "with space",
            "quote'in",
            "$HOME `id` $(id) \\ \" ; | & < > * ? [ ] ~ # ! { }",
            "new\nline\ttab",
            "ünïcødé",
        ];
        let script = format!("printf '%s\\0' {}", quote_argv(&words));
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let got: Vec<String> = out
            .stdout
            .split(|&b| b == 0)
            .filter(|_| true)
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .collect();
        assert_eq!(&got[..words.len()], &words[..]);
    }
}
