//! Sender-selected distribution, as RabbitMQ does it: the `CC` and `BCC`
//! headers of a published message add routing keys to the one it was
//! published with, and `BCC` is removed before the message is routed,
//! stored or delivered, so its recipients stay hidden (`CC` stays).
//!
//! Each header must be an array; only its long-string items count (other
//! items are skipped, as are long strings that are not UTF-8: no binding
//! key or queue name could match them). A `CC` or `BCC` header of any
//! other type makes the message invalid, which RabbitMQ 3.10 refuses with
//! 406 `invalid message: {unacceptable_type_in_header,"CC",longstr}`.
//! Names are case-sensitive (`cc` is an ordinary header). Pure: the
//! caller routes with the keys (`meta::Vhost::route_with_cc`).
//!
//! A dead-lettered message is routed with the keys its `CC` header still
//! names, unless its queue sets `x-dead-letter-routing-key` (then `CC` is
//! removed), and its `x-death` entry lists them ([`header_keys`]).

use std::sync::Arc;

use ringmq_protocol::{FieldTable, FieldValue, Properties};

use crate::queue::args::type_name;

/// The headers that add routing keys, in the order their keys are added.
const ROUTING_HEADERS: [&str; 2] = ["CC", "BCC"];

/// The header removed before the message goes anywhere.
const DELETED_HEADER: &str = "BCC";

/// A `CC` or `BCC` header that is not an array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid message: {{unacceptable_type_in_header,\"{header}\",{found}}}")]
pub struct BadRoutingHeader {
    /// `CC` or `BCC`.
    pub header: &'static str,
    /// RabbitMQ's name for the type it has instead.
    pub found: &'static str,
}

/// Takes the routing keys a message's `CC` and `BCC` headers add (`CC`
/// first, each in array order, repeats kept: routing deduplicates the
/// queues) and removes `BCC` from `props`. Empty, without allocating, when
/// the message has neither header: the common case costs a scan of the
/// header names.
///
/// # Errors
/// [`BadRoutingHeader`] when either header is not an array; `props` is
/// then unchanged.
pub fn take_header_routes(
    props: &mut Option<Arc<Properties>>,
) -> Result<Vec<String>, BadRoutingHeader> {
    let Some(headers) = props.as_deref().and_then(|p| p.headers.as_ref()) else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    let mut has_bcc = false;
    for header in ROUTING_HEADERS {
        match headers.get(header) {
            None => {}
            Some(FieldValue::Array(items)) => {
                has_bcc |= header == DELETED_HEADER;
                keys.extend(long_strings(items));
            }
            Some(other) => {
                return Err(BadRoutingHeader {
                    header,
                    found: type_name(other),
                })
            }
        }
    }
    if has_bcc {
        if let Some(headers) = props
            .as_mut()
            .and_then(|p| Arc::make_mut(p).headers.as_mut())
        {
            headers.0.retain(|(k, _)| k != DELETED_HEADER);
        }
    }
    Ok(keys)
}

/// The routing keys a message's `CC` and `BCC` headers name, headers of
/// another type adding none: for a message already published (whose `BCC`
/// is gone), when it is dead-lettered.
pub fn header_keys(headers: Option<&FieldTable>) -> Vec<String> {
    let Some(headers) = headers else {
        return Vec::new();
    };
    ROUTING_HEADERS
        .iter()
        .filter_map(|h| match headers.get(h) {
            Some(FieldValue::Array(items)) => Some(long_strings(items)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The UTF-8 long strings among `items`.
fn long_strings(items: &[FieldValue]) -> impl Iterator<Item = String> + '_ {
    items.iter().filter_map(|v| match v {
        FieldValue::LongStr(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use ringmq_protocol::FieldTable;

    use super::*;

    fn with_headers(entries: Vec<(&str, FieldValue)>) -> Option<Arc<Properties>> {
        let headers = FieldTable(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        );
        Some(Arc::new(Properties {
            headers: Some(headers),
            ..Properties::default()
        }))
    }

    fn keys(items: &[&str]) -> FieldValue {
        FieldValue::Array(items.iter().map(|s| FieldValue::string(*s)).collect())
    }

    fn header_names(props: &Option<Arc<Properties>>) -> Vec<String> {
        props
            .as_deref()
            .and_then(|p| p.headers.as_ref())
            .map(|h| h.0.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn no_properties_or_no_headers_add_nothing() {
        let mut none = None;
        assert_eq!(take_header_routes(&mut none), Ok(Vec::new()));
        let mut empty = Some(Arc::new(Properties::default()));
        assert_eq!(take_header_routes(&mut empty), Ok(Vec::new()));
        let mut other = with_headers(vec![("x", FieldValue::I32(1))]);
        assert_eq!(take_header_routes(&mut other), Ok(Vec::new()));
        assert_eq!(header_names(&other), ["x"]);
    }

    #[test]
    fn cc_then_bcc_keys_and_bcc_is_removed() {
        let mut p = with_headers(vec![
            ("BCC", keys(&["b1"])),
            ("a", FieldValue::I32(1)),
            ("CC", keys(&["c1", "c2", "c1"])),
        ]);
        assert_eq!(
            take_header_routes(&mut p),
            Ok(vec!["c1".into(), "c2".into(), "c1".into(), "b1".into()])
        );
        assert_eq!(header_names(&p), ["a", "CC"]);
    }

    #[test]
    fn only_long_strings_in_the_arrays_count() {
        let mut p = with_headers(vec![(
            "CC",
            FieldValue::Array(vec![
                FieldValue::string("q1"),
                FieldValue::I32(5),
                FieldValue::ShortStr("short".into()),
                FieldValue::Bytes(b"bin".to_vec()),
                FieldValue::LongStr(vec![0xff, 0xfe]),
                FieldValue::Array(vec![FieldValue::string("nested")]),
            ]),
        )]);
        assert_eq!(take_header_routes(&mut p), Ok(vec!["q1".into()]));
    }

    #[test]
    fn a_header_that_is_not_an_array_is_refused() {
        let mut p = with_headers(vec![("CC", FieldValue::string("q1"))]);
        let e = take_header_routes(&mut p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid message: {unacceptable_type_in_header,\"CC\",longstr}"
        );
        let mut p = with_headers(vec![("CC", keys(&[])), ("BCC", FieldValue::I64(1))]);
        assert_eq!(
            take_header_routes(&mut p),
            Err(BadRoutingHeader {
                header: "BCC",
                found: "long"
            })
        );
        assert_eq!(header_names(&p), ["CC", "BCC"], "unchanged on error");
    }

    #[test]
    fn header_keys_skip_what_is_not_an_array() {
        let p = with_headers(vec![
            ("CC", keys(&["a", "b"])),
            ("BCC", FieldValue::string("x")),
        ]);
        let headers = p.as_deref().and_then(|p| p.headers.as_ref());
        assert_eq!(header_keys(headers), ["a", "b"]);
        assert!(header_keys(None).is_empty());
    }

    #[test]
    fn names_are_case_sensitive() {
        let mut p = with_headers(vec![("cc", keys(&["q1"])), ("bcc", FieldValue::I8(1))]);
        assert_eq!(take_header_routes(&mut p), Ok(Vec::new()));
        assert_eq!(header_names(&p), ["cc", "bcc"]);
    }

    #[test]
    fn a_shared_property_set_is_copied_not_changed() {
        let mut p = with_headers(vec![("BCC", keys(&["b"]))]);
        let other = p.clone();
        assert_eq!(take_header_routes(&mut p), Ok(vec!["b".into()]));
        assert!(header_names(&p).is_empty());
        assert_eq!(header_names(&other), ["BCC"]);
    }
}
