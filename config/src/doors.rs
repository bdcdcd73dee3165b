//! Door numbers and door ranges, the compact way compartments and driver maps are written.
//!
//! A table that describes doors has exactly one of:
//! - `door = 7`: a single door;
//! - `doors = "1-8"`: an inclusive range (`"7"` alone is a range of one door).
//!
//! Door numbers are what residents see on the doors: 1 to [`MAX_DOOR`].

use crate::raw::{Ctx, Loc, Table};

/// Highest door number accepted. Larger than any bank sold (8A/80 boards top out at 32 x 24).
pub const MAX_DOOR: u16 = 999;

/// Doors listed by one table entry, in order, with where they were written.
pub(crate) struct DoorSpan {
    pub(crate) doors: Vec<u16>,
    pub(crate) loc: Loc,
}

/// Reads `door` or `doors` from `table`; reports a problem and returns `None` if neither,
/// both, or a malformed value is given.
pub(crate) fn read(table: &mut Table, cx: &mut Ctx) -> Option<DoorSpan> {
    let single = table.get("door");
    let range = table.get("doors");
    match (single, range) {
        (Some(_), Some(range)) => {
            cx.error(
                &range.span(),
                range.key(),
                "give either `door = N` or `doors = \"A-B\"`, not both",
            );
            None
        }
        (None, None) => {
            let loc = table.loc();
            cx.error(
                &loc.span,
                &table.key_path("doors"),
                "missing `doors = \"A-B\"` (a range) or `door = N` (one door)",
            );
            None
        }
        (Some(door), None) => {
            let n = door.int(cx, 1..=i64::from(MAX_DOOR))?;
            Some(DoorSpan {
                doors: vec![n as u16],
                loc: door.loc(),
            })
        }
        (None, Some(range)) => {
            let text = range.str(cx)?;
            match parse_range(text) {
                Ok((first, last)) => Some(DoorSpan {
                    doors: (first..=last).collect(),
                    loc: range.loc(),
                }),
                Err(message) => {
                    cx.error(&range.span(), range.key(), message);
                    None
                }
            }
        }
    }
}

/// Parses `"A-B"` or `"A"` into an inclusive range of door numbers.
pub(crate) fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let number = |part: &str| -> Result<u16, String> {
        let part = part.trim();
        match part.parse::<u32>() {
            Ok(n) if (1..=u32::from(MAX_DOOR)).contains(&n) => Ok(n as u16),
            Ok(n) => Err(format!(
                "door {n} is out of range: doors are numbered 1 to {MAX_DOOR}"
            )),
            Err(_) => Err(format!(
                "`{text}` is not a door range: write `\"1-8\"` (first-last) or `\"7\"`"
            )),
        }
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let n = number(text)?;
            (n, n)
        }
    };
    if first > last {
        return Err(format!(
            "door range `{text}` runs backwards: write the lower door first (`{last}-{first}`)"
        ));
    }
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("1-8"), Ok((1, 8)));
        assert_eq!(parse_range(" 9 - 12 "), Ok((9, 12)));
        assert_eq!(parse_range("7"), Ok((7, 7)));
        assert!(parse_range("8-1").unwrap_err().contains("backwards"));
        assert!(parse_range("0-4").unwrap_err().contains("out of range"));
        assert!(parse_range("1-1000").unwrap_err().contains("out of range"));
        assert!(parse_range("a-b").unwrap_err().contains("not a door range"));
        assert!(parse_range("1-2-3")
            .unwrap_err()
            .contains("not a door range"));
        assert!(parse_range("").unwrap_err().contains("not a door range"));
    }
}
