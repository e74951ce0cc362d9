//! Rows of API JSON as a plain-text table: a header row of column names,
//! then one line per row, columns left-aligned and two spaces apart, no
//! trailing blanks.
//!
//! Columns are dotted paths into each row (`message_stats.publish_details.rate`);
//! a key that itself holds dots (`basic.nack` in client capabilities) is
//! found too, the longest key first. A missing or null value is an empty
//! cell; lists of scalars are joined with `,`; objects print as compact
//! JSON; control characters are escaped so a row stays one line.

use serde_json::Value;

/// The value at the dotted `path` in `v`, if any.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    let obj = v.as_object()?;
    if let Some(found) = obj.get(path) {
        return Some(found);
    }
    // Split after the longest prefix that is a key, then descend.
    let dots = path.match_indices('.').map(|(i, _)| i).collect::<Vec<_>>();
    dots.iter()
        .rev()
        .filter_map(|&i| Some((obj.get(&path[..i])?, &path[i + 1..])))
        .find_map(|(inner, rest)| lookup(inner, rest))
}

/// One cell's text.
pub fn cell(v: Option<&Value>) -> String {
    let text = match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.iter().all(is_scalar) => items
            .iter()
            .map(|i| cell(Some(i)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    };
    one_line(&text)
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// `s` with control characters escaped (`\n`, `\t`, `\u{1b}`).
fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `rows` (JSON objects, or anything: a non-object row shows its value in
/// the first column) under a header of `columns`, ending in a newline.
pub fn render(columns: &[String], rows: &[Value]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            if row.is_object() {
                columns.iter().map(|c| cell(lookup(row, c))).collect()
            } else {
                std::iter::once(cell(Some(row)))
                    .chain(columns.iter().skip(1).map(|_| String::new()))
                    .collect()
            }
        })
        .collect();
    grid(columns, &body)
}

/// `header` and `body` lines, columns padded to their widest cell.
pub fn grid(header: &[String], body: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for line in body {
        for (w, c) in widths.iter_mut().zip(line) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(header).chain(body.iter().map(Vec::as_slice)) {
        let mut text = String::new();
        for (i, (c, w)) in line.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(c);
            text.extend(std::iter::repeat_n(' ', w - c.chars().count()));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn columns_are_aligned_under_a_header() {
        let rows = [
            json!({"name": "orders", "messages": 6, "durable": true}),
            json!({"name": "aliveness-test", "messages": 0, "durable": false}),
        ];
        let out = render(&cols(&["name", "messages", "durable"]), &rows);
        assert_eq!(
            out,
            "name            messages  durable\n\
             orders          6         true\n\
             aliveness-test  0         false\n"
        );
    }

    #[test]
    fn dotted_columns_descend_into_objects() {
        let row = json!({
            "name": "q",
            "message_stats": {"publish": 3, "publish_details": {"rate": 1.5}},
            "client_properties": {"capabilities": {"basic.nack": true}},
            "a.b": "literal key wins",
            "a": {"b": "nested"},
        });
        assert_eq!(
            cell(lookup(&row, "message_stats.publish_details.rate")),
            "1.5"
        );
        assert_eq!(cell(lookup(&row, "message_stats.publish")), "3");
        assert_eq!(
            cell(lookup(&row, "client_properties.capabilities.basic.nack")),
            "true"
        );
        assert_eq!(cell(lookup(&row, "a.b")), "literal key wins");
        assert_eq!(
            cell(lookup(&row, "message_stats")),
            r#"{"publish":3,"publish_details":{"rate":1.5}}"#
        );
    }

    #[test]
    fn missing_and_null_values_are_empty_cells() {
        let rows = [
            json!({"name": "fresh"}),
            json!({"name": "busy", "messages": 4, "policy": null}),
        ];
        let out = render(&cols(&["name", "messages", "policy", "x.y.z"]), &rows);
        assert_eq!(out, "name   messages  policy  x.y.z\nfresh\nbusy   4\n");
        assert_eq!(cell(lookup(&json!({"a": 1}), "a.b")), "");
        assert_eq!(cell(lookup(&json!("text"), "a")), "");
    }

    #[test]
    fn lists_join_and_control_characters_are_escaped() {
        let row = json!({"tags": ["administrator", "monitoring"], "empty": [],
            "mixed": [1, {"a": 2}], "text": "two\nlines\tand\u{1b}esc"});
        assert_eq!(cell(lookup(&row, "tags")), "administrator,monitoring");
        assert_eq!(cell(lookup(&row, "empty")), "");
        assert_eq!(cell(lookup(&row, "mixed")), r#"[1,{"a":2}]"#);
        assert_eq!(cell(lookup(&row, "text")), r"two\nlines\tand\u{1b}esc");
    }

    #[test]
    fn widths_count_characters_not_bytes_and_rows_need_not_be_objects() {
        let rows = [json!({"name": "ünï"}), json!("raw"), json!(7)];
        let out = render(&cols(&["name", "n"]), &rows);
        assert_eq!(out, "name  n\nünï\nraw\n7\n");
        assert_eq!(render(&cols(&["name"]), &[]), "name\n");
    }
}
