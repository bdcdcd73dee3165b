//! Problems found in a configuration file, and how they are shown.
//!
//! Every problem names the file, the 1-based line, the dotted key (for example
//! `bank[1].compartments[0].size`) and what is wrong, so `check-config` output can be read
//! like compiler errors and jumped to from an editor.

use std::fmt;
use std::ops::Range;

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file name as given to [`crate::load`] or [`crate::parse`].
    pub file: String,
    /// 1-based line the problem is on; 0 when it concerns the file as a whole (unreadable file).
    pub line: usize,
    /// Dotted path of the key, with 0-based array indices: `bank[0].driver.baud`.
    /// `syntax` for TOML syntax errors.
    pub key: String,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file, self.line, self.key, self.message
            )
        }
    }
}

/// Every problem found in one configuration file, ordered by line.
///
/// Displayed as one problem per line: `FILE:LINE: KEY: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Problem>);

impl Diagnostics {
    /// The problems, in file order.
    pub fn problems(&self) -> &[Problem] {
        &self.0
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no problems (a `Diagnostics` returned as an error never is).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Maps byte offsets in the source text to 1-based line numbers.
pub(crate) struct LineIndex {
    /// Byte offset at which each line starts; `starts[0] == 0`.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The 1-based line containing byte `offset` (offsets past the end land on the last line).
    pub(crate) fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(exact) => exact + 1,
            Err(next) => next,
        }
    }

    pub(crate) fn line_of(&self, span: &Range<usize>) -> usize {
        self.line(span.start)
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a plausible
/// typo. Case differences count as half an edit so `Xl` finds `XL` before `L` does.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = match word.chars().count() {
        0..=2 => 1,
        3..=5 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (weighted_distance(word, c), c))
        .filter(|(d, _)| *d <= limit * 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance in half-edits: a case-only difference costs 1, any other edit 2.
fn weighted_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).map(|j| j * 2).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = (i + 1) * 2;
        for (j, cb) in b.iter().enumerate() {
            let substitution = if ca == cb {
                0
            } else if ca.to_lowercase().eq(cb.to_lowercase()) {
                1
            } else {
                2
            };
            cur[j + 1] = (prev[j] + substitution)
                .min(prev[j + 1] + 2)
                .min(cur[j] + 2);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_count_newlines() {
        let index = LineIndex::new("a\nbc\n\nd");
        assert_eq!(index.line(0), 1);
        assert_eq!(index.line(1), 1);
        assert_eq!(index.line(2), 2);
        assert_eq!(index.line(5), 3);
        assert_eq!(index.line(6), 4);
        assert_eq!(index.line(99), 4);
    }

    #[test]
    fn suggestions_prefer_close_words() {
        let keys = ["size", "temperature", "accessible", "doors"];
        assert_eq!(did_you_mean("sise", keys), Some("size"));
        assert_eq!(did_you_mean("acessible", keys), Some("accessible"));
        assert_eq!(did_you_mean("colour", keys), None);
        assert_eq!(did_you_mean("Xl", ["XS", "S", "M", "L", "XL"]), Some("XL"));
    }

    #[test]
    fn display_is_one_problem_per_line() {
        let d = Diagnostics(vec![
            Problem {
                file: "hub.toml".into(),
                line: 3,
                key: "site.id".into(),
                message: "missing".into(),
            },
            Problem {
                file: "hub.toml".into(),
                line: 0,
                key: "file".into(),
                message: "unreadable".into(),
            },
        ]);
        assert_eq!(
            d.to_string(),
            "hub.toml:3: site.id: missing\nhub.toml: file: unreadable"
        );
    }
}
