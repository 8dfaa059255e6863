//! `onevm`: creates and drives virtual machines of the front-end's simulated cloud.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use one_client::Value;
use one_proto::template::{Attribute, Template};

use crate::connection::ConnectionArgs;
use crate::console::{CliError, Console, finish};
use crate::list_args::{FormatArgs, ListArgs, list_pool};
use crate::session::{PoolKind, Session, for_each, report};
use crate::template_input::{create_text, update_mode, update_text};
use crate::template_text::template_lines;
use crate::vm_render::{render_vm, vm_rows, vm_table};

const ABOUT: &str = "Manages virtual machines of the simulated cloud: create, deploy, power off, resume, \
                     stop, suspend, terminate and update them.";

const AFTER_HELP: &str = "\
Connection: --endpoint, else $ONE_XMLRPC, else ~/.one/one_endpoint, else http://localhost:2633/RPC2;
--user and --password, else the session in $ONE_AUTH, else ~/.one/one_auth.

Examples:
  onevm create --name test --cpu 1 --memory 2
  onevm deploy test host01
  onevm list
  onevm poweroff 0";

pub const VMS: PoolKind = PoolKind {
    element: "VM",
    method: "one.vmpool.info",
    params: || {
        vec![
            Value::Int(-2),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
        ]
    },
};

pub const HOSTS: PoolKind = PoolKind {
    element: "HOST",
    method: "one.hostpool.info",
    params: Vec::new,
};

#[derive(Debug, Parser)]
#[command(name = "onevm", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct OnevmArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Verbose mode: print `VM <id>: <action>` after each action
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: VmCommand,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct CreateOptions {
    /// Name of the new VM
    #[arg(long, value_name = "name")]
    pub name: Option<String>,
    /// CPU percentage reserved for the VM (1=100% one CPU)
    #[arg(long, value_name = "cpu")]
    pub cpu: Option<String>,
    /// Number of virtualized CPUs
    #[arg(long, value_name = "vcpu")]
    pub vcpu: Option<String>,
    /// Memory amount given to the VM: MB, or with a unit (512m, 2g)
    #[arg(long, value_name = "memory")]
    pub memory: Option<String>,
    /// Any other attribute, e.g. --attr AUTOSTART=yes (repeatable; these go to the user template)
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attrs: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Creates a new VM from a template file and/or options; prints its ID
    #[command(after_help = "\
The template is FILE ('-' for stdin) followed by the attributes the options give.

Examples:
  onevm create --cpu 1 --memory 2 --name test
  onevm create --cpu 1 --memory 128 --name web --attr AUTOSTART=yes
  onevm create vm.tmpl
  onevm create vm.tmpl --hold")]
    Create {
        /// Template file ('-' for stdin)
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        #[command(flatten)]
        options: CreateOptions,
        /// Creates the new VM on hold state instead of pending
        #[arg(long)]
        hold: bool,
        /// Print the template instead of creating the VM
        #[arg(long)]
        dry: bool,
    },

    /// Lists VMs in the pool
    #[command(after_help = "\
Columns: ID, USER, GROUP, NAME, STAT (short state: pend, prol, boot, runn, poff, unkn, done, ...),
CPU, MEM, HOST and TIME.

Examples:
  onevm list
  onevm list -f STAT=runn
  onevm list -x")]
    List {
        #[command(flatten)]
        list: ListArgs,
    },

    /// Shows information for the given VM
    #[command(after_help = "\
Examples:
  onevm show 0
  onevm show test -x")]
    Show {
        /// VM id or name
        #[arg(value_name = "VMID")]
        vm: String,
        #[command(flatten)]
        format: FormatArgs,
    },

    /// Deploys a PENDING or HOLD VM on the given host
    #[command(after_help = "\
Examples:
  onevm deploy 0 host01
  onevm deploy test 3")]
    Deploy {
        /// VM ids or names: a comma-separated list, ranges as a..b
        #[arg(value_name = "RANGE|VMID_LIST")]
        vms: String,
        /// Host id or name
        #[arg(value_name = "HOSTID")]
        host: String,
        /// Enforce the host's capacity
        #[arg(long)]
        enforce: bool,
    },

    /// Powers off running VMs (they keep their host and disks)
    #[command(after_help = "\
Examples:
  onevm poweroff 0
  onevm poweroff 0,1 --hard")]
    Poweroff {
        #[arg(value_name = "RANGE|VMID_LIST")]
        vms: String,
        /// Power off without waiting for the guest
        #[arg(long)]
        hard: bool,
    },

    /// Resumes VMs that are powered off, stopped, suspended or undeployed
    #[command(after_help = "\
Examples:
  onevm resume 0")]
    Resume {
        #[arg(value_name = "RANGE|VMID_LIST")]
        vms: String,
    },

    /// Terminates VMs (they end in DONE)
    #[command(after_help = "\
Examples:
  onevm terminate 0
  onevm terminate 0..3 --hard")]
    Terminate {
        #[arg(value_name = "RANGE|VMID_LIST")]
        vms: String,
        /// Terminate without waiting for the guest
        #[arg(long)]
        hard: bool,
    },

    /// Stops running VMs (their state is saved and they leave the host)
    #[command(after_help = "\
Examples:
  onevm stop 0")]
    Stop {
        #[arg(value_name = "RANGE|VMID_LIST")]
        vms: String,
    },

    /// Suspends running VMs (their state is saved, they stay on the host)
    #[command(after_help = "\
Examples:
  onevm suspend 0")]
    Suspend {
        #[arg(value_name = "RANGE|VMID_LIST")]
        vms: String,
    },

    /// Undeploys running VMs (they leave the host, their disks are kept)
    #[command(after_help = "\
Examples:
  onevm undeploy 0")]
    Undeploy {
        #[arg(value_name = "RANGE|VMID_LIST")]
        vms: String,
        /// Undeploy without waiting for the guest
        #[arg(long)]
        hard: bool,
    },

    /// Reboots running VMs
    #[command(after_help = "\
Examples:
  onevm reboot 0")]
    Reboot {
        #[arg(value_name = "RANGE|VMID_LIST")]
        vms: String,
        /// Reset instead of a clean reboot
        #[arg(long)]
        hard: bool,
    },

    /// Puts PENDING VMs on hold
    #[command(after_help = "\
Examples:
  onevm hold 0")]
    Hold {
        #[arg(value_name = "RANGE|VMID_LIST")]
        vms: String,
    },

    /// Releases VMs on hold (they become PENDING)
    #[command(after_help = "\
Examples:
  onevm release 0")]
    Release {
        #[arg(value_name = "RANGE|VMID_LIST")]
        vms: String,
    },

    /// Updates the VM's user template; without a file the editor is opened
    #[command(after_help = "\
The new text comes from FILE, else from stdin when it is not a terminal, else $EDITOR opens on
the current user template (on an empty one with --append).

Examples:
  echo 'AUTOSTART = yes' | onevm update 0 --append
  onevm update 0 user.tmpl")]
    Update {
        #[arg(value_name = "VMID")]
        vm: String,
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Merge the new text into the user template instead of replacing it
        #[arg(short, long)]
        append: bool,
    },
}

pub fn run(args: &OnevmArgs, console: &mut Console<'_>) -> u8 {
    let result = execute(args, console);
    finish(result, console)
}

fn execute(args: &OnevmArgs, console: &mut Console<'_>) -> Result<(), CliError> {
    let mut session = Session::new(&args.connection);
    let verbose = args.verbose;
    let action = |session: &mut Session<'_>, console: &mut Console<'_>, vms: &str, name: &str| {
        let ids = session.resolve_list(vms, VMS)?;
        for_each(console, &ids, |console, id| {
            session.call_id("one.vm.action", vec![name.into(), Value::Int(to_i32(id)?)])?;
            report(console, verbose, "VM", id, name)
        })
    };
    let hard = |name: &str, hard: bool| {
        if hard {
            format!("{name}-hard")
        } else {
            name.to_string()
        }
    };
    match &args.command {
        VmCommand::Create {
            file,
            options,
            hold,
            dry,
        } => {
            let text = create_template(file.as_deref(), options, console)?;
            if *dry {
                return console.write(text);
            }
            let id = session.call_id("one.vm.allocate", vec![text.into(), Value::Bool(*hold)])?;
            console.write(format!("ID: {id}\n"))
        }
        VmCommand::List { list } => {
            list_pool(&mut session, console, list, VMS, &vm_table(), |pool| {
                vm_rows(pool, now())
            })
        }
        VmCommand::Show { vm, format } => {
            let id = session.resolve_one(vm, VMS)?;
            let doc = session.document("one.vm.info", vec![Value::Int(to_i32(id)?)], "VM")?;
            format.show(&doc, console, |c| {
                render_vm(&doc, &c.terminal, c.zone, now())
            })
        }
        VmCommand::Deploy { vms, host, enforce } => {
            let hid = session.resolve_one(host, HOSTS)?;
            let ids = session.resolve_list(vms, VMS)?;
            for_each(console, &ids, |console, id| {
                let params = vec![
                    Value::Int(to_i32(id)?),
                    Value::Int(to_i32(hid)?),
                    Value::Bool(*enforce),
                    Value::Int(-1),
                ];
                session.call_id("one.vm.deploy", params)?;
                report(console, verbose, "VM", id, "deploying")
            })
        }
        VmCommand::Poweroff { vms, hard: h } => {
            action(&mut session, console, vms, &hard("poweroff", *h))
        }
        VmCommand::Resume { vms } => action(&mut session, console, vms, "resume"),
        VmCommand::Terminate { vms, hard: h } => {
            action(&mut session, console, vms, &hard("terminate", *h))
        }
        VmCommand::Stop { vms } => action(&mut session, console, vms, "stop"),
        VmCommand::Suspend { vms } => action(&mut session, console, vms, "suspend"),
        VmCommand::Undeploy { vms, hard: h } => {
            action(&mut session, console, vms, &hard("undeploy", *h))
        }
        VmCommand::Reboot { vms, hard: h } => {
            action(&mut session, console, vms, &hard("reboot", *h))
        }
        VmCommand::Hold { vms } => action(&mut session, console, vms, "hold"),
        VmCommand::Release { vms } => action(&mut session, console, vms, "release"),
        VmCommand::Update { vm, file, append } => {
            let id = session.resolve_one(vm, VMS)?;
            let text = update_text(file.as_deref(), update_mode(*append), console, || {
                let doc = session.document("one.vm.info", vec![Value::Int(to_i32(id)?)], "VM")?;
                Ok(doc
                    .child("USER_TEMPLATE")
                    .map(template_lines)
                    .unwrap_or_default())
            })?;
            let mode = Value::Int(i32::from(*append));
            session.call_id(
                "one.vm.update",
                vec![Value::Int(to_i32(id)?), text.into(), mode],
            )?;
            report(console, verbose, "VM", id, "updated")
        }
    }
}

/// Ids go over XML-RPC as `<int>`, which is 32 bits.
pub fn to_i32(id: i64) -> Result<i32, CliError> {
    i32::try_from(id).map_err(|_| CliError::usage(format!("Argument '{id}' is not a valid ID")))
}

/// The current time in epoch seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The allocation template: FILE (or stdin for `-`), then the options' attributes.
fn create_template(
    file: Option<&Path>,
    options: &CreateOptions,
    console: &mut Console<'_>,
) -> Result<String, CliError> {
    let mut extra = Template::new();
    if let Some(name) = &options.name {
        extra.push(Attribute::single("NAME", name.as_str()));
    }
    if let Some(cpu) = &options.cpu {
        extra.push(Attribute::single("CPU", cpu.trim()));
    }
    if let Some(vcpu) = &options.vcpu {
        extra.push(Attribute::single("VCPU", vcpu.trim()));
    }
    if let Some(memory) = &options.memory {
        extra.push(Attribute::single("MEMORY", memory_mb(memory)?.to_string()));
    }
    for attr in &options.attrs {
        let (key, value) = parse_attr(attr)?;
        extra.push(Attribute::single(key, value));
    }
    create_text(
        file,
        &extra,
        "No template given: use a template file or --cpu, --memory and --name",
        console,
    )
}

/// `KEY=VALUE` with a plain attribute name.
pub fn parse_attr(attr: &str) -> Result<(String, String), CliError> {
    let bad = || CliError::usage(format!("Invalid attribute '{attr}': use KEY=VALUE"));
    let (key, value) = attr.split_once('=').ok_or_else(bad)?;
    let key = key.trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(bad());
    }
    Ok((key.to_uppercase(), value.to_string()))
}

/// A memory amount in MB: plain MB, or with an m/M or g/G suffix.
pub fn memory_mb(text: &str) -> Result<i64, CliError> {
    let t = text.trim();
    let bad = || {
        CliError::usage(format!(
            "Invalid memory '{text}': use MB, or a number with m or g"
        ))
    };
    let (digits, factor) = match t.char_indices().last() {
        Some((i, 'm' | 'M')) => (&t[..i], 1),
        Some((i, 'g' | 'G')) => (&t[..i], 1024),
        _ => (t, 1),
    };
    let n: i64 = digits.trim().parse().map_err(|_| bad())?;
    if n <= 0 {
        return Err(bad());
    }
    n.checked_mul(factor).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(memory_mb("2").unwrap(), 2);
        assert_eq!(memory_mb("512m").unwrap(), 512);
        assert_eq!(memory_mb("2G").unwrap(), 2048);
        assert!(memory_mb("0").is_err());
        assert!(memory_mb("x").is_err());
        assert!(memory_mb("-1").is_err());
    }

    #[test]
    fn attributes() {
        assert_eq!(
            parse_attr("autostart=yes").unwrap(),
            ("AUTOSTART".into(), "yes".into())
        );
        assert_eq!(parse_attr("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(parse_attr("=x").is_err());
        assert!(parse_attr("A B=x").is_err());
        assert!(parse_attr("nothing").is_err());
    }
}
