//! Human durations as written in the config file: `500ms`, `90s`, `15m`, `24h`, `5d`,
//! or several parts added together: `1h30m`, `2d 12h`.
//!
//! Small on purpose: only whole numbers and the five units a locker site needs, so that what
//! the file says is exactly what the hub does (no months, no fractions, no locale).

use std::time::Duration;

/// Units accepted after a number, longest first so `ms` is not read as `m` + `s`.
const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses a human duration. The error says what is wrong with the text, without the key
/// (the caller adds where it was).
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty duration: write a number and a unit, e.g. `90s`, `24h`, `5d`".into());
    }
    let mut rest = trimmed;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration: expected a whole number at `{rest}` (units: ms, s, m, h, d)"
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is too long a duration"))?;
        rest = rest[digits..].trim_start();
        if rest.starts_with(['.', ',']) {
            return Err(format!(
                "`{text}`: whole numbers only; use a smaller unit (`90m` rather than `1.5h`)"
            ));
        }
        // A unit must end the word: `5days` is an unknown unit, not `5d` + garbage.
        let unit_here = |unit: &str| {
            rest.starts_with(unit)
                && !rest[unit.len()..].starts_with(|c: char| c.is_ascii_alphabetic())
        };
        let Some((unit, scale)) = UNITS.iter().find(|(unit, _)| unit_here(unit)) else {
            let found: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
            return Err(if found.is_empty() {
                format!(
                    "`{text}` has a number without a unit: write e.g. `{number}s` or `{number}ms`"
                )
            } else {
                format!("`{text}`: unknown unit `{found}` (use ms, s, m, h or d)")
            });
        };
        total_ms = number
            .checked_mul(*scale)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
        rest = rest[unit.len()..].trim_start();
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way the file writes it, largest units first (`1d12h`, `500ms`).
pub(crate) fn format(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, scale) in UNITS.iter().rev() {
        let scale = u128::from(*scale);
        if ms >= scale {
            out.push_str(&format!("{}{unit}", ms / scale));
            ms %= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("5d"), Ok(Duration::from_secs(5 * 86_400)));
        assert_eq!(parse(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn parts_add_up() {
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("2d 12h"), Ok(Duration::from_secs(60 * 3_600)));
        assert_eq!(parse("1s500ms"), Ok(Duration::from_millis(1_500)));
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("90").unwrap_err().contains("without a unit"));
        assert!(parse("5 days").unwrap_err().contains("unknown unit `days`"));
        assert!(parse("5days").unwrap_err().contains("unknown unit `days`"));
        assert!(parse("3 min").unwrap_err().contains("unknown unit `min`"));
        assert_eq!(parse("5 d"), Ok(Duration::from_secs(5 * 86_400)));
        assert!(parse("h").unwrap_err().contains("expected a whole number"));
        assert!(parse("1.5h").unwrap_err().contains("whole numbers only"));
        assert!(parse("-5s")
            .unwrap_err()
            .contains("expected a whole number"));
        assert!(parse("99999999999999999999s")
            .unwrap_err()
            .contains("too long"));
        assert!(parse("999999999999999d").unwrap_err().contains("too long"));
    }

    #[test]
    fn format_round_trips() {
        for text in ["500ms", "90s", "1m30s", "1d12h", "5d", "0s"] {
            let d = parse(text).unwrap();
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(Duration::from_secs(36 * 3_600)), "1d12h");
    }
}
