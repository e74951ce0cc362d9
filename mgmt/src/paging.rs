//! The list parameters of RabbitMQ's API: `name` (+ `use_regex`), `sort`
//! (+ `sort_reverse`), `page` + `page_size`, and `columns`, applied to JSON
//! rows in that order. Without `page` a list is a plain array; with it, an
//! object with `items` and the counts RabbitMQ gives.

use serde_json::{json, Map, Value};

/// Largest `page_size` RabbitMQ accepts.
pub const MAX_PAGE_SIZE: u64 = 500;

/// The list parameters of one request.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default)]
pub struct ListQuery {
    /// 1-based page number; None: no paging.
    pub page: Option<String>,
    /// Items per page (default 100).
    pub page_size: Option<String>,
    /// Keep rows whose name contains this (or matches it as a regex).
    pub name: Option<String>,
    /// `name` is a regular expression.
    pub use_regex: Option<String>,
    /// Dotted path of the field to sort on.
    pub sort: Option<String>,
    /// Sort descending.
    pub sort_reverse: Option<String>,
    /// Comma-separated dotted paths of the fields to keep.
    pub columns: Option<String>,
}

/// A bad list parameter: RabbitMQ's error tag and reason text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{error}: {reason}")]
pub struct BadQuery {
    /// `bad_request`, `invalid_pagination_parameters` or `page_out_of_range`.
    pub error: &'static str,
    /// RabbitMQ's text.
    pub reason: String,
}

fn unparsable() -> BadQuery {
    BadQuery {
        error: "bad_request",
        reason: "Pagination parameters are invalid".into(),
    }
}

fn truthy(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| s == "true")
}

fn number(v: &str) -> Result<i64, BadQuery> {
    v.parse::<i64>().map_err(|_| unparsable())
}

/// `v` unless it is null (a missing field sorts first).
fn known(v: &Value) -> Option<&Value> {
    (!v.is_null()).then_some(v)
}

/// The value at a dotted path (`message_stats.publish_details.rate`).
pub fn at_path<'a>(row: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(row, |v, key| v.get(key))
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

fn project(row: &Value, columns: &[&str]) -> Value {
    let mut out = Map::new();
    for path in columns {
        let Some(v) = at_path(row, path) else {
            continue;
        };
        let mut keys = path.split('.').peekable();
        let mut node = &mut out;
        while let Some(k) = keys.next() {
            if keys.peek().is_none() {
                node.insert(k.to_owned(), v.clone());
            } else {
                let child = node
                    .entry(k.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                match child {
                    Value::Object(m) => node = m,
                    _ => break,
                }
            }
        }
    }
    Value::Object(out)
}

/// A row of a big list: what filtering and sorting need without building
/// the row's JSON (which costs far more than the row, with 100 000 queues).
pub trait Row {
    /// The name filtered on.
    fn name(&self) -> &str;
    /// The virtual host (the second sort key).
    fn vhost(&self) -> &str;
    /// `v` unless it is null (a missing field sorts first).
    fn known(v: &Value) -> Option<&Value> {
        (!v.is_null()).then_some(v)
    }

    /// The value at a dotted path when the row knows it cheaply; `None`
    /// makes the list build the row's JSON to find it.
    fn key(&self, _path: &str) -> Option<Value> {
        None
    }
}

impl Row for Value {
    fn name(&self) -> &str {
        self.get("name").and_then(Value::as_str).unwrap_or_default()
    }

    fn vhost(&self) -> &str {
        self.get("vhost")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn key(&self, path: &str) -> Option<Value> {
        Some(at_path(self, path).cloned().unwrap_or(Value::Null))
    }
}

/// Filters, sorts, pages and projects JSON `rows` as `q` asks.
///
/// # Errors
/// As [`apply_with`].
pub fn apply(rows: Vec<Value>, q: &ListQuery) -> Result<Value, BadQuery> {
    apply_with(rows, q, Value::clone)
}

/// Filters, sorts, pages and projects `rows` as `q` asks; `render` makes a
/// row's JSON, called only for the rows returned (and, for a sort field
/// the rows do not know, for every row).
///
/// # Errors
/// A page or page size that is not a positive integer, a page size over
/// [`MAX_PAGE_SIZE`], a page past the last, a bad regular expression.
pub fn apply_with<R: Row>(
    mut rows: Vec<R>,
    q: &ListQuery,
    mut render: impl FnMut(&R) -> Value,
) -> Result<Value, BadQuery> {
    let total = rows.len();
    if let Some(pattern) = q.name.as_deref().filter(|n| !n.is_empty()) {
        if truthy(&q.use_regex) {
            let re = regex::Regex::new(pattern).map_err(|_| unparsable())?;
            rows.retain(|r| re.is_match(r.name()));
        } else {
            rows.retain(|r| r.name().contains(pattern));
        }
    }
    let sort = q
        .sort
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("name");
    let keys: Option<Vec<Value>> = (sort != "name").then(|| {
        rows.iter()
            .map(|r| {
                r.key(sort)
                    .unwrap_or_else(|| at_path(&render(r), sort).cloned().unwrap_or(Value::Null))
            })
            .collect()
    });
    let reverse = truthy(&q.sort_reverse);
    // Name, then vhost (then name again for other keys); reversed as asked.
    let cmp = |&a: &usize, &b: &usize| {
        let (ra, rb) = (&rows[a], &rows[b]);
        let by = match &keys {
            None => ra
                .name()
                .cmp(rb.name())
                .then_with(|| ra.vhost().cmp(rb.vhost())),
            Some(k) => cmp_values(known(&k[a]), known(&k[b]))
                .then_with(|| ra.vhost().cmp(rb.vhost()))
                .then_with(|| ra.name().cmp(rb.name())),
        };
        if reverse {
            by.reverse()
        } else {
            by
        }
    };
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let columns: Vec<&str> = q
        .columns
        .as_deref()
        .map(|c| {
            c.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut finish = |idx: &[usize]| -> Vec<Value> {
        idx.iter()
            .map(|&i| {
                let v = render(&rows[i]);
                if columns.is_empty() {
                    v
                } else {
                    project(&v, &columns)
                }
            })
            .collect()
    };
    let Some(page) = q.page.as_deref() else {
        order.sort_unstable_by(cmp);
        return Ok(Value::Array(finish(&order)));
    };
    let page = number(page)?;
    let page_size = match q.page_size.as_deref() {
        Some(s) => number(s)?,
        None => 100,
    };
    if page < 1 || page_size < 1 || page_size as u64 > MAX_PAGE_SIZE {
        return Err(BadQuery {
            error: "invalid_pagination_parameters",
            reason: format!(
                "Invalid pagination parameters: page number {page}, page size {page_size}"
            ),
        });
    }
    let (page, page_size) = (page as u64, page_size as u64);
    let filtered = order.len() as u64;
    let page_count = filtered.div_ceil(page_size);
    // As RabbitMQ: the page just past the last is an empty page.
    if page > page_count + 1 {
        return Err(BadQuery {
            error: "page_out_of_range",
            reason: format!(
                "Page out of range, page: {page} page size: {page_size}, len: {filtered}"
            ),
        });
    }
    // Only the page is sorted: the rows before it are selected, not
    // ordered (linear in the rows, not n log n).
    let start = (((page - 1) * page_size) as usize).min(order.len());
    let end = (start + page_size as usize).min(order.len());
    if start > 0 && start < order.len() {
        order.select_nth_unstable_by(start, cmp);
    }
    let tail = &mut order[start..];
    if end - start < tail.len() {
        tail.select_nth_unstable_by(end - start, cmp);
    }
    order[start..end].sort_unstable_by(cmp);
    let items = finish(&order[start..end]);
    Ok(json!({
        "filtered_count": filtered,
        "item_count": items.len(),
        "items": items,
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Value> {
        (0..7)
            .map(|i| json!({"name": format!("q{i}"), "vhost": "/", "messages": 10 - i, "message_stats": {"publish": i}}))
            .collect()
    }

    fn q(pairs: &[(&str, &str)]) -> ListQuery {
        let mut q = ListQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "page" => q.page = v,
                "page_size" => q.page_size = v,
                "name" => q.name = v,
                "use_regex" => q.use_regex = v,
                "sort" => q.sort = v,
                "sort_reverse" => q.sort_reverse = v,
                "columns" => q.columns = v,
                _ => unreachable!(),
            }
        }
        q
    }

    #[test]
    fn pages_carry_rabbitmqs_counts() {
        let v = apply(rows(), &q(&[("page", "2"), ("page_size", "3")])).unwrap();
        assert_eq!(v["page_count"], 3);
        assert_eq!(v["item_count"], 3);
        assert_eq!(v["total_count"], 7);
        assert_eq!(v["items"][0]["name"], "q3");
    }

    #[test]
    fn sorts_by_a_nested_number_and_filters_by_regex() {
        let v = apply(
            rows(),
            &q(&[
                ("sort", "message_stats.publish"),
                ("sort_reverse", "true"),
                ("name", "^q[0-4]$"),
                ("use_regex", "true"),
            ]),
        )
        .unwrap();
        let names: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["q4", "q3", "q2", "q1", "q0"]);
    }

    #[test]
    fn columns_keep_nested_paths() {
        let v = apply(rows(), &q(&[("columns", "name,message_stats.publish")])).unwrap();
        assert_eq!(v[1], json!({"name": "q1", "message_stats": {"publish": 1}}));
    }

    #[test]
    fn every_page_is_the_same_slice_of_the_full_sort() {
        // 53 rows in a scrambled order, many sharing a message count.
        let rows: Vec<Value> = (0..53)
            .map(|i| (i * 37) % 53)
            .map(|i| json!({"name": format!("q{i:02}"), "vhost": if i % 2 == 0 { "a" } else { "b" }, "messages": i % 5}))
            .collect();
        for (sort, reverse) in [
            ("name", "false"),
            ("messages", "false"),
            ("messages", "true"),
            ("vhost", "true"),
        ] {
            let all = apply(
                rows.clone(),
                &q(&[("sort", sort), ("sort_reverse", reverse)]),
            )
            .unwrap();
            let all = all.as_array().unwrap();
            for page in 1..=8 {
                let p = apply(
                    rows.clone(),
                    &q(&[
                        ("sort", sort),
                        ("sort_reverse", reverse),
                        ("page", &page.to_string()),
                        ("page_size", "7"),
                    ]),
                )
                .unwrap();
                let from = (page - 1) * 7;
                let want: Vec<Value> = all.iter().skip(from).take(7).cloned().collect();
                assert_eq!(
                    p["items"],
                    Value::Array(want),
                    "sort {sort} reverse {reverse} page {page}"
                );
            }
        }
    }

    #[test]
    fn bad_pages_are_refused() {
        assert!(apply(rows(), &q(&[("page", "0")])).is_err());
        assert!(apply(rows(), &q(&[("page", "1"), ("page_size", "501")])).is_err());
        assert!(apply(rows(), &q(&[("page", "9")])).is_err());
        assert!(apply(rows(), &q(&[("name", "("), ("use_regex", "true")])).is_err());
    }
}
