//! The scanner of the template text syntax, rule for rule as oned's flex scanner behaves
//! (reference §2.1, §2.2).
//!
//! flex picks, at each position, the rule with the longest match, the earlier rule winning a
//! tie; a byte that no rule matches is skipped by flex's default rule. Every matched lexeme,
//! skipped ones included, advances the location the parser reports: columns are running byte
//! offsets from the start of the text (starting at 1, as bison initialises them), and the line
//! is the number of LFs consumed so far by rules other than the default one (the reference's
//! scanner starts from 0).
//!
//! One deliberate difference: a value that opens a quote when no `"` follows anywhere in the
//! text is refused. oned's scanner reads `A = "x` as the bare word `"x`, which keeps a
//! mistyped quote in the stored value instead of reporting it.

use super::Token;

/// The scanner's start condition: `Value` is entered after `=` and left after one value token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Initial,
    Value,
}

/// What a matched rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Comment,
    Blank,
    Variable,
    Equal,
    EqualEmpty,
    Comma,
    CBracket,
    OBracket,
    CData,
    Quoted,
    Bare,
    /// A value that opens a quote no later `"` can close (not in oned's scanner).
    Unterminated,
    /// flex's default rule: the byte is echoed by oned and otherwise ignored.
    Skip,
}

/// The location of the last matched lexeme, as bison's `YYLTYPE` holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub line: u64,
    pub first_column: usize,
    pub last_column: usize,
}

pub(crate) struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    mode: Mode,
    line: u64,
    first_column: usize,
    last_column: usize,
    /// Offsets of every LF, to find line ends without rescanning long lines.
    lf: Vec<usize>,
    /// Offsets where a `]]>` starts.
    cdata: Vec<usize>,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_blank_or_lf(b: u8) -> bool {
    is_blank(b) || b == b'\n'
}

fn is_variable_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_bare_byte(b: u8) -> bool {
    !matches!(b, b'=' | b'#' | b' ' | b'\t' | b'\n' | b',' | b'[' | b']')
}

impl<'a> Lexer<'a> {
    /// A scanner over `text`. oned hands the scanner a C string, so the text ends at the first
    /// NUL byte.
    pub fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let s = &bytes[..end];
        let lf = s
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i)
            .collect();
        let cdata = s
            .windows(3)
            .enumerate()
            .filter(|(_, w)| *w == b"]]>")
            .map(|(i, _)| i)
            .collect();
        Lexer {
            s,
            pos: 0,
            mode: Mode::Initial,
            line: 0,
            first_column: 1,
            last_column: 1,
            lf,
            cdata,
        }
    }

    pub fn location(&self) -> Location {
        Location {
            line: self.line,
            first_column: self.first_column,
            last_column: self.last_column,
        }
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.s.get(i).copied()
    }

    fn skip_while(&self, mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
        while self.at(i).is_some_and(&pred) {
            i += 1;
        }
        i
    }

    /// The offset of the first LF at or after `i`.
    fn next_lf(&self, i: usize) -> Option<usize> {
        let k = self.lf.partition_point(|&p| p < i);
        self.lf.get(k).copied()
    }

    /// The next token and its text (the name of a VARIABLE, the raw value of a STRING), or
    /// the location of the opening quote of an unterminated value.
    pub fn next_token(&mut self) -> Result<(Token, String), Location> {
        loop {
            if self.pos >= self.s.len() {
                // End of input: no rule matches, so the location stays where it was.
                return Ok((Token::End, String::new()));
            }
            let (len, rule) = match self.mode {
                Mode::Initial => self.longest_initial(),
                Mode::Value => self.longest_value(),
            };
            let start = self.pos;
            let end = start + len;
            let lexeme = &self.s[start..end];
            // flex counts line breaks only in rules that can match one; its default rule is not
            // among them, so a LF skipped in value mode does not count.
            if rule != Rule::Skip {
                self.line += lexeme.iter().filter(|&&b| b == b'\n').count() as u64;
            }
            // A skipped run stands for that many one-byte skips; the location ends as the
            // last of them left it.
            self.first_column = self.last_column + len - 1;
            if rule != Rule::Skip {
                self.first_column = self.last_column;
            }
            self.last_column += len;
            self.pos = end;
            let text =
                |from: usize, to: usize| String::from_utf8_lossy(&self.s[from..to]).into_owned();
            let token = match rule {
                Rule::Comment | Rule::Blank | Rule::Skip => continue,
                Rule::Unterminated => return Err(self.location()),
                Rule::Variable => (Token::Variable, text(start, end)),
                Rule::Equal => {
                    self.mode = Mode::Value;
                    (Token::Equal, String::new())
                }
                Rule::EqualEmpty => (Token::EqualEmpty, String::new()),
                Rule::Comma => (Token::Comma, String::new()),
                Rule::CBracket => (Token::CBracket, String::new()),
                Rule::OBracket => {
                    self.mode = Mode::Initial;
                    (Token::OBracket, String::new())
                }
                Rule::CData => {
                    self.mode = Mode::Initial;
                    (Token::CData, String::new())
                }
                Rule::Quoted => {
                    self.mode = Mode::Initial;
                    (Token::String, text(start + 1, end - 1))
                }
                Rule::Bare => {
                    self.mode = Mode::Initial;
                    (Token::String, text(start, end))
                }
            };
            return Ok(token);
        }
    }

    /// Picks the longest match among `candidates` (in rule order); earlier rules win ties.
    fn pick(candidates: &[(Option<usize>, Rule)]) -> (usize, Rule) {
        let mut best = (1, Rule::Skip);
        let mut best_len = 0;
        for &(len, rule) in candidates {
            if let Some(len) = len
                && len > best_len
            {
                best_len = len;
                best = (len, rule);
            }
        }
        best
    }

    fn longest_initial(&self) -> (usize, Rule) {
        let p = self.pos;
        let after_blanks = self.skip_while(p, is_blank);
        let after_ws = self.skip_while(p, is_blank_or_lf);

        // [[:blank:]]*#.*\n
        let comment = match self.at(after_blanks) {
            Some(b'#') => self.next_lf(after_blanks).map(|lf| lf + 1 - p),
            _ => None,
        };
        // [[:blank:]\n]+
        let blank = (after_ws > p).then_some(after_ws - p);
        // [[:alnum:]_]+
        let var_end = self.skip_while(p, is_variable_byte);
        let variable = (var_end > p).then_some(var_end - p);
        // [[:blank:]]*=[[:blank:]]*  and the same followed by \n
        let (equal, equal_empty) = match self.at(after_blanks) {
            Some(b'=') => {
                let k = self.skip_while(after_blanks + 1, is_blank);
                let empty = (self.at(k) == Some(b'\n')).then_some(k + 1 - p);
                (Some(k - p), empty)
            }
            _ => (None, None),
        };
        // [[:blank:]\n]*,[[:blank:]\n]*  and  [[:blank:]\n]*\][[:blank:]\n]*
        let around = |c: u8| match self.at(after_ws) {
            Some(b) if b == c => Some(self.skip_while(after_ws + 1, is_blank_or_lf) - p),
            _ => None,
        };
        let comma = around(b',');
        let cbracket = around(b']');

        Self::pick(&[
            (comment, Rule::Comment),
            (blank, Rule::Blank),
            (variable, Rule::Variable),
            (equal, Rule::Equal),
            (equal_empty, Rule::EqualEmpty),
            (comma, Rule::Comma),
            (cbracket, Rule::CBracket),
        ])
    }

    fn longest_value(&self) -> (usize, Rule) {
        let p = self.pos;
        // [[:blank:]]*\[[[:blank:]\n]*
        let after_blanks = self.skip_while(p, is_blank);
        let obracket = match self.at(after_blanks) {
            Some(b'[') => Some(self.skip_while(after_blanks + 1, is_blank_or_lf) - p),
            _ => None,
        };
        // .*\]\]\>.*  : the rest of the line, if it holds a "]]>".
        let eol = self.next_lf(p).unwrap_or(self.s.len());
        let k = self.cdata.partition_point(|&c| c < p);
        let cdata = match self.cdata.get(k) {
            Some(&c) if c + 3 <= eol => Some(eol - p),
            _ => None,
        };
        // \"([^\"]|\\\")*\"  : the longest match ends at the first quote not preceded by a
        // backslash, or at the last quote of the text when every later quote is escaped.
        let opens_quote = self.at(p) == Some(b'"');
        let quoted = if opens_quote {
            let mut last = None;
            let mut i = p + 1;
            while i < self.s.len() {
                if self.s[i] == b'"' {
                    last = Some(i);
                    if self.s[i - 1] != b'\\' {
                        break;
                    }
                }
                i += 1;
            }
            last.map(|q| q + 1 - p)
        } else {
            None
        };
        // [^=#[:blank:]\n,\[\]]+
        let bare_end = self.skip_while(p, is_bare_byte);
        let bare = (bare_end > p).then_some(bare_end - p);

        let best = Self::pick(&[
            (obracket, Rule::OBracket),
            (cdata, Rule::CData),
            (quoted, Rule::Quoted),
            (bare, Rule::Bare),
        ]);
        // Where oned would read the quote as part of a bare word: the one refusal of our own.
        if opens_quote && quoted.is_none() && best.1 == Rule::Bare {
            return (1, Rule::Unterminated);
        }
        // Blanks not followed by '[' are skipped one by one, and none of them can start a
        // token when the first cannot: skip the run at once, so that long runs stay linear.
        if best.1 == Rule::Skip && after_blanks > p {
            return (after_blanks - p, Rule::Skip);
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<(Token, String)> {
        let mut lx = Lexer::new(text);
        let mut out = Vec::new();
        loop {
            let t = lx
                .next_token()
                .unwrap_or_else(|at| panic!("{text:?}: {at:?}"));
            let end = t.0 == Token::End;
            out.push(t);
            if end {
                return out;
            }
        }
    }

    /// Where the scanner stops with an unterminated quote, after its first tokens.
    fn unterminated(text: &str) -> Location {
        let mut lx = Lexer::new(text);
        for _ in 0..text.len() + 1 {
            match lx.next_token() {
                Ok((Token::End, _)) => break,
                Ok(_) => {}
                Err(at) => return at,
            }
        }
        panic!("{text:?} scanned without error")
    }

    #[test]
    fn quoted_versus_bare() {
        let t = tokens("A=\"x\"y\n");
        assert_eq!(t[2], (Token::String, "\"x\"y".into()));
        let t = tokens("A=\"x\"\n");
        assert_eq!(t[2], (Token::String, "x".into()));
        let t = tokens("A=\"x\\\"y\" B=x\"\n");
        assert_eq!(t[2], (Token::String, "x\\\"y".into()));
        // A quote inside a bare word opens nothing.
        let t = tokens("A=x\"y\n");
        assert_eq!(t[2], (Token::String, "x\"y".into()));
    }

    #[test]
    fn an_unterminated_quote_is_refused() {
        let at = |line, first_column, last_column| Location {
            line,
            first_column,
            last_column,
        };
        // oned reads these as the bare words `"/bin/true`, `"foo\` and `"x`.
        assert_eq!(unterminated("COMMAND = \"/bin/true"), at(0, 11, 12));
        assert_eq!(unterminated("A=1\nB=\"foo\\\nC=2\n"), at(1, 7, 8));
        assert_eq!(unterminated("V=[K=1, L=\"x]\n"), at(0, 11, 12));
        // A later quote, even an escaped one, closes the value, as in oned.
        assert_eq!(tokens("A=\"foo\\\"")[2], (Token::String, "foo\\".into()));
        assert_eq!(
            tokens("A=\"x\nB=\"y\"\n")[2],
            (Token::String, "x\nB=".into())
        );
        // With `]]>` on its first line, the value still fails as oned fails it.
        assert_eq!(tokens("A=\"x]]>\n")[2].0, Token::CData);
    }

    #[test]
    fn cdata_on_first_line_only() {
        let t = tokens("A= x]]> y\n");
        assert_eq!(t[2].0, Token::CData);
        let t = tokens("A=\"x\ny]]>\"\n");
        assert_eq!(t[2], (Token::String, "x\ny]]>".into()));
    }

    #[test]
    fn comment_needs_final_lf() {
        let t = tokens("# c\n");
        assert_eq!(t, vec![(Token::End, String::new())]);
        let t = tokens("# c");
        assert_eq!(t[0], (Token::Variable, "c".into()));
    }
}
