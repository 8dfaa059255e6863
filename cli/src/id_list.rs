//! Resource arguments: a single id or name (`hookid`), and lists for the actions that take
//! several (`1,3,5`, `2..4`, names mixed in), as the reference CLI accepts them.

use crate::console::CliError;
use crate::xml::Element;

/// The most ids one range may name; a typo like `0..9999999999` must not exhaust memory.
pub const MAX_RANGE: u64 = 100_000;

/// One element of a list argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdSpec {
    Id(i64),
    Name(String),
}

/// Parses `1`, `a`, `1,3..5,b`: digits are ids, `a..b` ranges of ids, anything else a name.
pub fn parse_list(arg: &str) -> Result<Vec<IdSpec>, CliError> {
    let mut specs = Vec::new();
    for part in arg.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(CliError::usage(format!(
                "Invalid list '{arg}': empty element"
            )));
        }
        if let Some((a, b)) = part.split_once("..")
            && is_digits(a)
            && is_digits(b)
        {
            let (a, b) = (parse_id(a)?, parse_id(b)?);
            if b >= a && (b - a) as u64 >= MAX_RANGE {
                return Err(CliError::usage(format!(
                    "Range '{part}' names more than {MAX_RANGE} ids"
                )));
            }
            specs.extend((a..=b).map(IdSpec::Id));
        } else if is_digits(part) {
            specs.push(IdSpec::Id(parse_id(part)?));
        } else {
            specs.push(IdSpec::Name(part.to_string()));
        }
    }
    let mut unique = Vec::with_capacity(specs.len());
    for s in specs {
        if !unique.contains(&s) {
            unique.push(s);
        }
    }
    Ok(unique)
}

/// Parses one id or name.
pub fn parse_one(arg: &str) -> Result<IdSpec, CliError> {
    let arg = arg.trim();
    if is_digits(arg) {
        Ok(IdSpec::Id(parse_id(arg)?))
    } else {
        Ok(IdSpec::Name(arg.to_string()))
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_id(s: &str) -> Result<i64, CliError> {
    s.parse()
        .map_err(|_| CliError::usage(format!("Argument '{s}' is not a valid ID")))
}

/// Whether resolving `specs` needs the pool (some are names).
pub fn needs_pool(specs: &[IdSpec]) -> bool {
    specs.iter().any(|s| matches!(s, IdSpec::Name(_)))
}

/// Resolves a name against a pool document (`<X_POOL><X><ID/><NAME/>…`), with the reference's
/// messages for no match and for several.
pub fn resolve_name(name: &str, pool: &Element, element: &str) -> Result<i64, CliError> {
    let matches: Vec<&Element> = pool
        .children_named(element)
        .filter(|e| e.str_at("NAME") == name)
        .collect();
    match matches.as_slice() {
        [] => Err(CliError::usage(format!(
            "{element} named {name} not found."
        ))),
        [one] => one
            .str_at("ID")
            .trim()
            .parse()
            .map_err(|_| CliError::usage(format!("{element} named {name} has no valid ID"))),
        _ => Err(CliError::usage(format!(
            "There are multiple {element}s with name {name}."
        ))),
    }
}

/// Resolves every spec, fetching the pool only when a name is among them.
pub fn resolve_all(
    specs: &[IdSpec],
    element: &str,
    fetch_pool: impl FnOnce() -> Result<Element, CliError>,
) -> Result<Vec<i64>, CliError> {
    let pool = if needs_pool(specs) {
        Some(fetch_pool()?)
    } else {
        None
    };
    specs
        .iter()
        .map(|s| match (s, &pool) {
            (IdSpec::Id(id), _) => Ok(*id),
            (IdSpec::Name(name), Some(pool)) => resolve_name(name, pool, element),
            (IdSpec::Name(name), None) => Err(CliError::usage(format!(
                "{element} named {name} not found."
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        assert_eq!(
            parse_list("1,3..5,x,3").unwrap(),
            vec![
                IdSpec::Id(1),
                IdSpec::Id(3),
                IdSpec::Id(4),
                IdSpec::Id(5),
                IdSpec::Name("x".into())
            ]
        );
        assert!(parse_list("1,,2").is_err());
        assert!(parse_list("0..999999999").is_err());
        assert_eq!(parse_list("5..3").unwrap(), vec![]);
        assert_eq!(parse_one("a..b").unwrap(), IdSpec::Name("a..b".into()));
    }

    #[test]
    fn names_resolve_against_the_pool() {
        let pool = crate::xml::parse(
            "<HOOK_POOL><HOOK><ID>2</ID><NAME>a</NAME></HOOK><HOOK><ID>1</ID><NAME>b</NAME></HOOK>\
             <HOOK><ID>0</ID><NAME>b</NAME></HOOK></HOOK_POOL>",
        )
        .unwrap();
        assert_eq!(resolve_name("a", &pool, "HOOK").unwrap(), 2);
        assert_eq!(
            resolve_name("c", &pool, "HOOK").unwrap_err().to_string(),
            "HOOK named c not found."
        );
        assert_eq!(
            resolve_name("b", &pool, "HOOK").unwrap_err().to_string(),
            "There are multiple HOOKs with name b."
        );
    }
}
