//! Reading the spanned TOML tree with problems collected instead of thrown.
//!
//! `toml`'s `DeTable` keeps the byte span of every key and value. The readers here wrap it
//! so each section of the config can be read top-down with typed getters; a getter that
//! finds a wrong value records a [`Problem`] (line, dotted key, message) and returns `None`,
//! and the caller carries on, so one pass reports every mistake in the file. A table
//! remembers which keys were asked for; whatever is left over when it is finished is an
//! unknown key, reported with a "did you mean" from the keys that were asked for.

use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diagnostics::{did_you_mean, Diagnostics, LineIndex, Problem};
use crate::duration;

/// Collects problems while a file is read, and knows how to turn spans into lines.
pub(crate) struct Ctx {
    file: String,
    lines: LineIndex,
    /// Relative paths in the file are relative to the directory the file is in.
    base_dir: PathBuf,
    problems: Vec<Problem>,
}

impl Ctx {
    pub(crate) fn new(text: &str, file_name: &str) -> Self {
        let base_dir = Path::new(file_name)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Ctx {
            file: file_name.to_owned(),
            lines: LineIndex::new(text),
            base_dir,
            problems: Vec::new(),
        }
    }

    /// Records a problem at the line where `span` starts.
    pub(crate) fn error(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: self.lines.line_of(span),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// Records a problem at a place remembered earlier.
    pub(crate) fn error_at(&mut self, loc: &Loc, message: impl Into<String>) {
        self.error(&loc.span, &loc.key, message);
    }

    pub(crate) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// A path from the file, made absolute against the file's directory.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }

    /// Every problem, in file order (problems on one line keep the order they were found in).
    pub(crate) fn into_diagnostics(self) -> Diagnostics {
        let mut problems = self.problems;
        problems.sort_by_key(|p| p.line);
        Diagnostics(problems)
    }
}

/// Where a value was in the file, kept so checks that run after reading can point at it.
#[derive(Debug, Clone)]
pub(crate) struct Loc {
    pub(crate) span: Range<usize>,
    pub(crate) key: String,
}

/// One value from the file, with its dotted key.
pub(crate) struct Item<'a, 'i> {
    node: &'a Spanned<DeValue<'i>>,
    key: String,
}

impl<'a, 'i> Item<'a, 'i> {
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn span(&self) -> Range<usize> {
        self.node.span()
    }

    pub(crate) fn loc(&self) -> Loc {
        Loc {
            span: self.node.span(),
            key: self.key.clone(),
        }
    }

    fn mismatch(&self, cx: &mut Ctx, expected: &str) {
        let found = match self.node.get_ref() {
            DeValue::String(_) => "a string",
            DeValue::Integer(_) => "an integer",
            DeValue::Float(_) => "a number with a fraction",
            DeValue::Boolean(_) => "true/false",
            DeValue::Datetime(_) => "a date/time",
            DeValue::Array(_) => "a list",
            DeValue::Table(_) => "a table",
        };
        cx.error(
            &self.node.span(),
            &self.key,
            format!("expected {expected}, found {found}"),
        );
    }

    /// The string under `key` if this is a table holding one; never reports anything.
    pub(crate) fn peek_str(&self, key: &str) -> Option<String> {
        match self.node.get_ref() {
            DeValue::Table(t) => match t.get(key).map(|v| v.get_ref()) {
                Some(DeValue::String(s)) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The string, or a problem if the value is not a string.
    pub(crate) fn str(&self, cx: &mut Ctx) -> Option<&'a str> {
        match self.node.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.mismatch(cx, "a string");
                None
            }
        }
    }

    /// The integer, checked against `range` (the message names the range).
    pub(crate) fn int(&self, cx: &mut Ctx, range: RangeInclusive<i64>) -> Option<i64> {
        let DeValue::Integer(i) = self.node.get_ref() else {
            self.mismatch(cx, "a whole number");
            return None;
        };
        match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                cx.error(
                    &self.node.span(),
                    &self.key,
                    format!(
                        "{i} is out of range: expected {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A number; integers are accepted where a fraction is allowed (`min_c = 2`).
    pub(crate) fn float(&self, cx: &mut Ctx) -> Option<f64> {
        let parsed = match self.node.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => {
                self.mismatch(cx, "a number");
                return None;
            }
        };
        match parsed {
            Some(f) if f.is_finite() => Some(f),
            _ => {
                cx.error(&self.node.span(), &self.key, "expected a finite number");
                None
            }
        }
    }

    pub(crate) fn bool(&self, cx: &mut Ctx) -> Option<bool> {
        match self.node.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.mismatch(cx, "true or false");
                None
            }
        }
    }

    pub(crate) fn table(&self, cx: &mut Ctx) -> Option<Table<'a, 'i>> {
        match self.node.get_ref() {
            DeValue::Table(t) => Some(Table {
                table: t,
                span: self.node.span(),
                path: self.key.clone(),
                known: Vec::new(),
            }),
            _ => {
                self.mismatch(cx, "a table");
                None
            }
        }
    }

    /// The elements of a list, each keyed `key[i]`.
    pub(crate) fn array(&self, cx: &mut Ctx) -> Option<Vec<Item<'a, 'i>>> {
        match self.node.get_ref() {
            DeValue::Array(a) => Some(
                a.iter()
                    .enumerate()
                    .map(|(i, node)| Item {
                        node,
                        key: format!("{}[{i}]", self.key),
                    })
                    .collect(),
            ),
            _ => {
                self.mismatch(cx, "a list");
                None
            }
        }
    }

    /// Like [`Item::array`], for sections written `[[name]]`: a single `[name]` table gets
    /// a message saying how to write it.
    pub(crate) fn array_of_tables(&self, cx: &mut Ctx, name: &str) -> Option<Vec<Item<'a, 'i>>> {
        if let DeValue::Table(_) = self.node.get_ref() {
            cx.error(
                &self.node.span(),
                &self.key,
                format!("write each entry as `[[{name}]]` (a list of tables), not `[{name}]`"),
            );
            return None;
        }
        self.array(cx)
    }

    /// A human duration string (`90s`, `24h`, `5d`).
    pub(crate) fn duration(&self, cx: &mut Ctx) -> Option<Duration> {
        let text = self.str(cx)?;
        match duration::parse(text) {
            Ok(d) => Some(d),
            Err(message) => {
                cx.error(&self.node.span(), &self.key, message);
                None
            }
        }
    }

    /// One of a fixed set of names (case-insensitive), with "did you mean" when misspelt.
    pub(crate) fn choice<T: Copy>(
        &self,
        cx: &mut Ctx,
        what: &str,
        options: &[(&'static str, T)],
    ) -> Option<T> {
        let text = self.str(cx)?;
        if let Some((_, value)) = options
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
        {
            return Some(*value);
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        let hint = match did_you_mean(text, names.iter().copied()) {
            Some(close) => format!("; did you mean `{close}`?"),
            None => String::new(),
        };
        cx.error(
            &self.node.span(),
            &self.key,
            format!(
                "unknown {what} `{text}`{hint} (expected one of: {})",
                names.join(", ")
            ),
        );
        None
    }

    /// A non-empty path, made absolute against the config file's directory.
    pub(crate) fn path(&self, cx: &mut Ctx) -> Option<PathBuf> {
        let text = self.str(cx)?;
        if text.trim().is_empty() {
            cx.error(&self.node.span(), &self.key, "path must not be empty");
            return None;
        }
        Some(cx.resolve(text))
    }

    /// A path to a file the hub must be able to read at start-up (TLS certificates, keys).
    pub(crate) fn readable_file(&self, cx: &mut Ctx) -> Option<PathBuf> {
        let path = self.path(cx)?;
        match std::fs::File::open(&path) {
            Ok(file) => match file.metadata() {
                Ok(meta) if meta.is_file() => Some(path),
                Ok(_) => {
                    cx.error(
                        &self.node.span(),
                        &self.key,
                        format!("`{}` is not a regular file", path.display()),
                    );
                    None
                }
                Err(e) => {
                    cx.error(
                        &self.node.span(),
                        &self.key,
                        format!("cannot read `{}`: {e}", path.display()),
                    );
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cx.error(
                    &self.node.span(),
                    &self.key,
                    format!("file `{}` does not exist", path.display()),
                );
                None
            }
            Err(e) => {
                cx.error(
                    &self.node.span(),
                    &self.key,
                    format!("cannot read `{}`: {e}", path.display()),
                );
                None
            }
        }
    }
}

/// A TOML table being read. Keys asked for are remembered; [`Table::finish`] reports the rest.
pub(crate) struct Table<'a, 'i> {
    table: &'a DeTable<'i>,
    span: Range<usize>,
    path: String,
    known: Vec<&'static str>,
}

impl<'a, 'i> Table<'a, 'i> {
    /// The document's top-level table.
    pub(crate) fn root(doc: &'a Spanned<DeTable<'i>>) -> Self {
        Table {
            table: doc.get_ref(),
            span: doc.span(),
            path: String::new(),
            known: Vec::new(),
        }
    }

    /// Dotted path of a key in this table.
    pub(crate) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The table itself (its header line, or the line of its inline `{`).
    pub(crate) fn loc(&self) -> Loc {
        Loc {
            span: self.span.clone(),
            key: self.path.clone(),
        }
    }

    /// The value of `key`, if present. Marks the key as known either way.
    pub(crate) fn get(&mut self, key: &'static str) -> Option<Item<'a, 'i>> {
        self.known.push(key);
        self.table.get(key).map(|node| Item {
            node,
            key: self.key_path(key),
        })
    }

    /// Like [`Table::get`], reporting a problem if the key is missing.
    pub(crate) fn require(&mut self, cx: &mut Ctx, key: &'static str) -> Option<Item<'a, 'i>> {
        let item = self.get(key);
        if item.is_none() {
            let what = if self.path.is_empty() {
                format!("missing required key `{key}`")
            } else {
                format!("missing required key `{key}` in `{}`", self.path)
            };
            cx.error(&self.span, &self.key_path(key), what);
        }
        item
    }

    /// Where `key` is, without marking it as read (so it is still reported if unknown).
    pub(crate) fn peek(&self, key: &str) -> Option<Loc> {
        self.table.get(key).map(|node| Loc {
            span: node.span(),
            key: self.key_path(key),
        })
    }

    /// An optional path: `Some(None)` when the key is absent, `None` when it is bad (reported).
    pub(crate) fn opt_path(&mut self, cx: &mut Ctx, key: &'static str) -> Option<Option<PathBuf>> {
        match self.get(key) {
            Some(f) => f.path(cx).map(Some),
            None => Some(None),
        }
    }

    /// An optional file that must be readable, as [`Table::opt_path`].
    pub(crate) fn opt_readable_file(
        &mut self,
        cx: &mut Ctx,
        key: &'static str,
    ) -> Option<Option<PathBuf>> {
        match self.get(key) {
            Some(f) => f.readable_file(cx).map(Some),
            None => Some(None),
        }
    }

    pub(crate) fn opt_string(&mut self, cx: &mut Ctx, key: &'static str) -> Option<String> {
        self.get(key)?.str(cx).map(str::to_owned)
    }

    pub(crate) fn bool_or(&mut self, cx: &mut Ctx, key: &'static str, default: bool) -> bool {
        self.get(key).and_then(|v| v.bool(cx)).unwrap_or(default)
    }

    /// A duration that must lie within `min..=max` (both shown in the message when it does not).
    pub(crate) fn duration_within(
        &mut self,
        cx: &mut Ctx,
        key: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let Some(item) = self.get(key) else {
            return default;
        };
        match item.duration(cx) {
            Some(d) if d >= min && d <= max => d,
            Some(d) => {
                cx.error(
                    &item.span(),
                    item.key(),
                    format!(
                        "{} is out of range: expected {} to {}",
                        duration::format(d),
                        duration::format(min),
                        duration::format(max)
                    ),
                );
                default
            }
            None => default,
        }
    }

    pub(crate) fn int_or(
        &mut self,
        cx: &mut Ctx,
        key: &'static str,
        range: RangeInclusive<i64>,
        default: i64,
    ) -> i64 {
        self.get(key)
            .and_then(|v| v.int(cx, range))
            .unwrap_or(default)
    }

    /// Every entry, for tables whose keys are names chosen by the user (register maps);
    /// such a table has no unknown keys, so it is consumed here instead of finished.
    pub(crate) fn entries(self) -> Vec<(&'a str, Item<'a, 'i>)> {
        self.table
            .iter()
            .map(|(key, node)| {
                let name: &'a str = key.get_ref();
                (
                    name,
                    Item {
                        node,
                        key: self.key_path(name),
                    },
                )
            })
            .collect()
    }

    /// Reports every key that no reader asked for, with a suggestion where one is close.
    pub(crate) fn finish(self, cx: &mut Ctx) {
        for (key, _) in self.table.iter() {
            let name: &str = key.get_ref();
            if self.known.contains(&name) {
                continue;
            }
            let message = match did_you_mean(name, self.known.iter().copied()) {
                Some(close) => format!("unknown key `{name}`; did you mean `{close}`?"),
                None => {
                    let mut known = self.known.clone();
                    known.sort_unstable();
                    known.dedup();
                    format!(
                        "unknown key `{name}` (known keys here: {})",
                        known.join(", ")
                    )
                }
            };
            cx.error(&key.span(), &self.key_path(name), message);
        }
    }
}

/// An identifier that appears in MQTT topics: `[A-Za-z0-9_-]+`, at most 64 characters.
pub(crate) fn check_topic_id(item: &Item, cx: &mut Ctx) -> Option<String> {
    let id = item.str(cx)?;
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Some(id.to_owned())
    } else {
        cx.error(
            &item.span(),
            item.key(),
            format!("`{id}` must be 1-64 letters, digits, '_' or '-' (it is used in MQTT topics)"),
        );
        None
    }
}
