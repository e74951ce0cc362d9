//! AMQP-compatible field tables: message headers, declare arguments and
//! connection properties, with the AMQP value types preserved.

use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, Vector, WIPOffset};

use crate::error::DecodeError;
use crate::wire;

/// Floats as JSON (the metadata store) keeps them: a number when finite,
/// `"NaN"`, `"inf"` or `"-inf"` when not (JSON numbers cannot be those;
/// serde_json would write `null` and fail to read it back). `null`, as
/// stores written before this read, comes back as NaN.
#[cfg(feature = "serde")]
macro_rules! nonfinite_float {
    ($module:ident, $t:ty, $put:ident) => {
        mod $module {
            use serde::{Deserialize, Deserializer, Serializer};

            pub fn serialize<S: Serializer>(v: &$t, s: S) -> Result<S::Ok, S::Error> {
                if v.is_finite() {
                    s.$put(*v)
                } else if v.is_nan() {
                    s.serialize_str("NaN")
                } else if *v > 0.0 {
                    s.serialize_str("inf")
                } else {
                    s.serialize_str("-inf")
                }
            }

            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Repr {
                Number($t),
                Text(String),
                Null(()),
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                match Repr::deserialize(d)? {
                    Repr::Number(v) => Ok(v),
                    Repr::Null(()) => Ok(<$t>::NAN),
                    Repr::Text(t) => match t.as_str() {
                        "NaN" => Ok(<$t>::NAN),
                        "inf" => Ok(<$t>::INFINITY),
                        "-inf" => Ok(<$t>::NEG_INFINITY),
                        other => Err(serde::de::Error::custom(format_args!(
                            "'{other}' is not a float"
                        ))),
                    },
                }
            }
        }
    };
}

#[cfg(feature = "serde")]
nonfinite_float!(nonfinite_f32, f32, serialize_f32);
#[cfg(feature = "serde")]
nonfinite_float!(nonfinite_f64, f64, serialize_f64);

/// One typed value of a field table.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum FieldValue {
    /// AMQP `V`.
    Void,
    /// AMQP `t`.
    Bool(bool),
    /// AMQP `b`.
    I8(i8),
    /// AMQP `B`.
    U8(u8),
    /// AMQP `s`.
    I16(i16),
    /// AMQP `u`.
    U16(u16),
    /// AMQP `I`.
    I32(i32),
    /// AMQP `i`.
    U32(u32),
    /// AMQP `l`.
    I64(i64),
    /// Unsigned 64-bit (no AMQP 0-9-1 tag; RabbitMQ reads `l` as signed).
    U64(u64),
    /// AMQP `f`.
    F32(#[cfg_attr(feature = "serde", serde(with = "nonfinite_f32"))] f32),
    /// AMQP `d`.
    F64(#[cfg_attr(feature = "serde", serde(with = "nonfinite_f64"))] f64),
    /// AMQP `D`: `value / 10^scale`.
    Decimal {
        /// Number of decimal digits.
        scale: u8,
        /// Unscaled value.
        value: u32,
    },
    /// AMQP `S`: a long string (bytes, usually UTF-8).
    LongStr(Vec<u8>),
    /// AMQP `s` short string, as some clients send it.
    ShortStr(String),
    /// AMQP `x`: a byte array.
    Bytes(Vec<u8>),
    /// AMQP `T`: seconds since the epoch.
    Timestamp(u64),
    /// AMQP `F`.
    Table(FieldTable),
    /// AMQP `A`.
    Array(Vec<FieldValue>),
}

impl FieldValue {
    /// The value as a signed integer, for any integer kind.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(v.into()),
            FieldValue::U8(v) => Some(v.into()),
            FieldValue::I16(v) => Some(v.into()),
            FieldValue::U16(v) => Some(v.into()),
            FieldValue::I32(v) => Some(v.into()),
            FieldValue::U32(v) => Some(v.into()),
            FieldValue::I64(v) => Some(v),
            FieldValue::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as text, for the string kinds.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::LongStr(b) | FieldValue::Bytes(b) => std::str::from_utf8(b).ok(),
            FieldValue::ShortStr(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            FieldValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// A long string value from text.
    pub fn string(s: impl Into<String>) -> FieldValue {
        FieldValue::LongStr(s.into().into_bytes())
    }

    /// Renders the value the way RabbitMQ's error texts do.
    pub fn describe(&self) -> String {
        match self {
            FieldValue::Void => "void".to_owned(),
            FieldValue::Bool(b) => b.to_string(),
            FieldValue::F32(v) => v.to_string(),
            FieldValue::F64(v) => v.to_string(),
            FieldValue::Decimal { scale, value } => format!("{value}e-{scale}"),
            FieldValue::Timestamp(t) => t.to_string(),
            FieldValue::Table(_) => "table".to_owned(),
            FieldValue::Array(_) => "array".to_owned(),
            v => v
                .as_i64()
                .map(|i| i.to_string())
                .or_else(|| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{v:?}")),
        }
    }
}

/// An ordered list of named values (an AMQP field table).
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FieldTable(pub Vec<(String, FieldValue)>);

impl FieldTable {
    /// An empty table.
    pub fn new() -> FieldTable {
        FieldTable(Vec::new())
    }

    /// The value under `key`, if any (the first one if repeated).
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing entry.
    pub fn insert(&mut self, key: impl Into<String>, value: FieldValue) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over the entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl FromIterator<(String, FieldValue)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (String, FieldValue)>>(iter: I) -> Self {
        FieldTable(iter.into_iter().collect())
    }
}

/// Deepest nesting of tables and arrays accepted when decoding.
pub const MAX_FIELD_DEPTH: usize = 32;

/// Writes a table; `None` for an empty table so that the field is absent.
pub(crate) fn encode_table<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    table: &FieldTable,
) -> Option<WIPOffset<Vector<'b, ForwardsUOffset<wire::Field<'b>>>>> {
    if table.is_empty() {
        return None;
    }
    Some(encode_table_always(fbb, table))
}

fn encode_table_always<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    table: &FieldTable,
) -> WIPOffset<Vector<'b, ForwardsUOffset<wire::Field<'b>>>> {
    let mut fields = Vec::with_capacity(table.len());
    for (key, value) in &table.0 {
        let key = fbb.create_string(key);
        let value = encode_value(fbb, value);
        fields.push(wire::Field::create(
            fbb,
            &wire::FieldArgs {
                key: Some(key),
                value: Some(value),
            },
        ));
    }
    fbb.create_vector(&fields)
}

fn encode_value<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    value: &FieldValue,
) -> WIPOffset<wire::FieldValue<'b>> {
    use wire::FieldKind as K;
    let mut args = wire::FieldValueArgs::default();
    match value {
        FieldValue::Void => args.kind = K::Void,
        FieldValue::Bool(v) => (args.kind, args.int) = (K::Bool, i64::from(*v)),
        FieldValue::I8(v) => (args.kind, args.int) = (K::I8, i64::from(*v)),
        FieldValue::U8(v) => (args.kind, args.int) = (K::U8, i64::from(*v)),
        FieldValue::I16(v) => (args.kind, args.int) = (K::I16, i64::from(*v)),
        FieldValue::U16(v) => (args.kind, args.int) = (K::U16, i64::from(*v)),
        FieldValue::I32(v) => (args.kind, args.int) = (K::I32, i64::from(*v)),
        FieldValue::U32(v) => (args.kind, args.int) = (K::U32, i64::from(*v)),
        FieldValue::I64(v) => (args.kind, args.int) = (K::I64, *v),
        FieldValue::U64(v) => (args.kind, args.int) = (K::U64, *v as i64),
        FieldValue::Timestamp(v) => (args.kind, args.int) = (K::Timestamp, *v as i64),
        FieldValue::F32(v) => (args.kind, args.float) = (K::F32, f64::from(*v)),
        FieldValue::F64(v) => (args.kind, args.float) = (K::F64, *v),
        FieldValue::Decimal { scale, value } => {
            (args.kind, args.int, args.scale) = (K::Decimal, i64::from(*value), *scale)
        }
        FieldValue::LongStr(b) => {
            args.kind = K::LongStr;
            args.bytes = Some(fbb.create_vector(b));
        }
        FieldValue::ShortStr(s) => {
            args.kind = K::ShortStr;
            args.bytes = Some(fbb.create_vector(s.as_bytes()));
        }
        FieldValue::Bytes(b) => {
            args.kind = K::Bytes;
            args.bytes = Some(fbb.create_vector(b));
        }
        FieldValue::Table(t) => {
            args.kind = K::Table;
            args.table = Some(encode_table_always(fbb, t));
        }
        FieldValue::Array(items) => {
            args.kind = K::Array;
            let offsets: Vec<_> = items.iter().map(|v| encode_value(fbb, v)).collect();
            args.array = Some(fbb.create_vector(&offsets));
        }
    }
    wire::FieldValue::create(fbb, &args)
}

/// Reads a (verified) table view into an owned table.
pub(crate) fn decode_table(
    fields: Option<Vector<'_, ForwardsUOffset<wire::Field<'_>>>>,
) -> Result<FieldTable, DecodeError> {
    decode_table_at(fields, 0)
}

fn decode_table_at(
    fields: Option<Vector<'_, ForwardsUOffset<wire::Field<'_>>>>,
    depth: usize,
) -> Result<FieldTable, DecodeError> {
    let Some(fields) = fields else {
        return Ok(FieldTable::new());
    };
    if depth > MAX_FIELD_DEPTH {
        return Err(DecodeError::Field("field table nested too deeply"));
    }
    let mut out = Vec::with_capacity(fields.len());
    for f in fields.iter() {
        out.push((f.key().to_owned(), decode_value(f.value(), depth)?));
    }
    Ok(FieldTable(out))
}

fn decode_value(v: wire::FieldValue<'_>, depth: usize) -> Result<FieldValue, DecodeError> {
    use wire::FieldKind as K;
    let int = v.int();
    let narrow = |_| DecodeError::Field("integer field value out of range for its kind");
    let bytes = || v.bytes().map(|b| b.bytes().to_vec()).unwrap_or_default();
    Ok(match v.kind() {
        K::Void => FieldValue::Void,
        K::Bool => FieldValue::Bool(int != 0),
        K::I8 => FieldValue::I8(i8::try_from(int).map_err(narrow)?),
        K::U8 => FieldValue::U8(u8::try_from(int).map_err(narrow)?),
        K::I16 => FieldValue::I16(i16::try_from(int).map_err(narrow)?),
        K::U16 => FieldValue::U16(u16::try_from(int).map_err(narrow)?),
        K::I32 => FieldValue::I32(i32::try_from(int).map_err(narrow)?),
        K::U32 => FieldValue::U32(u32::try_from(int).map_err(narrow)?),
        K::I64 => FieldValue::I64(int),
        K::U64 => FieldValue::U64(int as u64),
        K::Timestamp => FieldValue::Timestamp(int as u64),
        K::F32 => FieldValue::F32(v.float() as f32),
        K::F64 => FieldValue::F64(v.float()),
        K::Decimal => FieldValue::Decimal {
            scale: v.scale(),
            value: u32::try_from(int).map_err(narrow)?,
        },
        K::LongStr => FieldValue::LongStr(bytes()),
        K::ShortStr => FieldValue::ShortStr(
            String::from_utf8(bytes())
                .map_err(|_| DecodeError::Field("short string field is not UTF-8"))?,
        ),
        K::Bytes => FieldValue::Bytes(bytes()),
        K::Table => FieldValue::Table(decode_table_at(v.table(), depth + 1)?),
        K::Array => {
            if depth > MAX_FIELD_DEPTH {
                return Err(DecodeError::Field("field array nested too deeply"));
            }
            let mut items = Vec::new();
            if let Some(arr) = v.array() {
                for item in arr.iter() {
                    items.push(decode_value(item, depth + 1)?);
                }
            }
            FieldValue::Array(items)
        }
        _ => return Err(DecodeError::Field("unknown field value kind")),
    })
}
