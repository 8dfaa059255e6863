//! `onehook`: manages hooks and their execution log (reference §9).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use one_client::Value;

use crate::connection::ConnectionArgs;
use crate::console::{CliError, Console, finish, parse_document};
use crate::exec_table::{HookColumn, render_records};
use crate::hook_list::{hook_rows, hook_table};
use crate::hook_show::render_hook;
use crate::id_list::{IdSpec, parse_one};
use crate::list_args::{FormatArgs, ListArgs, list_pool};
use crate::session::{PoolKind, Session, for_each, report};
use crate::template_input::{read_file, update_mode, update_text};
use crate::template_text::template_lines;
use crate::xml::Element;

const ABOUT: &str = "Manages OpenNebula hooks: create, inspect, update, lock and delete them, read \
                     their execution log and retry executions.";

const AFTER_HELP: &str = "\
Connection: --endpoint, else $ONE_XMLRPC, else ~/.one/one_endpoint, else http://localhost:2633/RPC2;
--user and --password, else the session in $ONE_AUTH, else ~/.one/one_auth.

Examples:
  onehook create hook.tmpl
  onehook list
  onehook show 0
  onehook show 0 -e 0
  onehook retry 0 0
  onehook log --error --since 2019-09-23";

#[derive(Debug, Parser)]
#[command(name = "onehook", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct OnehookArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Verbose mode: print `HOOK <id>: <action>` after each action
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: HookCommand,
}

#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Creates a new Hook from the given description (a file, or the template on stdin)
    #[command(after_help = "\
The template is read from FILE; from stdin when FILE is '-', or when FILE is omitted and stdin
is not a terminal. Prints the new hook's ID.

Examples:
  - using a Hook description file:
      onehook create hook.tmpl
  - using a Hook description file via stdin:
      cat hook.tmpl | onehook create")]
    Create {
        /// Template file ('-' for stdin)
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Print the template instead of creating the hook
        #[arg(long)]
        dry: bool,
    },

    /// Deletes the given Hooks
    #[command(after_help = "\
Examples:
  onehook delete 3
  onehook delete 1,4..6,hook-vm")]
    Delete {
        /// Hook ids or names: a comma-separated list, ranges as a..b
        #[arg(value_name = "RANGE|HOOKID_LIST")]
        hooks: String,
    },

    /// Updates the Hook template; without a file the editor is opened
    #[command(after_help = "\
The new text comes from FILE, else from stdin when it is not a terminal, else $EDITOR (default
/usr/bin/vi) opens on the current template (on an empty one with --append). With --append the
text is merged into the template, otherwise it replaces it.

Examples:
  onehook update 0 new-hook.tmpl
  echo 'TIMEOUT = 30' | onehook update 0 --append
  onehook update hook-vm")]
    Update {
        /// Hook id or name
        #[arg(value_name = "HOOKID")]
        hook: String,
        /// Template file
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Merge the new text into the template instead of replacing it
        #[arg(short, long)]
        append: bool,
    },

    /// Renames the Hook
    #[command(after_help = "\
Examples:
  onehook rename 0 vm-pending-hook")]
    Rename {
        /// Hook id or name
        #[arg(value_name = "HOOKID")]
        hook: String,
        /// The new name
        #[arg(value_name = "NAME")]
        name: String,
    },

    /// Lists Hooks in the pool
    #[command(after_help = "\
Columns: ID, NAME (expands to the terminal's width) and TYPE. Rows come in the server's order.

Examples:
  onehook list
  onehook list --no-expand -f TYPE=api
  onehook list --csv -l ID,NAME
  onehook list -x")]
    List {
        /// Ignored (every hook belongs to oneadmin); accepted for compatibility
        #[arg(value_name = "FILTERFLAG")]
        filterflag: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },

    /// Lists Hooks continuously
    #[command(after_help = "\
Examples:
  onehook top
  onehook top -d 5")]
    Top {
        /// Ignored; accepted for compatibility
        #[arg(value_name = "FILTERFLAG")]
        filterflag: Option<String>,
        /// Seconds between refreshes
        #[arg(short = 'd', long, value_name = "x", default_value_t = 1)]
        delay: u64,
        #[command(flatten)]
        list: ListArgs,
    },

    /// Shows information for the given Hook, or one of its executions with -e
    #[command(after_help = "\
Examples:
  onehook show 0
  onehook show hook-vm -e 0
  onehook show 0 -j")]
    Show {
        /// Hook id or name
        #[arg(value_name = "HOOKID")]
        hook: String,
        /// Show this execution record: command, decoded arguments, exit code, stdout, stderr
        #[arg(short = 'e', long = "execution", value_name = "exeid")]
        execution: Option<i64>,
        /// Accepted for compatibility; hooks have no extended view
        #[arg(long)]
        extended: bool,
        #[command(flatten)]
        format: FormatArgs,
    },

    /// Locks Hooks to prevent certain actions (use, manage or admin); show is never locked
    #[command(after_help = "\
Levels: --use (the default) locks Admin, Manage and Use actions; --manage locks Manage and Use
actions; --admin locks only Admin actions; --all locks every action.

Examples:
  onehook lock 0
  onehook lock 0,1 --manage")]
    Lock {
        /// Hook ids or names: a comma-separated list, ranges as a..b
        #[arg(value_name = "RANGE|HOOKID_LIST")]
        hooks: String,
        /// Lock use actions (level 1, the default)
        #[arg(long = "use")]
        use_level: bool,
        /// Lock manage actions (level 2)
        #[arg(long)]
        manage: bool,
        /// Lock admin actions (level 3)
        #[arg(long)]
        admin: bool,
        /// Lock all actions (level 4)
        #[arg(long)]
        all: bool,
    },

    /// Unlocks Hooks
    #[command(after_help = "\
Examples:
  onehook unlock 0")]
    Unlock {
        /// Hook ids or names: a comma-separated list, ranges as a..b
        #[arg(value_name = "RANGE|HOOKID_LIST")]
        hooks: String,
    },

    /// Retries a previous hook execution (with the same arguments)
    #[command(after_help = "\
The result is a new execution record; see it with 'onehook show HOOKID'.

Examples:
  onehook retry 0 0")]
    Retry {
        /// Hook id or name
        #[arg(value_name = "HOOKID")]
        hook: String,
        /// Execution id to retry
        #[arg(value_name = "EXECID")]
        execution: String,
    },

    /// Gets logs about hook executions, of every hook
    #[command(after_help = "\
Dates are read leniently (2019-09-23, 2019-09-23T15:10:38Z, 23/09/2019, Sep 23 2019 15:10,
@1569251438, ...); without a zone they are UTC. Both bounds are exclusive.

Examples:
  onehook log --since 2019-09-19   # all logs since that date
  onehook log --error              # all failing executions
  onehook log --hook-id 0          # all logs of hook 0")]
    Log {
        /// Show only successful executions (wins over --error)
        #[arg(long)]
        success: bool,
        /// Show only failed executions
        #[arg(long)]
        error: bool,
        /// Hook ID to check logs
        #[arg(long = "hook-id", value_name = "id")]
        hook_id: Option<i64>,
        /// First date to take logs (exclusive)
        #[arg(long, value_name = "date")]
        since: Option<String>,
        /// Last date to take logs (exclusive)
        #[arg(long, value_name = "date")]
        until: Option<String>,
        #[command(flatten)]
        format: FormatArgs,
    },
}

/// Runs one `onehook` command and returns the exit status.
pub fn run(args: &OnehookArgs, console: &mut Console<'_>) -> u8 {
    let result = execute(args, console);
    finish(result, console)
}

const HOOKS: PoolKind = PoolKind {
    element: "HOOK",
    method: "one.hookpool.info",
    params: || vec![Value::Int(-1), Value::Int(-1), Value::Int(-1)],
};

fn execute(args: &OnehookArgs, console: &mut Console<'_>) -> Result<(), CliError> {
    let mut session = Session::new(&args.connection);
    let verbose = |console: &mut Console<'_>, id: i64, verb: &str| {
        report(console, args.verbose, "HOOK", id, verb)
    };
    match &args.command {
        HookCommand::Create { file, dry } => {
            let text = read_template(file.as_ref(), console)?;
            if *dry {
                return console.write(ensure_newline(&text));
            }
            let id = session.client()?.hook_allocate(&text)?;
            console.write(format!("ID: {id}\n"))
        }
        HookCommand::Delete { hooks } => {
            let ids = session.resolve_list(hooks, HOOKS)?;
            for_each(console, &ids, |console, id| {
                session.client()?.hook_delete(id)?;
                verbose(console, id, "deleted")
            })
        }
        HookCommand::Update { hook, file, append } => {
            let id = session.resolve_one(hook, HOOKS)?;
            let mode = update_mode(*append);
            let text = update_text(file.as_deref(), mode, console, || {
                let hook = parse_document(&session.client()?.hook_info(id)?, "HOOK")?;
                Ok(hook
                    .child("TEMPLATE")
                    .map(template_lines)
                    .unwrap_or_default())
            })?;
            session.client()?.hook_update(id, &text, mode)?;
            verbose(console, id, "modified")
        }
        HookCommand::Rename { hook, name } => {
            let id = session.resolve_one(hook, HOOKS)?;
            session.client()?.hook_rename(id, name)?;
            verbose(console, id, "renamed")
        }
        HookCommand::List { list, .. } => list_hooks(&mut session, list, console),
        HookCommand::Top { delay, list, .. } => loop {
            console.write("\x1b[2J\x1b[H")?;
            let mut once = list.clone();
            once.no_pager = true;
            list_hooks(&mut session, &once, console)?;
            console.out.flush().map_err(|e| CliError::Io {
                what: "writing to stdout".to_string(),
                source: e,
            })?;
            std::thread::sleep(std::time::Duration::from_secs((*delay).max(1)));
        },
        HookCommand::Show {
            hook,
            execution,
            format,
            ..
        } => {
            let id = session.resolve_one(hook, HOOKS)?;
            let doc = parse_document(&session.client()?.hook_info(id)?, "HOOK")?;
            format.show(&doc, console, |c| {
                render_hook(&doc, *execution, &c.terminal, c.zone)
            })
        }
        HookCommand::Lock {
            hooks,
            use_level,
            manage,
            admin,
            all,
        } => {
            let level = if *use_level {
                1
            } else if *manage {
                2
            } else if *admin {
                3
            } else if *all {
                4
            } else {
                1
            };
            let ids = session.resolve_list(hooks, HOOKS)?;
            for_each(console, &ids, |console, id| {
                session.client()?.hook_lock(id, level)?;
                verbose(console, id, "Hook locked")
            })
        }
        HookCommand::Unlock { hooks } => {
            let ids = session.resolve_list(hooks, HOOKS)?;
            for_each(console, &ids, |console, id| {
                session.client()?.hook_unlock(id)?;
                verbose(console, id, "Hook unlocked")
            })
        }
        HookCommand::Retry { hook, execution } => {
            let exec_id: i64 = match parse_one(execution)? {
                IdSpec::Id(n) => n,
                IdSpec::Name(_) => {
                    return Err(CliError::usage(format!(
                        "Argument '{execution}' is not a valid ID"
                    )));
                }
            };
            let id = session.resolve_one(hook, HOOKS)?;
            session.client()?.hook_retry(id, exec_id)?;
            verbose(console, id, "Retry executed")
        }
        HookCommand::Log {
            success,
            error,
            hook_id,
            since,
            until,
            format,
        } => {
            let rc = if *success {
                1
            } else if *error {
                -1
            } else {
                0
            };
            let since = since
                .as_deref()
                .map(crate::date::parse_date)
                .transpose()?
                .unwrap_or(-1);
            let until = until
                .as_deref()
                .map(crate::date::parse_date)
                .transpose()?
                .unwrap_or(-1);
            let text = session
                .client()?
                .hooklog_info(since, until, hook_id.unwrap_or(-1), rc)?;
            let doc = parse_document(&text, "HOOKLOG")?;
            if let Some(text) = format.render(&doc) {
                return console.write(text);
            }
            let records: Vec<&Element> = doc.children_named("HOOK_EXECUTION_RECORD").collect();
            if records.is_empty() {
                return Ok(());
            }
            let out = render_records(&records, HookColumn::Shown, &console.terminal, console.zone);
            console.write(out)
        }
    }
}

fn list_hooks(
    session: &mut Session<'_>,
    list: &ListArgs,
    console: &mut Console<'_>,
) -> Result<(), CliError> {
    list_pool(session, console, list, HOOKS, &hook_table(), hook_rows)
}

/// The template of `create`: FILE, or stdin for `-` or when FILE is omitted and stdin is not
/// a terminal.
fn read_template(file: Option<&PathBuf>, console: &mut Console<'_>) -> Result<String, CliError> {
    let text = match file {
        Some(path) if path.as_os_str() != "-" => read_file(path)?,
        Some(_) => console.read_stdin()?,
        None if console.stdin_tty => String::new(),
        None => console.read_stdin()?,
    };
    if text.is_empty() {
        return Err(CliError::usage("No hook template provided"));
    }
    Ok(text)
}

fn ensure_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}
