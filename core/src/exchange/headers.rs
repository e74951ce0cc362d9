//! Headers-exchange matching, as RabbitMQ does it.
//!
//! A binding's arguments are the pattern; `x-match` is `all` (default),
//! `any`, `all-with-x` or `any-with-x`. Pattern keys starting with `x-` are
//! ignored unless a `-with-x` mode is used. A `Void` pattern value only
//! requires the header to be present; otherwise the header must have the same
//! value, integers comparing equal across integer widths.

use ringmq_protocol::{FieldTable, FieldValue};

/// How the pattern's entries combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMode {
    /// Every entry matches.
    All,
    /// At least one entry matches.
    Any,
}

/// A compiled headers binding.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadersPattern {
    mode: MatchMode,
    entries: Vec<(String, FieldValue)>,
}

/// The `x-match` argument is not one RabbitMQ accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMatchMode(pub String);

impl HeadersPattern {
    /// Compiles binding arguments.
    ///
    /// # Errors
    /// An `x-match` value other than the four modes.
    pub fn compile(args: &FieldTable) -> Result<HeadersPattern, BadMatchMode> {
        let (mode, with_x) = match args.get("x-match") {
            None => (MatchMode::All, false),
            Some(v) => match v.as_str() {
                Some("all") => (MatchMode::All, false),
                Some("any") => (MatchMode::Any, false),
                Some("all-with-x") => (MatchMode::All, true),
                Some("any-with-x") => (MatchMode::Any, true),
                _ => return Err(BadMatchMode(v.describe())),
            },
        };
        let entries = args
            .iter()
            .filter(|(k, _)| *k != "x-match" && (with_x || !k.starts_with("x-")))
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        Ok(HeadersPattern { mode, entries })
    }

    /// True when `headers` match the pattern.
    pub fn matches(&self, headers: Option<&FieldTable>) -> bool {
        let empty = FieldTable::new();
        let headers = headers.unwrap_or(&empty);
        let entry_matches = |(key, want): &(String, FieldValue)| match headers.get(key) {
            None => false,
            Some(have) => matches!(want, FieldValue::Void) || same_value(want, have),
        };
        match self.mode {
            MatchMode::All => self.entries.iter().all(entry_matches),
            MatchMode::Any => self.entries.iter().any(entry_matches),
        }
    }
}

fn same_value(a: &FieldValue, b: &FieldValue) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => return x == y,
        (Some(_), None) | (None, Some(_)) => return false,
        (None, None) => {}
    }
    match (a, b) {
        (FieldValue::F32(x), FieldValue::F64(y)) | (FieldValue::F64(y), FieldValue::F32(x)) => {
            f64::from(*x) == *y
        }
        (
            FieldValue::LongStr(x) | FieldValue::Bytes(x),
            FieldValue::LongStr(y) | FieldValue::Bytes(y),
        ) => x == y,
        (FieldValue::LongStr(x), FieldValue::ShortStr(y))
        | (FieldValue::ShortStr(y), FieldValue::LongStr(x)) => x == y.as_bytes(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn all_and_any() {
        let s = FieldValue::string;
        type Entries<'a> = &'a [(&'a str, FieldValue)];
        let rows: &[(Entries, Entries, bool)] = &[
            (
                &[("format", s("pdf")), ("type", s("report"))],
                &[("format", s("pdf")), ("type", s("report"))],
                true,
            ),
            (
                &[("format", s("pdf")), ("type", s("report"))],
                &[("format", s("pdf"))],
                false,
            ),
            (
                &[
                    ("x-match", s("any")),
                    ("format", s("pdf")),
                    ("type", s("report")),
                ],
                &[("format", s("pdf"))],
                true,
            ),
            (
                &[("x-match", s("any")), ("format", s("pdf"))],
                &[("format", s("zip"))],
                false,
            ),
            (&[("x-match", s("all"))], &[], true),
            (&[("x-match", s("any"))], &[("a", s("b"))], false),
            (
                &[("n", FieldValue::I32(5))],
                &[("n", FieldValue::I64(5))],
                true,
            ),
            (&[("n", FieldValue::I32(5))], &[("n", s("5"))], false),
            (
                &[("present", FieldValue::Void)],
                &[("present", FieldValue::Bool(false))],
                true,
            ),
            (&[("present", FieldValue::Void)], &[], false),
            (&[("x-foo", s("bar"))], &[], true),
            (
                &[("x-match", s("all-with-x")), ("x-foo", s("bar"))],
                &[],
                false,
            ),
            (
                &[("x-match", s("any-with-x")), ("x-foo", s("bar"))],
                &[("x-foo", s("bar"))],
                true,
            ),
        ];
        for (pattern, headers, want) in rows {
            let p = HeadersPattern::compile(&table(pattern)).unwrap();
            assert_eq!(
                p.matches(Some(&table(headers))),
                *want,
                "{pattern:?} vs {headers:?}"
            );
        }
    }

    #[test]
    fn bad_mode() {
        let args = table(&[("x-match", FieldValue::string("some"))]);
        assert!(HeadersPattern::compile(&args).is_err());
    }
}
