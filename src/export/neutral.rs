//! What a reviewer's tools do with the text of an export, and how each
//! output is kept from doing harm. Pure.
//!
//! - Spreadsheets (`Results.csv`, `Errors and Warnings.csv`, `export.dat`
//!   opened in one) evaluate a cell that begins with `=`, `+`, `-` or `@`
//!   (and, in some, a tab or carriage return) as a formula: such a cell is
//!   written with a leading apostrophe, which spreadsheets show as text and
//!   do not keep ([`cell`]).
//! - Control characters (NUL, escape, the C1 range) and the invisible
//!   characters that reorder or hide text (bidirectional overrides and
//!   isolates, the zero-width joiners and marks) change what a reader sees,
//!   or cut a string short in C tools: every output that a person reads
//!   (transcripts, the manifest, the load file, the reports) shows each as
//!   a visible `[U+XXXX]` instead ([`visible`]). The `.eml` files keep the
//!   original text, encoded, since they are the evidence itself.

use std::borrow::Cow;

/// Whether `c` is shown as `[U+XXXX]`. Line breaks and tabs are left to
/// each output's own rules.
fn hidden(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && !matches!(c, '\n' | '\r' | '\t'))
        || (0x7F..=0x9F).contains(&u)
        || matches!(u,
            0x061C | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x2069
            | 0xFEFF | 0xFFF9..=0xFFFB | 0xFFFE | 0xFFFF)
}

/// `s` with every hidden character written as `[U+XXXX]`.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hidden(c) {
            out.push_str(&format!("[U+{:04X}]", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A spreadsheet cell: [`visible`], and a leading apostrophe when the
/// text would start a formula.
pub fn cell(s: &str) -> Cow<'_, str> {
    let v = visible(s);
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{v}"))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_and_hidden_characters_are_neutralised() {
        for f in ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\t=x", "\r=x"] {
            assert!(cell(f).starts_with('\''), "{f:?}");
        }
        assert_eq!(cell("alice"), "alice");
        assert_eq!(cell("a=b"), "a=b");
        assert_eq!(visible("a\0b"), "a[U+0000]b");
        assert_eq!(visible("evil\u{202E}gpj.exe"), "evil[U+202E]gpj.exe");
        assert_eq!(visible("x\u{2066}y\u{2069}"), "x[U+2066]y[U+2069]");
        assert_eq!(visible("line\nbreak\ttab"), "line\nbreak\ttab");
        assert_eq!(visible("\u{1b}[31m"), "[U+001B][31m");
        assert_eq!(visible("привет 中文 👍"), "привет 中文 👍");
        // A hidden character before a formula does not hide the formula.
        assert_eq!(cell("\u{200B}=1"), "[U+200B]=1");
    }
}
