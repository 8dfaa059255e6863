//! COMMAND resolution (reference §8.3 step 1) and the confinement of local commands.
//!
//! A hook's author is not trusted with the front-end's file system: a local COMMAND runs only
//! from `hook_base_path` or from a directory the operator lists in `hook_allowed_paths`. The
//! check is lexical, on the path as written, so it costs no system call per execution:
//!
//! - Any `..` component is refused, even one that would stay inside lexically (`a/../b`): when
//!   `a` is a symlink the kernel resolves `a/..` to the parent of its target, so only the
//!   absence of `..` makes the lexical answer the kernel's answer.
//! - Symlinks inside an allowed directory are followed. Whoever can create one there can also
//!   write a hook script there, so they add no power; the shipped layouts rely on them
//!   (`hooks/autostart/one-autostart` points at the installed binary).
//!
//! Remote commands are confined by the remote executor (`remote::command_path`) and, in agent
//! mode, again by the agent on the host.

/// Base paths of relative hook commands and the directories absolute local commands may name.
#[derive(Clone, Debug, Default)]
pub struct HookPaths {
    /// `hook_base_path`.
    pub local: String,
    /// `remote_hook_base_path` (a path on the hosts).
    pub remote: String,
    /// `hook_allowed_paths`: absolute directories, besides `local`, whose commands may run
    /// locally when a COMMAND names them by an absolute path.
    pub allowed: Vec<String>,
}

/// The configuration key an operator extends to allow absolute local commands.
pub const ALLOWED_KEY: &str = "hook_allowed_paths";

impl HookPaths {
    /// The path `command` runs from: a relative one below the base path of its side.
    pub fn resolve(&self, command: &str, remote: bool) -> String {
        if command.starts_with('/') {
            return command.to_string();
        }
        let base = if remote { &self.remote } else { &self.local };
        format!("{}/{}", base.trim_end_matches('/'), command)
    }

    /// Whether a local hook may run `command` (as written in COMMAND); the error is the text
    /// of its failure record.
    pub fn check_local(&self, command: &str) -> Result<(), String> {
        let escapes = words(command).any(|w| w == "..");
        if !command.starts_with('/') {
            if escapes {
                return Err(format!(
                    "COMMAND {command} refused: a relative COMMAND must stay below \
                     hook_base_path {}, and '..' is not allowed in it",
                    self.local
                ));
            }
            return Ok(());
        }
        if !escapes
            && (is_below(command, &self.local) || self.allowed.iter().any(|d| is_below(command, d)))
        {
            return Ok(());
        }
        let listed = if self.allowed.is_empty() {
            "none".to_string()
        } else {
            self.allowed.join(", ")
        };
        let rule = format!(
            "an absolute COMMAND must name a file below hook_base_path {} or a directory of \
             {ALLOWED_KEY} in onehem-server.conf (listed: {listed})",
            self.local
        );
        if escapes {
            Err(format!(
                "COMMAND {command} refused: '..' is not allowed in it; {rule}"
            ))
        } else {
            Err(format!(
                "COMMAND {command} refused: {rule}; add its directory to {ALLOWED_KEY} to run it"
            ))
        }
    }
}

/// The path's components without empty and `.` ones (`/a//./b` is `a`, `b`).
fn words(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|w| !w.is_empty() && *w != ".")
}

/// Whether `path` names something strictly inside `dir`, component by component (so
/// `/allowed-evil/x` is not inside `/allowed`).
fn is_below(path: &str, dir: &str) -> bool {
    if !dir.starts_with('/') {
        return false;
    }
    let mut inside = words(path);
    for d in words(dir) {
        if inside.next() != Some(d) {
            return false;
        }
    }
    inside.next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(allowed: &[&str]) -> HookPaths {
        HookPaths {
            local: "/var/lib/one/remotes/hooks".into(),
            remote: "/var/tmp/one/hooks".into(),
            allowed: allowed.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn relative_commands_stay_below_the_base() {
        let p = paths(&[]);
        for ok in ["x.sh", "ft/host_error.rb", "./x.sh", "a/./b", "a//b"] {
            assert_eq!(p.check_local(ok), Ok(()), "{ok}");
        }
        for bad in [
            "../x",
            "./a/../../b",
            "a/../b",
            "a/..",
            "..",
            "a/b/../../../etc/x",
        ] {
            let e = p.check_local(bad).unwrap_err();
            assert!(e.starts_with(&format!("COMMAND {bad} refused:")), "{e}");
            assert!(
                e.contains("hook_base_path /var/lib/one/remotes/hooks"),
                "{e}"
            );
        }
    }

    #[test]
    fn absolute_commands_need_an_allowed_directory() {
        let p = paths(&["/allowed", "/usr/local/bin/"]);
        for ok in [
            "/allowed/x",
            "/allowed/sub/x",
            "/allowed//./x",
            "/usr/local/bin/x",
            "/var/lib/one/remotes/hooks/x.sh",
        ] {
            assert_eq!(p.check_local(ok), Ok(()), "{ok}");
        }
        for bad in [
            "/allowed-evil/x",
            "/allowedx",
            "/allowed",
            "/allowed/",
            "/allowed/../etc/passwd",
            "/allowed/a/../x",
            "/etc/x",
            "/var/lib/one/remotes/hooksX/x",
            "/var/lib/one/remotes/hooks/../x",
            "/usr/local/x",
        ] {
            let e = p.check_local(bad).unwrap_err();
            assert!(e.contains(ALLOWED_KEY), "{e}");
            assert!(e.contains("listed: /allowed, /usr/local/bin/"), "{e}");
        }
    }

    #[test]
    fn nothing_absolute_outside_the_base_by_default() {
        let p = paths(&[]);
        let e = p.check_local("/bin/true").unwrap_err();
        assert_eq!(
            e,
            "COMMAND /bin/true refused: an absolute COMMAND must name a file below \
             hook_base_path /var/lib/one/remotes/hooks or a directory of hook_allowed_paths in \
             onehem-server.conf (listed: none); add its directory to hook_allowed_paths to run it"
        );
    }

    #[test]
    fn the_root_allows_every_absolute_path_but_no_escape() {
        let p = paths(&["/"]);
        assert_eq!(p.check_local("/bin/true"), Ok(()));
        let e = p.check_local("/bin/../etc/x").unwrap_err();
        assert!(
            e.starts_with("COMMAND /bin/../etc/x refused: '..' is not allowed in it; "),
            "{e}"
        );
        assert!(p.check_local("../x").is_err());
    }

    #[test]
    fn relative_directories_allow_nothing() {
        // The config refuses them; a hand-built HookPaths must not match by accident.
        let p = HookPaths {
            local: "hooks".into(),
            remote: String::new(),
            allowed: vec!["bin".into()],
        };
        assert!(p.check_local("/bin/true").is_err());
        assert!(p.check_local("/hooks/x").is_err());
    }
}
