//! `one-gen-manpages --root DIR [BINARY…]`: writes the man pages (section 1, one per command and
//! subcommand) and the bash, zsh and fish completions of the named binaries (all of them when
//! none is named) under DIR, in the places a Debian package installs them. The pages are left
//! uncompressed; `scripts/package` compresses them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{CommandFactory as _, Parser};
use clap_complete::Shell;

/// Writes man pages and shell completions generated from the binaries' own command lines.
#[derive(Parser, Debug)]
#[command(name = "one-gen-manpages", version)]
struct Args {
    /// The staging root; files go to DIR/usr/share/man/man1, DIR/usr/share/bash-completion,
    /// DIR/usr/share/zsh and DIR/usr/share/fish.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// The binaries to document (default: every one).
    #[arg(value_name = "BINARY")]
    binaries: Vec<String>,
}

/// A binary's name and its command line's definition.
type Binary = (&'static str, fn() -> clap::Command);

/// Every binary with a command line.
const BINARIES: &[Binary] = &[
    ("oned-lite", oned_lite::cli::command),
    ("one_hm", one_hm::config::Cli::command),
    ("onehem-server", onehem_server::cli::command),
    ("onehem-agent", onehem_agent::cli::command),
    ("onehook", one_cli::onehook::OnehookArgs::command),
    ("onevm", one_cli::onevm::OnevmArgs::command),
    ("onehost", one_cli::onehost::OnehostArgs::command),
    ("oneimage", one_cli::oneimage::OneimageArgs::command),
];

/// Where each shell looks for the completions a package installs, and the file name it expects.
const COMPLETIONS: &[(Shell, &str, &str, &str)] = &[
    (Shell::Bash, "usr/share/bash-completion/completions", "", ""),
    (Shell::Zsh, "usr/share/zsh/vendor-completions", "_", ""),
    (
        Shell::Fish,
        "usr/share/fish/vendor_completions.d",
        "",
        ".fish",
    ),
];

fn main() -> ExitCode {
    let args = Args::parse();
    match generate(&args.root, &args.binaries) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("one-gen-manpages: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn generate(root: &Path, names: &[String]) -> anyhow::Result<()> {
    let chosen = choose(names)?;
    let man_dir = root.join("usr/share/man/man1");
    std::fs::create_dir_all(&man_dir)
        .with_context(|| format!("cannot create {}", man_dir.display()))?;
    for (name, command) in chosen {
        clap_mangen::generate_to(command(), &man_dir)
            .with_context(|| format!("cannot write the man pages of {name}"))?;
        for (shell, dir, prefix, suffix) in COMPLETIONS {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let path = dir.join(format!("{prefix}{name}{suffix}"));
            let mut file = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            clap_complete::generate(*shell, &mut command(), name, &mut file);
        }
    }
    Ok(())
}

fn choose(names: &[String]) -> anyhow::Result<Vec<Binary>> {
    if names.is_empty() {
        return Ok(BINARIES.to_vec());
    }
    let mut chosen = Vec::new();
    for name in names {
        match BINARIES.iter().find(|(known, _)| known == name) {
            Some(entry) => chosen.push(*entry),
            None => bail!(
                "unknown binary {name:?}; known: {}",
                BINARIES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binary_gets_a_page_and_three_completions() {
        let root = tempfile::tempdir().expect("tempdir");
        generate(root.path(), &[]).expect("generate");
        for (name, command) in BINARIES {
            assert_eq!(command().get_name(), *name, "the command names itself");
            let page =
                std::fs::read_to_string(root.path().join(format!("usr/share/man/man1/{name}.1")))
                    .expect("man page");
            assert!(page.contains(".TH"), "{name}: a roff title");
            let bash = std::fs::read_to_string(
                root.path()
                    .join(format!("usr/share/bash-completion/completions/{name}")),
            )
            .expect("bash completion");
            assert!(
                bash.contains("complete -F") && bash.contains(name),
                "{name}: bash"
            );
            assert!(
                root.path()
                    .join(format!("usr/share/zsh/vendor-completions/_{name}"))
                    .is_file()
            );
            assert!(
                root.path()
                    .join(format!("usr/share/fish/vendor_completions.d/{name}.fish"))
                    .is_file()
            );
        }
        // Subcommands get their own pages, as git's do.
        assert!(
            root.path()
                .join("usr/share/man/man1/onehook-list.1")
                .is_file()
        );
        assert!(
            root.path()
                .join("usr/share/man/man1/onehem-server-sync-hooks.1")
                .is_file()
        );
    }

    #[test]
    fn an_unknown_binary_is_refused_and_nothing_is_written() {
        let root = tempfile::tempdir().expect("tempdir");
        let err = generate(root.path(), &["onezone".to_string()]).expect_err("unknown");
        assert!(format!("{err}").contains("unknown binary \"onezone\""));
        assert!(!root.path().join("usr").exists());
    }
}
