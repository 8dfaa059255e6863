//! `onehost`: manages the simulated cloud's hosts, including the front-end's failure and
//! reboot simulation (`one.hostsim.*`).

use clap::{Parser, Subcommand};
use one_client::Value;

use crate::connection::ConnectionArgs;
use crate::console::{CliError, Console, finish};
use crate::host_render::{host_rows, host_table, render_host};
use crate::list_args::{FormatArgs, ListArgs, list_pool};
use crate::onevm::{HOSTS, VMS, now, to_i32};
use crate::session::{Session, for_each, report};
use crate::xml::{Element, Node};

const ABOUT: &str = "Manages hosts of the simulated cloud: create, enable, disable, set offline and delete \
                     them, and simulate host failures and reboots.";

const AFTER_HELP: &str = "\
Connection: --endpoint, else $ONE_XMLRPC, else ~/.one/one_endpoint, else http://localhost:2633/RPC2;
--user and --password, else the session in $ONE_AUTH, else ~/.one/one_auth.

Examples:
  onehost create host01
  onehost list
  onehost disable host01
  onehost reboot host01";

#[derive(Debug, Parser)]
#[command(name = "onehost", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct OnehostArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Verbose mode: print `HOST <id>: <action>` after each action
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: HostCommand,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Creates a new host; it is INIT until its first monitoring, then MONITORED
    #[command(after_help = "\
Examples:
  onehost create host01
  onehost create host02 --im kvm --vm kvm")]
    Create {
        /// Host name (as the hypervisor is reached)
        #[arg(value_name = "NAME")]
        name: String,
        /// Information manager driver
        #[arg(short = 'i', long = "im", value_name = "im_mad", default_value = "kvm")]
        im: String,
        /// Virtual machine manager driver
        #[arg(long = "vm", value_name = "vmm_mad", default_value = "kvm")]
        vm: String,
        /// Cluster id (-1 for the default cluster)
        #[arg(short = 'c', long, value_name = "cluster_id", default_value_t = -1, allow_negative_numbers = true)]
        cluster: i32,
    },

    /// Lists hosts in the pool
    #[command(after_help = "\
Columns: ID, NAME, CLUSTER, TVM (running VMs), ALLOCATED_CPU, ALLOCATED_MEM and STAT (init, on,
err, dsbl, off).

Examples:
  onehost list
  onehost list -x")]
    List {
        #[command(flatten)]
        list: ListArgs,
    },

    /// Shows information for the given host, with its VMs
    #[command(after_help = "\
Examples:
  onehost show host01
  onehost show 0 -j")]
    Show {
        /// Host id or name
        #[arg(value_name = "HOSTID")]
        host: String,
        #[command(flatten)]
        format: FormatArgs,
    },

    /// Enables hosts
    #[command(after_help = "\
Examples:
  onehost enable host01")]
    Enable {
        /// Host ids or names: a comma-separated list, ranges as a..b
        #[arg(value_name = "RANGE|HOSTID_LIST")]
        hosts: String,
    },

    /// Disables hosts (their VMs keep running; no new VMs are placed there)
    #[command(after_help = "\
Examples:
  onehost disable host01")]
    Disable {
        #[arg(value_name = "RANGE|HOSTID_LIST")]
        hosts: String,
    },

    /// Sets hosts offline (not monitored)
    #[command(after_help = "\
Examples:
  onehost offline host01")]
    Offline {
        #[arg(value_name = "RANGE|HOSTID_LIST")]
        hosts: String,
    },

    /// Deletes hosts (refused while VMs run there)
    #[command(after_help = "\
Examples:
  onehost delete host01")]
    Delete {
        #[arg(value_name = "RANGE|HOSTID_LIST")]
        hosts: String,
    },

    /// Simulates a host failure: the host goes ERROR and its running VMs UNKNOWN, until recovered
    #[command(after_help = "\
Examples:
  onehost fail host01
  onehost fail host01 --message 'power supply failure'")]
    Fail {
        #[arg(value_name = "RANGE|HOSTID_LIST")]
        hosts: String,
        /// The error message the host shows
        #[arg(long, value_name = "text")]
        message: Option<String>,
    },

    /// Ends a simulated failure as a reboot would: MONITORED, its VMs found powered off
    #[command(after_help = "\
Examples:
  onehost recover host01")]
    Recover {
        #[arg(value_name = "RANGE|HOSTID_LIST")]
        hosts: String,
    },

    /// Simulates a host reboot: a failure, then the recovery after the down time
    #[command(after_help = "\
Examples:
  onehost reboot host01
  onehost reboot host01 --down-ms 2000")]
    Reboot {
        #[arg(value_name = "RANGE|HOSTID_LIST")]
        hosts: String,
        /// How long the host stays down, in milliseconds (default: the front-end's REBOOT_DELAY_MS)
        #[arg(long = "down-ms", value_name = "ms")]
        down_ms: Option<u32>,
    },
}

pub fn run(args: &OnehostArgs, console: &mut Console<'_>) -> u8 {
    let result = execute(args, console);
    finish(result, console)
}

fn execute(args: &OnehostArgs, console: &mut Console<'_>) -> Result<(), CliError> {
    let mut session = Session::new(&args.connection);
    let verbose = args.verbose;
    let mut each =
        |hosts: &str, verb: &str, method: &str, extra: Vec<Value>| -> Result<(), CliError> {
            let ids = session.resolve_list(hosts, HOSTS)?;
            for_each(console, &ids, |console, id| {
                let mut params = vec![Value::Int(to_i32(id)?)];
                params.extend(extra.iter().cloned());
                session.call_id(method, params)?;
                report(console, verbose, "HOST", id, verb)
            })
        };
    match &args.command {
        HostCommand::Create {
            name,
            im,
            vm,
            cluster,
        } => {
            let params = vec![
                name.as_str().into(),
                im.as_str().into(),
                vm.as_str().into(),
                Value::Int(*cluster),
            ];
            let id = session.call_id("one.host.allocate", params)?;
            console.write(format!("ID: {id}\n"))
        }
        HostCommand::List { list } => {
            list_pool(&mut session, console, list, HOSTS, &host_table(), host_rows)
        }
        HostCommand::Show { host, format } => {
            let id = session.resolve_one(host, HOSTS)?;
            let doc = session.document("one.host.info", vec![Value::Int(to_i32(id)?)], "HOST")?;
            if let Some(text) = format.render(&doc) {
                return console.write(text);
            }
            let vm_ids: Vec<&str> = doc
                .child("VMS")
                .map(|v| v.children_named("ID").filter_map(Element::text).collect())
                .unwrap_or_default();
            let vms = if vm_ids.is_empty() {
                None
            } else {
                let pool = session.pool(VMS)?;
                Some(Element {
                    name: "VM_POOL".to_string(),
                    children: pool
                        .children_named("VM")
                        .filter(|v| vm_ids.contains(&v.str_at("ID")))
                        .map(|v| Node::Element(v.clone()))
                        .collect(),
                })
            };
            console.write(render_host(
                &doc,
                vms.as_ref(),
                &console.terminal,
                console.zone,
                now(),
            ))
        }
        HostCommand::Enable { hosts } => {
            each(hosts, "enabled", "one.host.status", vec![Value::Int(0)])
        }
        HostCommand::Disable { hosts } => {
            each(hosts, "disabled", "one.host.status", vec![Value::Int(1)])
        }
        HostCommand::Offline { hosts } => {
            each(hosts, "offline", "one.host.status", vec![Value::Int(2)])
        }
        HostCommand::Delete { hosts } => each(hosts, "deleted", "one.host.delete", Vec::new()),
        HostCommand::Fail { hosts, message } => {
            let extra = message.iter().map(|m| Value::from(m.as_str())).collect();
            each(hosts, "failed", "one.hostsim.fail", extra)
        }
        HostCommand::Recover { hosts } => {
            each(hosts, "recovered", "one.hostsim.recover", Vec::new())
        }
        HostCommand::Reboot { hosts, down_ms } => {
            let extra = down_ms
                .iter()
                .map(|ms| Value::Int(i32::try_from(*ms).unwrap_or(i32::MAX)))
                .collect();
            each(hosts, "rebooting", "one.hostsim.reboot", extra)
        }
    }
}
