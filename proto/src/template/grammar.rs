//! The LALR(1) automaton of oned's template grammar (reference §2.3), driven the way bison's
//! generated parser drives it, so that a syntax error is detected in the same state and
//! reports the same expected tokens.
//!
//! ```text
//! 0  $accept       : template_file $end
//! 1  template_file : /* empty */
//! 2                | template
//! 3  template      : attribute
//! 4                | template attribute
//! 5  attribute     : VARIABLE EQUAL STRING
//! 6                | VARIABLE EQUAL OBRACKET array_val CBRACKET
//! 7                | VARIABLE EQUAL OBRACKET CBRACKET
//! 8                | VARIABLE EQUAL_EMPTY
//! 9                | VARIABLE EQUAL CCDATA          (aborts the parse)
//! 10 array_val     : VARIABLE EQUAL STRING
//! 11               | array_val COMMA VARIABLE EQUAL STRING
//! ```
//!
//! Bison gives every state with a reduction a default reduction, and a state whose only
//! action is a reduction reduces without reading a token. An unexpected token is therefore
//! detected only in a state that shifts, and the "expecting" list is exactly that state's
//! shift tokens in token-number order. For example `=1` reduces rule 1 in state 0 and fails in
//! state 2, hence `unexpected EQUAL, expecting $end`.

use std::collections::BTreeMap;

use super::lexer::Lexer;
use super::{
    AttrValue, Attribute, SyntaxError, TemplateError, Token, fix_top_name, unescape_quotes,
};

/// Shift actions: the state reached by shifting `token` in `state`.
fn shift(state: u8, token: Token) -> Option<u8> {
    use Token::*;
    let next = match (state, token) {
        (0, Variable) | (3, Variable) => 1,
        (1, Equal) => 5,
        (1, EqualEmpty) => 6,
        (2, End) => 7,
        (5, OBracket) => 9,
        (5, CData) => 10,
        (5, String) => 11,
        (9, CBracket) => 12,
        (9, Variable) => 13,
        (13, Equal) => 15,
        (14, Comma) => 16,
        (14, CBracket) => 17,
        (15, String) => 18,
        (16, Variable) => 19,
        (19, Equal) => 20,
        (20, String) => 21,
        _ => return None,
    };
    Some(next)
}

/// The tokens a state shifts, in token-number order: bison's "expecting" list.
fn expected(state: u8) -> Vec<Token> {
    Token::ALL
        .iter()
        .copied()
        .filter(|&t| shift(state, t).is_some())
        .collect()
}

/// The default reduction of a state, and whether it is the state's only action (then bison
/// reduces without looking at the next token).
fn default_reduction(state: u8) -> Option<(u8, bool)> {
    match state {
        0 => Some((1, false)),
        3 => Some((2, false)),
        4 => Some((3, true)),
        6 => Some((8, true)),
        8 => Some((4, true)),
        10 => Some((9, true)),
        11 => Some((5, true)),
        12 => Some((7, true)),
        17 => Some((6, true)),
        18 => Some((10, true)),
        21 => Some((11, true)),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Nonterminal {
    TemplateFile,
    Template,
    Attribute,
    ArrayVal,
}

/// Left-hand side and right-hand side length of each rule.
fn rule(r: u8) -> (Nonterminal, usize) {
    use Nonterminal::*;
    match r {
        1 => (TemplateFile, 0),
        2 => (TemplateFile, 1),
        3 => (Template, 1),
        4 => (Template, 2),
        5 => (Attribute, 3),
        6 => (Attribute, 5),
        7 => (Attribute, 4),
        8 => (Attribute, 2),
        9 => (Attribute, 3),
        10 => (ArrayVal, 3),
        _ => (ArrayVal, 5),
    }
}

fn goto(state: u8, nt: Nonterminal) -> u8 {
    use Nonterminal::*;
    match (state, nt) {
        (0, TemplateFile) => 2,
        (0, Template) => 3,
        (3, Attribute) => 8,
        (0, Attribute) => 4,
        // (9, ArrayVal) is the only other goto of the automaton.
        _ => 14,
    }
}

/// Semantic values on the parser stack.
#[derive(Default)]
enum Value {
    #[default]
    None,
    Text(String),
    Map(BTreeMap<String, String>),
}

impl Value {
    fn take_text(&mut self) -> String {
        match std::mem::replace(self, Value::None) {
            Value::Text(s) => s,
            _ => String::new(),
        }
    }

    fn take_map(&mut self) -> BTreeMap<String, String> {
        match std::mem::replace(self, Value::None) {
            Value::Map(m) => m,
            _ => BTreeMap::new(),
        }
    }
}

/// Parses the text form into attributes (untrimmed, in input order).
pub(crate) fn parse(text: &str) -> Result<Vec<Attribute>, TemplateError> {
    let mut lexer = Lexer::new(text);
    let mut states: Vec<u8> = vec![0];
    let mut values: Vec<Value> = vec![Value::None];
    let mut attributes = Vec::new();
    let mut lookahead: Option<(Token, String)> = None;

    loop {
        let state = states.last().copied().unwrap_or(0);
        if state == 7 {
            return Ok(attributes);
        }
        let reduction = match default_reduction(state) {
            Some((r, true)) => Some(r),
            default => {
                let token = match &lookahead {
                    Some((token, _)) => *token,
                    None => {
                        let next =
                            lexer
                                .next_token()
                                .map_err(|at| TemplateError::Unterminated {
                                    line: at.line,
                                    first_column: at.first_column,
                                    last_column: at.last_column,
                                })?;
                        let token = next.0;
                        lookahead = Some(next);
                        token
                    }
                };
                if let Some(next) = shift(state, token) {
                    let (_, text) = lookahead.take().unwrap_or((token, String::new()));
                    states.push(next);
                    values.push(Value::Text(text));
                    continue;
                }
                match default {
                    Some((r, _)) => Some(r),
                    None => {
                        let loc = lexer.location();
                        return Err(TemplateError::Syntax(SyntaxError {
                            unexpected: token,
                            expected: expected(state),
                            line: loc.line,
                            first_column: loc.first_column,
                            last_column: loc.last_column,
                        }));
                    }
                }
            }
        };
        let Some(r) = reduction else { continue };
        let (lhs, len) = rule(r);
        let base = values.len().saturating_sub(len);
        let mut rhs: Vec<Value> = values.split_off(base);
        states.truncate(states.len().saturating_sub(len));
        let mut arg = |i: usize| rhs.get_mut(i).map(std::mem::take).unwrap_or_default();
        let value = match r {
            5 => {
                let name = arg(0).take_text();
                let value = unescape_quotes(&arg(2).take_text());
                attributes.push(Attribute {
                    name: fix_top_name(&name),
                    value: AttrValue::Single(value),
                });
                Value::None
            }
            6 => {
                let name = arg(0).take_text();
                let map = arg(3).take_map();
                attributes.push(Attribute {
                    name: fix_top_name(&name),
                    value: AttrValue::Vector(map.into_iter().collect()),
                });
                Value::None
            }
            7 => {
                let name = arg(0).take_text();
                attributes.push(Attribute {
                    name: fix_top_name(&name),
                    value: AttrValue::Vector(Vec::new()),
                });
                Value::None
            }
            8 => {
                let name = arg(0).take_text();
                attributes.push(Attribute {
                    name: fix_top_name(&name),
                    value: AttrValue::Single(String::new()),
                });
                Value::None
            }
            9 => {
                let loc = lexer.location();
                return Err(TemplateError::CData {
                    column: loc.first_column,
                });
            }
            10 => {
                let key = arg(0).take_text().to_ascii_uppercase();
                let value = unescape_quotes(&arg(2).take_text());
                Value::Map(BTreeMap::from([(key, value)]))
            }
            11 => {
                let mut map = arg(0).take_map();
                let key = arg(2).take_text().to_ascii_uppercase();
                let value = unescape_quotes(&arg(4).take_text());
                // std::map::insert keeps the first value of a repeated key.
                map.entry(key).or_insert(value);
                Value::Map(map)
            }
            _ => Value::None,
        };
        let exposed = states.last().copied().unwrap_or(0);
        states.push(goto(exposed, lhs));
        values.push(value);
    }
}
