//! A command's connection to the front-end: the client (made on first use, so commands that
//! need no server need no credentials), pool documents, and name-or-id resolution.

use one_client::{Client, Value};

use crate::connection::ConnectionArgs;
use crate::console::{CliError, Console, parse_document};
use crate::id_list::{IdSpec, parse_list, parse_one, resolve_all};
use crate::xml::Element;

/// How to list one kind of resource, for resolving names.
#[derive(Clone, Copy, Debug)]
pub struct PoolKind {
    /// The pool element's name, as in `<HOOK_POOL><HOOK>…`: `HOOK`, `VM`, `HOST`, `IMAGE`.
    pub element: &'static str,
    /// The pool info method, called with `params`.
    pub method: &'static str,
    pub params: fn() -> Vec<Value>,
}

pub struct Session<'a> {
    args: &'a ConnectionArgs,
    client: Option<Client>,
}

impl<'a> Session<'a> {
    pub fn new(args: &'a ConnectionArgs) -> Session<'a> {
        Session { args, client: None }
    }

    pub fn client(&mut self) -> Result<&Client, CliError> {
        if self.client.is_none() {
            self.client = Some(self.args.client()?);
        }
        self.client
            .as_ref()
            .ok_or_else(|| CliError::usage("no connection to the front-end"))
    }

    /// Calls a method that returns a document and parses it.
    pub fn document(
        &mut self,
        method: &str,
        params: Vec<Value>,
        what: &str,
    ) -> Result<Element, CliError> {
        match self.client()?.call(method, params)? {
            Value::String(text) => parse_document(&text, what),
            other => Err(CliError::usage(format!(
                "{method} returned {} instead of a document",
                other.type_name()
            ))),
        }
    }

    /// Calls a method that returns an id.
    pub fn call_id(&mut self, method: &str, params: Vec<Value>) -> Result<i64, CliError> {
        let value = self.client()?.call(method, params)?;
        value.as_i64().ok_or_else(|| {
            CliError::usage(format!(
                "{method} returned {} instead of an id",
                value.type_name()
            ))
        })
    }

    pub fn pool(&mut self, kind: PoolKind) -> Result<Element, CliError> {
        let what = format!("{}_POOL", kind.element);
        self.document(kind.method, (kind.params)(), &what)
    }

    /// One id or name.
    pub fn resolve_one(&mut self, arg: &str, kind: PoolKind) -> Result<i64, CliError> {
        let spec = parse_one(arg)?;
        let ids = resolve_all(std::slice::from_ref(&spec), kind.element, || {
            self.pool(kind)
        })?;
        ids.first()
            .copied()
            .ok_or_else(|| CliError::usage(format!("{} {arg} not found.", kind.element)))
    }

    /// A list of ids and names (`1,3..5,name`).
    pub fn resolve_list(&mut self, arg: &str, kind: PoolKind) -> Result<Vec<i64>, CliError> {
        let specs: Vec<IdSpec> = parse_list(arg)?;
        resolve_all(&specs, kind.element, || self.pool(kind))
    }
}

/// Runs an action on every id; a failure is reported and the others still run (the
/// reference's `perform_actions`), and the command then fails.
pub fn for_each(
    console: &mut Console<'_>,
    ids: &[i64],
    mut action: impl FnMut(&mut Console<'_>, i64) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut failed = false;
    for &id in ids {
        if let Err(e) = action(console, id) {
            if matches!(e, CliError::BrokenPipe) {
                return Err(e);
            }
            console.eprintln(&e.to_string());
            failed = true;
        }
    }
    if failed {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

/// `-v/--verbose`: `<RESOURCE> <id>: <verb>`.
pub fn report(
    console: &mut Console<'_>,
    verbose: bool,
    resource: &str,
    id: i64,
    verb: &str,
) -> Result<(), CliError> {
    if verbose {
        console.write(format!("{resource} {id}: {verb}\n"))
    } else {
        Ok(())
    }
}
