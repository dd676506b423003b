//! A cursor over one JSON text that finds where values lie without
//! building them, for the one-pass reading of result lines.
//!
//! It is as strict as `serde_json` skipping a value (`IgnoredAny`): the same
//! grammar for numbers, strings, escapes and literals, the same whitespace,
//! no trailing commas, and no depth limit (past 128 levels it hands the
//! value to `serde_json` itself). What it accepts, `serde_json` accepts,
//! ending at the same byte; a property test below checks that on arbitrary
//! bytes. Reading a body this way, rather than through serde's skipping,
//! matters for bodies of numbers: an embedding vector is thousands of them.

/// Where one value lies in the text: a byte range.
pub(crate) type Span = (usize, usize);

/// How deep the cursor follows nesting itself before it hands the value to
/// `serde_json` (one bit of the stack each).
const OWN_DEPTH: u32 = 128;

/// A position in a JSON text.
pub(crate) struct Cursor<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Cursor { text, i: 0 }
    }

    /// The text a span covers.
    pub(crate) fn slice(&self, (a, b): Span) -> &'a str {
        &self.text[a..b]
    }

    /// Where the cursor is: a byte offset into the text.
    pub(crate) fn pos(&self) -> usize {
        self.i
    }

    /// After whitespace, where the next value starts.
    pub(crate) fn value_start(&mut self) -> usize {
        self.ws();
        self.i
    }

    /// Skips whitespace.
    #[inline]
    fn ws(&mut self) {
        self.i = skip_ws(self.text.as_bytes(), self.i);
    }

    /// After whitespace, the next byte, not taken.
    #[inline]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.text.as_bytes().get(self.i).copied()
    }

    /// After whitespace, takes `c` if it comes next.
    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        let next = self.peek() == Some(c);
        if next {
            self.i += 1;
        }
        next
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Reads an object's next key and its colon: call after `{` with
    /// `first` set, then after each value. `Some(None)` when the object
    /// closes. `None` for bad JSON, and for a key with escapes (the caller
    /// then leaves the line to a reading that decodes them).
    pub(crate) fn next_key(&mut self, first: bool) -> Option<Option<&'a str>> {
        if self.eat(b'}') {
            return Some(None);
        }
        if !first && !self.eat(b',') {
            return None;
        }
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        self.i = string_end(self.text.as_bytes(), start)?;
        let key = &self.text[start..self.i - 1];
        if key.contains('\\') || !self.eat(b':') {
            return None;
        }
        Some(Some(key))
    }

    /// Skips one value, checked as `serde_json` checks it; where it lies.
    pub(crate) fn value(&mut self) -> Option<Span> {
        let b = self.text.as_bytes();
        let mut i = skip_ws(b, self.i);
        let start = i;
        // One bit per open container: 1 for an object, 0 for an array.
        let mut stack: u128 = 0;
        let mut depth = 0u32;
        loop {
            // A value starts at `i`.
            match *b.get(i)? {
                b'"' => i = string_end(b, i + 1)?,
                c @ (b'{' | b'[') if depth < OWN_DEPTH => {
                    let object = c == b'{';
                    let close = if object { b'}' } else { b']' };
                    i = skip_ws(b, i + 1);
                    if b.get(i) == Some(&close) {
                        i += 1;
                    } else {
                        stack = (stack << 1) | u128::from(object);
                        depth += 1;
                        if object {
                            i = member_key(b, i)?;
                        }
                        continue;
                    }
                }
                b'{' | b'[' => i += deep(&self.text[i..])?,
                b'-' | b'0'..=b'9' => {
                    i = number_end(b, i)?;
                    if depth > 0 && stack & 1 == 0 {
                        i = more_numbers(b, i)?;
                    }
                }
                b'n' => i = literal_end(b, i, b"null")?,
                b't' => i = literal_end(b, i, b"true")?,
                b'f' => i = literal_end(b, i, b"false")?,
                _ => return None,
            }
            // A value ended: close what it ends, then find the next one.
            loop {
                if depth == 0 {
                    self.i = i;
                    return Some((start, i));
                }
                i = skip_ws(b, i);
                let object = stack & 1 == 1;
                match *b.get(i)? {
                    b',' if object => {
                        i = member_key(b, i + 1)?;
                        break;
                    }
                    b',' => {
                        i = skip_ws(b, i + 1);
                        break;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return None,
                }
                i += 1;
                stack >>= 1;
                depth -= 1;
            }
        }
    }
}

/// From `i`, past whitespace (space, tab, line feed, carriage return).
#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// Inside an object being skipped, from `i`: whitespace, a key (any
/// string), its colon, and the whitespace before the value; where the
/// value starts.
#[inline]
fn member_key(b: &[u8], i: usize) -> Option<usize> {
    let i = skip_ws(b, i);
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = skip_ws(b, string_end(b, i + 1)?);
    if b.get(i) != Some(&b':') {
        return None;
    }
    Some(skip_ws(b, i + 1))
}

/// In an array, just after a number at `i`: the numbers that follow it,
/// each after a comma, in one tight loop (an embedding vector is thousands
/// of them). Stops before the first comma not followed by a number, or at
/// whatever else comes, for the caller to judge.
#[inline]
fn more_numbers(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let comma = skip_ws(b, i);
        if b.get(comma) != Some(&b',') {
            return Some(comma);
        }
        let next = skip_ws(b, comma + 1);
        match b.get(next) {
            Some(b'-' | b'0'..=b'9') => i = number_end(b, next)?,
            _ => return Some(comma),
        }
    }
}

/// Skips a container nested too deep for the cursor's own stack, by
/// `serde_json`, which has no depth limit when it skips; its length.
#[cold]
fn deep(rest: &str) -> Option<usize> {
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<serde::de::IgnoredAny>();
    values.next()?.ok()?;
    Some(values.byte_offset())
}

/// From `i`, just after a string's opening quote: just after its closing
/// one. Raw control characters are refused; escapes are checked (`\u`
/// takes any four hex digits, as `serde_json` does when it skips).
#[inline]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = plain_end(b, i);
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => match *b.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    if !b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            },
            // A raw control character.
            _ => return None,
        }
    }
}

/// From `i`, inside a string: the first quote, backslash or control
/// character (or the end), eight bytes at a time where eight are left.
#[inline(always)]
fn plain_end(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(eight) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(eight);
        let v = u64::from_le_bytes(word);
        // A byte's high bit is set where it is a quote, a backslash or
        // under 0x20. A borrow only reaches later bytes, past the first
        // one flagged, so the lowest flagged byte is always a true one.
        let quote = v ^ (ONES * u64::from(b'"'));
        let slash = v ^ (ONES * u64::from(b'\\'));
        let found = ((quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (v.wrapping_sub(ONES * 0x20) & !v))
            & HIGH;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// From `i`, a number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`;
/// where it ends.
#[inline(always)]
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i| digits_end(b, i);
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match *b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(i + 1),
        _ => return None,
    }
    // A second leading digit after `0` is refused by what follows (no
    // value continues with a digit).
    if b.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

/// From `i`, past ASCII digits, eight at a time where eight are left.
#[inline(always)]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while let Some(eight) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(eight);
        // Digits become 0..=9. Adding 0x76 sets the high bit of a byte
        // over 9; a byte with its high bit already set is not a digit
        // either. A carry out of such a byte only reaches later bytes,
        // past the first one that is not a digit, so the lowest flagged
        // byte is always the first non-digit.
        let t = u64::from_le_bytes(word) ^ 0x3030_3030_3030_3030;
        let not_digit = (t | t.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080;
        if not_digit != 0 {
            return i + (not_digit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// From `i`, a literal (`null`, `true`, `false`); where it ends.
fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b.get(i..)?.starts_with(word).then_some(i + word.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `serde_json` makes of `text` as one value followed by anything:
    /// where the value ends, or `None` if it refuses it.
    fn serde_end(text: &str) -> Option<usize> {
        let mut values =
            serde_json::Deserializer::from_str(text).into_iter::<serde::de::IgnoredAny>();
        values.next()?.ok()?;
        Some(values.byte_offset())
    }

    /// The cursor's reading of `text`, held to a value that ends the text
    /// or is followed by a byte that may follow a value in a container.
    fn cursor_end(text: &str) -> Option<usize> {
        let mut c = Cursor::new(text);
        let (_, end) = c.value()?;
        Some(end)
    }

    /// Judged as the whole text (what a caller relies on): the same
    /// verdict as `serde_json` reading the text as one value.
    fn agree(text: &str) {
        let ours = {
            let mut c = Cursor::new(text);
            c.value().filter(|_| c.at_end()).map(|s| s.1)
        };
        let theirs = serde_json::from_str::<serde::de::IgnoredAny>(text).ok();
        assert_eq!(ours.is_some(), theirs.is_some(), "{text:?}");
        if ours.is_some() {
            assert_eq!(ours, serde_end(text), "{text:?}");
        }
    }

    #[test]
    fn agrees_with_serde_on_chosen_texts() {
        for t in [
            "0",
            "-0",
            "01",
            "-",
            "1.",
            "1.5",
            ".5",
            "1e",
            "1e+",
            "1E-7",
            "1e5x",
            "-a",
            "00",
            "[]",
            "[1,]",
            "[,1]",
            "[1 2]",
            "{}",
            "{,}",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{1:2}"#,
            r#"{"a":1"b":2}"#,
            r#""\u12g4""#,
            r#""\u1234""#,
            "\"\\x\"",
            "\"a\tb\"",
            r#""\/""#,
            "nul",
            "null",
            "nulll",
            "true",
            "tru",
            "false",
            " [ 1 , { \"k\" : [ ] } ] ",
            "[",
            "{",
            "\"",
            "]",
            "[1]]",
            r#"{"a":{"b":[true,false,null,-1.5e-3,"x"]}}"#,
            "[0.1,-2e-3,3,4.0E+2]",
            "\"\u{e9}\u{1F600}\"",
        ] {
            agree(t);
        }
        // Past the cursor's own stack: handed to serde_json, same verdict.
        for depth in [127, 128, 129, 300] {
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            agree(&deep);
            agree(&format!("{{\"a\":{deep}}}"));
            agree(&format!("[{deep},1]"));
            agree(&format!("{}1{}", "[".repeat(depth), "]".repeat(depth - 1)));
        }
    }

    /// A value followed by more text ends where serde_json ends it.
    #[test]
    fn a_value_ends_where_serde_ends_it() {
        for t in [r#"{"a":[1,2]},"x""#, "[1] ]", "12,3", "\"s\":1", "null}"] {
            assert_eq!(cursor_end(t), serde_end(t), "{t:?}");
        }
    }

    #[test]
    fn keys_are_read_with_their_colon() {
        let text = r#"{ "a" : 1 , "b\n":2}"#;
        let mut c = Cursor::new(text);
        assert!(c.eat(b'{'));
        assert_eq!(c.next_key(true), Some(Some("a")));
        assert_eq!(c.value().map(|s| c.slice(s)), Some("1"));
        // A key with an escape is left to a decoding reader.
        assert_eq!(c.next_key(false), None);
        let mut c = Cursor::new("{}");
        assert!(c.eat(b'{'));
        assert_eq!(c.next_key(true), Some(None));
        assert!(c.at_end());
    }

    /// Bytes drawn mostly from JSON's own alphabet, so that most texts are
    /// nearly JSON and the edges of the grammar are hit often.
    fn jsonish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just("\"".to_owned()),
            Just("\"k\":".to_owned()),
            Just("\\".to_owned()),
            Just("\\u00e9".to_owned()),
            Just("\\uZZ".to_owned()),
            Just(" ".to_owned()),
            Just("\n".to_owned()),
            Just("\u{1}".to_owned()),
            Just("null".to_owned()),
            Just("nul".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            "-?[0-9]{0,3}(\\.[0-9]{0,2})?([eE][+-]?[0-9]{0,2})?",
            "[a-z\u{e9}]{1,3}",
            "[a-z \u{e9}\u{1F600}]{8,40}",
        ];
        prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
    }

    /// A JSON value as text, compact or spaced.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            ".{0,40}".prop_map(serde_json::Value::String),
        ];
        let value = leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-z\"\\\\]{0,3}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        (value, any::<bool>()).prop_map(|(v, pretty)| {
            if pretty {
                serde_json::to_string_pretty(&v).expect("json")
            } else {
                v.to_string()
            }
        })
    }

    /// The eight-at-a-time scans stop where a byte-by-byte scan stops, at
    /// every offset and with any bytes around.
    #[test]
    fn word_scans_agree_with_byte_scans() {
        let bytes_loop_plain = |b: &[u8], mut i: usize| {
            while i < b.len() && !(b[i] == b'"' || b[i] == b'\\' || b[i] < 0x20) {
                i += 1;
            }
            i
        };
        let bytes_loop_digits = |b: &[u8], mut i: usize| {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            i
        };
        let fill: Vec<u8> = (0..=255u8).collect();
        for len in 0..24 {
            for at in 0..=len {
                for &special in &fill {
                    // `a` and `7` around the byte under test, which is `at` in.
                    let mut plain = vec![b'a'; len];
                    let mut digits = vec![b'7'; len];
                    if at < len {
                        plain[at] = special;
                        digits[at] = special;
                    }
                    for start in [0, at.min(3)] {
                        assert_eq!(plain_end(&plain, start), bytes_loop_plain(&plain, start));
                        assert_eq!(
                            digits_end(&digits, start),
                            bytes_loop_digits(&digits, start)
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn word_scans_agree_on_any_bytes(b in prop::collection::vec(any::<u8>(), 0..40), start in 0usize..8) {
            let start = start.min(b.len());
            let mut i = start;
            while i < b.len() && !(b[i] == b'"' || b[i] == b'\\' || b[i] < 0x20) {
                i += 1;
            }
            prop_assert_eq!(plain_end(&b, start), i);
            let mut i = start;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            prop_assert_eq!(digits_end(&b, start), i);
        }

        #[test]
        fn agrees_with_serde_on_nearly_json(text in jsonish()) {
            agree(&text);
            // Where serde_json takes a value off the front, so does the cursor.
            if let Some(end) = serde_end(&text) {
                prop_assert_eq!(cursor_end(&text), Some(end));
            }
        }

        #[test]
        fn reads_every_json_value(text in json_text(), cut in any::<prop::sample::Index>()) {
            agree(&text);
            let mut c = Cursor::new(&text);
            prop_assert_eq!(c.value(), Some((0, text.len())));
            // A cut value gets the same verdict as from serde_json.
            if let Some(prefix) = text.get(..cut.index(text.len().max(1))) {
                agree(prefix);
            }
        }
    }
}
