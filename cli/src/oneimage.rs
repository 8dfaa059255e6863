//! `oneimage`: manages the simulated cloud's disk images.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use one_client::Value;
use one_proto::template::{Attribute, Template};

use crate::connection::ConnectionArgs;
use crate::console::{CliError, Console, finish};
use crate::image_render::{image_rows, image_table, render_image};
use crate::list_args::{FormatArgs, ListArgs, list_pool};
use crate::onevm::{parse_attr, to_i32};
use crate::session::{PoolKind, Session, for_each, report};
use crate::template_input::create_text;

const ABOUT: &str =
    "Manages images of the simulated cloud: create, enable, disable and delete them.";

const AFTER_HELP: &str = "\
Connection: --endpoint, else $ONE_XMLRPC, else ~/.one/one_endpoint, else http://localhost:2633/RPC2;
--user and --password, else the session in $ONE_AUTH, else ~/.one/one_auth.

Examples:
  oneimage create --name disk --size 1024 --type DATABLOCK
  oneimage list
  oneimage disable disk";

pub const IMAGES: PoolKind = PoolKind {
    element: "IMAGE",
    method: "one.imagepool.info",
    params: || vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
};

#[derive(Debug, Parser)]
#[command(name = "oneimage", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct OneimageArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Verbose mode: print `IMAGE <id>: <action>` after each action
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ImageOptions {
    /// Name of the new image
    #[arg(long, value_name = "name")]
    pub name: Option<String>,
    /// Path of the image file to copy into the datastore
    #[arg(long, value_name = "path")]
    pub path: Option<String>,
    /// Path of an image already in the datastore (needs --format)
    #[arg(long, value_name = "source")]
    pub source: Option<String>,
    /// Size in MB (for empty DATABLOCK and OS images)
    #[arg(long, value_name = "size")]
    pub size: Option<u64>,
    /// Type of the image: OS, CDROM, DATABLOCK, KERNEL, RAMDISK, CONTEXT
    #[arg(long = "type", value_name = "type")]
    pub image_type: Option<String>,
    /// Make the image persistent
    #[arg(long)]
    pub persistent: bool,
    /// Format of the image (raw, qcow2)
    #[arg(long, value_name = "format")]
    pub format: Option<String>,
    /// Description of the image
    #[arg(long, value_name = "text")]
    pub description: Option<String>,
    /// Any other attribute, e.g. --attr DEV_PREFIX=vd (repeatable)
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attrs: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Creates a new image from a template file and/or options; prints its ID
    #[command(after_help = "\
The image is LOCKED while the datastore copies it, then READY.

Examples:
  oneimage create --name disk --size 1024 --type DATABLOCK
  oneimage create --name ubuntu --path /var/tmp/ubuntu.qcow2 -d default
  oneimage create image.tmpl")]
    Create {
        /// Template file ('-' for stdin)
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Datastore id or name: default (1) or files (2)
        #[arg(short = 'd', long, value_name = "datastore", default_value = "default")]
        datastore: String,
        #[command(flatten)]
        options: ImageOptions,
        /// Print the template instead of creating the image
        #[arg(long)]
        dry: bool,
    },

    /// Lists images in the pool
    #[command(after_help = "\
Columns: ID, USER, GROUP, NAME, DATASTORE, SIZE, TYPE, PER (persistent), STAT (lock, rdy, used,
disa, err, dele) and RVMS.

Examples:
  oneimage list
  oneimage list -j")]
    List {
        #[command(flatten)]
        list: ListArgs,
    },

    /// Shows information for the given image
    #[command(after_help = "\
Examples:
  oneimage show disk
  oneimage show 0 -x")]
    Show {
        /// Image id or name
        #[arg(value_name = "IMAGEID")]
        image: String,
        #[command(flatten)]
        format: FormatArgs,
    },

    /// Enables images (READY)
    #[command(after_help = "\
Examples:
  oneimage enable disk")]
    Enable {
        /// Image ids or names: a comma-separated list, ranges as a..b
        #[arg(value_name = "RANGE|IMAGEID_LIST")]
        images: String,
    },

    /// Disables images (DISABLED: new VMs cannot use them)
    #[command(after_help = "\
Examples:
  oneimage disable disk")]
    Disable {
        #[arg(value_name = "RANGE|IMAGEID_LIST")]
        images: String,
    },

    /// Deletes images
    #[command(after_help = "\
Examples:
  oneimage delete disk
  oneimage delete 3 --force")]
    Delete {
        #[arg(value_name = "RANGE|IMAGEID_LIST")]
        images: String,
        /// Delete even a LOCKED image
        #[arg(long)]
        force: bool,
    },
}

pub fn run(args: &OneimageArgs, console: &mut Console<'_>) -> u8 {
    let result = execute(args, console);
    finish(result, console)
}

fn execute(args: &OneimageArgs, console: &mut Console<'_>) -> Result<(), CliError> {
    let mut session = Session::new(&args.connection);
    let verbose = args.verbose;
    match &args.command {
        ImageCommand::Create {
            file,
            datastore,
            options,
            dry,
        } => {
            let text = create_template(file.as_deref(), options, console)?;
            if *dry {
                return console.write(text);
            }
            let ds = datastore_id(datastore)?;
            let id = session.call_id(
                "one.image.allocate",
                vec![text.into(), Value::Int(ds), Value::Bool(false)],
            )?;
            console.write(format!("ID: {id}\n"))
        }
        ImageCommand::List { list } => list_pool(
            &mut session,
            console,
            list,
            IMAGES,
            &image_table(),
            image_rows,
        ),
        ImageCommand::Show { image, format } => {
            let id = session.resolve_one(image, IMAGES)?;
            let doc = session.document("one.image.info", vec![Value::Int(to_i32(id)?)], "IMAGE")?;
            format.show(&doc, console, |c| render_image(&doc, &c.terminal, c.zone))
        }
        ImageCommand::Enable { images } | ImageCommand::Disable { images } => {
            let enable = matches!(args.command, ImageCommand::Enable { .. });
            let ids = session.resolve_list(images, IMAGES)?;
            for_each(console, &ids, |console, id| {
                session.call_id(
                    "one.image.enable",
                    vec![Value::Int(to_i32(id)?), Value::Bool(enable)],
                )?;
                report(
                    console,
                    verbose,
                    "IMAGE",
                    id,
                    if enable { "enabled" } else { "disabled" },
                )
            })
        }
        ImageCommand::Delete { images, force } => {
            let ids = session.resolve_list(images, IMAGES)?;
            for_each(console, &ids, |console, id| {
                session.call_id(
                    "one.image.delete",
                    vec![Value::Int(to_i32(id)?), Value::Bool(*force)],
                )?;
                report(console, verbose, "IMAGE", id, "deleted")
            })
        }
    }
}

/// The front-end has no datastore API; its datastores are the three of a new OpenNebula
/// installation, by id or name.
fn datastore_id(arg: &str) -> Result<i32, CliError> {
    match arg.trim() {
        "system" => Ok(0),
        "default" => Ok(1),
        "files" => Ok(2),
        other => other
            .parse()
            .map_err(|_| CliError::usage(format!("DATASTORE named {other} not found."))),
    }
}

fn create_template(
    file: Option<&Path>,
    options: &ImageOptions,
    console: &mut Console<'_>,
) -> Result<String, CliError> {
    let mut extra = Template::new();
    let mut single = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            extra.push(Attribute::single(name, v));
        }
    };
    single("NAME", options.name.as_deref());
    single("PATH", options.path.as_deref());
    single("SOURCE", options.source.as_deref());
    let size = options.size.map(|s| s.to_string());
    single("SIZE", size.as_deref());
    single("TYPE", options.image_type.as_deref());
    single("PERSISTENT", options.persistent.then_some("YES"));
    single("FORMAT", options.format.as_deref());
    single("DESCRIPTION", options.description.as_deref());
    for attr in &options.attrs {
        let (key, value) = parse_attr(attr)?;
        extra.push(Attribute::single(key, value));
    }
    create_text(
        file,
        &extra,
        "No template given: use a template file or --name with --path or --size",
        console,
    )
}
