//! Confinement of remote commands to the host's hook directory.
//!
//! The HEM resolves COMMAND against the global `remote_hook_base_path`; a host may keep its
//! hooks elsewhere (a per-host override), so paths below the global base are moved below the
//! host's base. Anything that is not below one of the two, or that contains `..`, is refused
//! before a connection is even opened. In agent mode the agent checks again on the host, with
//! symlinks resolved.

/// A command refused for its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("command {command} refused: {reason}")]
pub struct CommandRefused {
    /// The command as requested.
    pub command: String,
    /// Why.
    pub reason: String,
}

/// Maps `command` to the path it has on a host whose hook directory is `host_base`.
pub fn map_command(
    command: &str,
    global_base: &str,
    host_base: &str,
) -> Result<String, CommandRefused> {
    let refuse = |reason: String| CommandRefused {
        command: command.to_string(),
        reason,
    };
    if command.is_empty() {
        return Err(refuse("empty command".into()));
    }
    let words = normal_words(command).ok_or_else(|| refuse("'..' is not allowed".into()))?;
    let host = normal_words(host_base).unwrap_or_default();
    if !command.starts_with('/') {
        let mut all = host.clone();
        all.extend(words);
        return Ok(join(&all));
    }
    let global = normal_words(global_base).unwrap_or_default();
    for base in [&global, &host] {
        if words.len() > base.len() && words.starts_with(base) {
            let mut all = host.clone();
            all.extend_from_slice(&words[base.len()..]);
            return Ok(join(&all));
        }
    }
    Err(refuse(format!("outside remote_hook_base_path {host_base}")))
}

/// The components of a path without empty and `.` ones; `None` if one is `..`.
fn normal_words(path: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    for w in path.split('/') {
        match w {
            "" | "." => {}
            ".." => return None,
            w => out.push(w),
        }
    }
    Some(out)
}

fn join(words: &[&str]) -> String {
    let mut s = String::new();
    for w in words {
        s.push('/');
        s.push_str(w);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: &str = "/var/tmp/one/hooks";

    #[test]
    fn maps_global_to_host_base() {
        assert_eq!(
            map_command("/var/tmp/one/hooks/vm/x.sh", G, "/srv/h2/hooks/").unwrap(),
            "/srv/h2/hooks/vm/x.sh"
        );
        assert_eq!(
            map_command("/var/tmp/one/hooks/x.sh", G, G).unwrap(),
            "/var/tmp/one/hooks/x.sh"
        );
        assert_eq!(
            map_command("/srv/h2/hooks/./x.sh", G, "/srv/h2/hooks").unwrap(),
            "/srv/h2/hooks/x.sh"
        );
        assert_eq!(
            map_command("rel/x.sh", G, "/srv/h2/hooks").unwrap(),
            "/srv/h2/hooks/rel/x.sh"
        );
    }

    #[test]
    fn refuses_escapes() {
        for c in [
            "/var/tmp/one/hooks/../x",
            "../x",
            "/usr/bin/id",
            "/var/tmp/one/hooksX/a",
            "/var/tmp/one/hooks",
            "",
        ] {
            assert!(map_command(c, G, "/srv/h").is_err(), "{c}");
        }
        let e = map_command("/etc/x", G, "/srv/h").unwrap_err();
        assert_eq!(
            e.to_string(),
            "command /etc/x refused: outside remote_hook_base_path /srv/h"
        );
    }
}
