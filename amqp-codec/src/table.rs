//! Field tables checked before they are parsed: `amq-protocol` parses
//! nested tables and arrays recursively with no depth limit, so a peer that
//! nests a few thousand of them in one frame would overflow the parser's
//! stack. [`check_method_tables`] and [`check_header_tables`] walk every
//! field table of a method or content-header payload without recursion and
//! refuse one nested deeper than [`MAX_TABLE_DEPTH`] (or malformed) before
//! the parser sees it.

use crate::method::method_ids;

/// Deepest nesting of tables and arrays accepted (a table at top level is
/// depth 1), as the native protocol allows.
pub const MAX_TABLE_DEPTH: usize = 32;

/// Why a field table is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// Tables or arrays nested deeper than [`MAX_TABLE_DEPTH`].
    #[error("field tables nested deeper than {MAX_TABLE_DEPTH}")]
    TooDeep,
    /// A length or value runs past its container or the payload.
    #[error("field table is truncated")]
    Truncated,
    /// A value of a type AMQP does not define.
    #[error("unknown field value type {0:#04x}")]
    UnknownType(u8),
}

/// A reader over a payload.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<usize, TableError> {
        let start = self.at;
        let end = start.checked_add(n).ok_or(TableError::Truncated)?;
        if end > self.bytes.len() {
            return Err(TableError::Truncated);
        }
        self.at = end;
        Ok(start)
    }

    fn u8(&mut self) -> Result<u8, TableError> {
        let at = self.take(1)?;
        Ok(self.bytes[at])
    }

    fn u32(&mut self) -> Result<usize, TableError> {
        let at = self.take(4)?;
        let b = &self.bytes[at..at + 4];
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn short_string(&mut self) -> Result<(), TableError> {
        let n = usize::from(self.u8()?);
        self.take(n).map(|_| ())
    }
}

/// Checks the field table at the cursor (its 4-byte length first), and
/// moves past it.
fn table(c: &mut Cursor<'_>) -> Result<(), TableError> {
    let len = c.u32()?;
    let start = c.at;
    c.take(len)?;
    // (end of the container, is a table), innermost last.
    let mut open: Vec<(usize, bool)> = vec![(start + len, true)];
    c.at = start;
    while let Some(&(end, is_table)) = open.last() {
        if c.at == end {
            open.pop();
            continue;
        }
        if c.at > end {
            return Err(TableError::Truncated);
        }
        if is_table {
            c.short_string()?;
        }
        let kind = c.u8()?;
        let fixed = match kind {
            b't' | b'b' | b'B' => 1,
            b's' | b'U' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'L' | b'l' | b'd' | b'T' => 8,
            b'D' => 5,
            b'V' => 0,
            b'S' | b'x' => c.u32()?,
            b'A' | b'F' => {
                if open.len() >= MAX_TABLE_DEPTH {
                    return Err(TableError::TooDeep);
                }
                let len = c.u32()?;
                let inner = c.at;
                c.take(len)?;
                c.at = inner;
                open.push((inner + len, kind == b'F'));
                continue;
            }
            other => return Err(TableError::UnknownType(other)),
        };
        c.take(fixed)?;
    }
    Ok(())
}

/// Checks the field tables of a method payload (class and method ids
/// first): `connection.start-ok`'s client properties and the arguments of
/// the declares, binds, unbinds and `basic.consume`. Other methods carry
/// no table.
///
/// # Errors
/// A table too deep or malformed; a payload too short to reach it.
pub fn check_method_tables(payload: &[u8]) -> Result<(), TableError> {
    // (short strings before the table, whether a flags octet follows them)
    let layout = match method_ids(payload) {
        (10, 11) => {
            let mut c = Cursor {
                bytes: payload,
                at: 4,
            };
            return table(&mut c);
        }
        (40, 10) => (2, true),
        (40, 30) | (40, 40) | (50, 20) => (3, true),
        (50, 50) => (3, false),
        (50, 10) => (1, true),
        (60, 20) => (2, true),
        _ => return Ok(()),
    };
    let mut c = Cursor {
        bytes: payload,
        at: 4,
    };
    c.take(2)?; // reserved
    for _ in 0..layout.0 {
        c.short_string()?;
    }
    if layout.1 {
        c.take(1)?;
    }
    table(&mut c)
}

/// Checks the `headers` table of a content-header payload, if present.
///
/// # Errors
/// A table too deep or malformed; a header too short to reach it.
pub fn check_header_tables(payload: &[u8]) -> Result<(), TableError> {
    let mut c = Cursor {
        bytes: payload,
        at: 0,
    };
    c.take(12)?; // class, weight, body size
    let at = c.take(2)?;
    let flags = u16::from_be_bytes([payload[at], payload[at + 1]]);
    if flags & 0x2000 == 0 {
        return Ok(());
    }
    if flags & 0x8000 != 0 {
        c.short_string()?; // content-type
    }
    if flags & 0x4000 != 0 {
        c.short_string()?; // content-encoding
    }
    table(&mut c)
}

/// Checks a field table given as its bytes without the length prefix (an
/// `AMQPLAIN` login response).
///
/// # Errors
/// A table too deep or malformed.
pub fn check_table_body(body: &[u8]) -> Result<(), TableError> {
    let mut framed = Vec::with_capacity(body.len() + 4);
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(body);
    table(&mut Cursor {
        bytes: &framed,
        at: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::{basic, connection, queue, AMQPClass};
    use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};

    fn payload(class: AMQPClass) -> Vec<u8> {
        let mut out = Vec::new();
        crate::method::put_method(&mut out, 1, class).unwrap();
        out[7..out.len() - 1].to_vec()
    }

    /// A table holding `depth` levels of alternating tables and arrays.
    fn nested(depth: usize) -> FieldTable {
        let mut v = AMQPValue::LongString(LongString::from("leaf"));
        for i in 0..depth.saturating_sub(1) {
            v = if i % 2 == 0 {
                AMQPValue::FieldArray(FieldArray::from(vec![v]))
            } else {
                let mut t = FieldTable::default();
                t.insert("k".into(), v);
                AMQPValue::FieldTable(t)
            };
        }
        let mut t = FieldTable::default();
        t.insert("top".into(), v);
        t.insert("n".into(), AMQPValue::LongLongInt(7));
        t
    }

    fn start_ok(props: FieldTable) -> Vec<u8> {
        payload(AMQPClass::Connection(connection::AMQPMethod::StartOk(
            connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: LongString::from("\0guest\0guest"),
                locale: "en_US".into(),
            },
        )))
    }

    #[test]
    fn tables_within_the_limit_pass_and_deeper_ones_are_refused() {
        assert_eq!(
            check_method_tables(&start_ok(nested(MAX_TABLE_DEPTH))),
            Ok(())
        );
        assert_eq!(
            check_method_tables(&start_ok(nested(MAX_TABLE_DEPTH + 1))),
            Err(TableError::TooDeep)
        );
        let declare = |args| {
            payload(AMQPClass::Queue(queue::AMQPMethod::Declare(
                queue::Declare {
                    queue: "q".into(),
                    durable: true,
                    arguments: args,
                    ..queue::Declare::default()
                },
            )))
        };
        assert_eq!(check_method_tables(&declare(nested(3))), Ok(()));
        assert_eq!(
            check_method_tables(&declare(nested(40))),
            Err(TableError::TooDeep)
        );
    }

    #[test]
    fn twenty_thousand_nested_arrays_are_refused_without_recursion() {
        // Built by hand: an array inside an array, 20 000 deep.
        let depth = 20_000;
        let mut inner: Vec<u8> = Vec::new();
        for _ in 0..depth {
            let mut outer = vec![b'A'];
            outer.extend_from_slice(&(inner.len() as u32).to_be_bytes());
            outer.extend_from_slice(&inner);
            inner = outer;
        }
        let mut props = vec![1, b'a'];
        props.extend_from_slice(&inner);
        let mut p = vec![0, 10, 0, 11];
        p.extend_from_slice(&(props.len() as u32).to_be_bytes());
        p.extend_from_slice(&props);
        assert_eq!(check_method_tables(&p), Err(TableError::TooDeep));
    }

    #[test]
    fn truncated_and_unknown_values_are_refused() {
        let p = start_ok(nested(2));
        assert_eq!(check_method_tables(&p[..20]), Err(TableError::Truncated));
        let mut bad = vec![0, 10, 0, 11, 0, 0, 0, 3, 1, b'k', b'Z'];
        bad.extend_from_slice(&[0; 4]);
        assert_eq!(
            check_method_tables(&bad),
            Err(TableError::UnknownType(b'Z'))
        );
    }

    #[test]
    fn content_headers_are_checked() {
        let props = basic::AMQPProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(nested(MAX_TABLE_DEPTH + 1));
        let mut out = Vec::new();
        crate::content::put_header(&mut out, 1, Some(&props), 5).unwrap();
        let payload = &out[7..out.len() - 1];
        assert_eq!(check_header_tables(payload), Err(TableError::TooDeep));
        let props = basic::AMQPProperties::default().with_headers(nested(2));
        let mut out = Vec::new();
        crate::content::put_header(&mut out, 1, Some(&props), 5).unwrap();
        assert_eq!(check_header_tables(&out[7..out.len() - 1]), Ok(()));
    }
}
