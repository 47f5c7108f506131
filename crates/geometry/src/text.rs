//! A whitespace tokenizer shared by the text formats.

/// Splits text into whitespace-separated tokens, tracking the position so that
/// errors can name a line.
pub(crate) struct Lexer<'a> {
    b: &'a [u8],
    pos: usize,
}

#[inline]
fn is_space(c: u8) -> bool {
    c <= b' '
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Lexer { b, pos: 0 }
    }

    /// Byte offset of the next unread byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The next token, or `None` at the end.
    #[inline]
    pub(crate) fn next(&mut self) -> Option<&'a [u8]> {
        let b = self.b;
        let mut i = self.pos;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i == b.len() {
            self.pos = i;
            return None;
        }
        let start = i;
        while i < b.len() && !is_space(b[i]) {
            i += 1;
        }
        self.pos = i;
        Some(&b[start..i])
    }

    /// Skips to just after the next newline.
    pub(crate) fn skip_line(&mut self) {
        match self.b[self.pos..].iter().position(|&c| c == b'\n') {
            Some(n) => self.pos += n + 1,
            None => self.pos = self.b.len(),
        }
    }

    /// 1-based line number of a byte offset (computed only for error messages).
    pub(crate) fn line_of(&self, at: usize) -> usize {
        // Skip the whitespace before the token so the line is the token's own.
        let mut at = at.min(self.b.len());
        while at < self.b.len() && is_space(self.b[at]) {
            at += 1;
        }
        self.b[..at].iter().filter(|&&c| c == b'\n').count() + 1
    }
}

/// A token made printable for an error message (at most 40 characters).
pub(crate) fn shown(t: &[u8]) -> String {
    let s = String::from_utf8_lossy(&t[..t.len().min(40)]);
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if t.len() > 40 {
        out.push('…');
    }
    out
}
