//! A JSON splitter that finds where values begin and end without parsing them: the members
//! of an object and the elements of an array, as byte ranges of the body.
//!
//! It is what lets `subscriptions[]` be read entry by entry from the raw bytes: an entry that
//! holds invalid UTF-8, a number serde cannot represent (`1e400`) or arrays nested deeper
//! than serde's recursion limit is found, cut out and parsed on its own, and only it fails.
//! The scan is one pass with no recursion (nesting is a counter), so its work and memory are
//! bounded by the body's length whatever the body holds. It checks structure only (brackets,
//! strings, separators); what a value means is serde's business.

use std::ops::Range;

/// Why the bytes are not a JSON value of the expected shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SplitError(pub &'static str);

/// One object member: the key's bytes (quotes included) and the value's, as ranges.
pub(crate) type Member = (Range<usize>, Range<usize>);

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end (exclusive) of the string starting with the quote at `i`.
fn string_end(b: &[u8], i: usize) -> Result<usize, SplitError> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'"' => return Ok(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    Err(SplitError("a string is not closed"))
}

/// The end (exclusive) of the value starting at `i` (after whitespace).
pub(crate) fn value_end(b: &[u8], i: usize) -> Result<usize, SplitError> {
    match b.get(i) {
        None => Err(SplitError("a value is missing")),
        Some(b'"') => string_end(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err(SplitError("an object or array is not closed"))
        }
        Some(b'}' | b']' | b',' | b':') => Err(SplitError("a value is missing")),
        Some(_) => {
            // A number, true, false or null: up to the next separator.
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' | b':') {
                j += 1;
            }
            Ok(j)
        }
    }
}

/// The members of the object that is the whole of `b` (whitespace around it allowed): each
/// key's raw bytes (quotes included) and its value's range.
///
/// # Errors
/// [`SplitError`] when `b` is not an object, or its structure is broken.
pub(crate) fn object_members(b: &[u8]) -> Result<Vec<Member>, SplitError> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Err(SplitError("not an object"));
    }
    i = skip_ws(b, i + 1);
    let mut members = Vec::new();
    if b.get(i) == Some(&b'}') {
        return trailing(b, i + 1).map(|()| members);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return Err(SplitError("an object key is not a string"));
        }
        let key_end = string_end(b, i)?;
        let key = i..key_end;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return Err(SplitError("a ':' is missing after a key"));
        }
        let start = skip_ws(b, i + 1);
        let end = value_end(b, start)?;
        members.push((key, start..end));
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return trailing(b, i + 1).map(|()| members),
            _ => return Err(SplitError("a ',' or '}' is missing in an object")),
        }
    }
}

/// The elements of the array in `b[range]`, as ranges of `b`.
///
/// # Errors
/// [`SplitError`] when it is not an array, or its structure is broken.
pub(crate) fn array_elements(b: &[u8], range: Range<usize>) -> Result<Vec<Range<usize>>, SplitError> {
    let (mut i, end) = (range.start, range.end);
    if b.get(i) != Some(&b'[') {
        return Err(SplitError("not an array"));
    }
    i = skip_ws(b, i + 1);
    let mut out = Vec::new();
    if b.get(i) == Some(&b']') {
        return Ok(out);
    }
    loop {
        let e = value_end(b, i)?;
        if e > end {
            return Err(SplitError("an array element runs past the array"));
        }
        out.push(i..e);
        i = skip_ws(b, e);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') if i + 1 == end => return Ok(out),
            _ => return Err(SplitError("a ',' or ']' is missing in an array")),
        }
    }
}

fn trailing(b: &[u8], i: usize) -> Result<(), SplitError> {
    if skip_ws(b, i) == b.len() { Ok(()) } else { Err(SplitError("something follows the object")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(s: &str) -> Vec<(String, String)> {
        let b = s.as_bytes();
        object_members(b).unwrap().into_iter().map(|(k, v)| (s[k].to_owned(), s[v].to_owned())).collect()
    }

    #[test]
    fn members_and_elements_are_found_without_parsing_them() {
        let s = r#" {"ok": true, "subscriptions": [ {"a": "x,}]\"y"}, 1e400, [[[[]]]], "s" ], "n": null} "#;
        let m = members(s);
        assert_eq!(m[0], ("\"ok\"".into(), "true".into()));
        assert_eq!(m[2], ("\"n\"".into(), "null".into()));
        let b = s.as_bytes();
        let (_, arr) = object_members(b).unwrap()[1].clone();
        let elems: Vec<&str> = array_elements(b, arr).unwrap().into_iter().map(|r| &s[r]).collect();
        assert_eq!(elems, [r#"{"a": "x,}]\"y"}"#, "1e400", "[[[[]]]]", "\"s\""]);
    }

    #[test]
    fn deep_nesting_and_invalid_utf8_are_only_bytes_to_it() {
        let mut body = b"{\"ok\":true,\"subscriptions\":[{\"x\":".to_vec();
        body.extend(std::iter::repeat_n(b'[', 5000));
        body.extend(std::iter::repeat_n(b']', 5000));
        body.extend(b"},{\"y\":\"\xff\xfe\"}]}");
        let m = object_members(&body).unwrap();
        assert_eq!(array_elements(&body, m[1].1.clone()).unwrap().len(), 2);
    }

    #[test]
    fn broken_structure_is_an_error() {
        for s in ["", "[]", "{", r#"{"a" 1}"#, r#"{"a": [1, 2}"#, r#"{"a": "open}"#, r#"{"a": 1} x"#, r#"{"a":}"#] {
            assert!(object_members(s.as_bytes()).is_err(), "{s}");
        }
    }
}
