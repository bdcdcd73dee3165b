//! `parse` must never panic, whatever it is fed, and every problem it reports must point
//! at a real line of the input and name a key.

use locker_config::parse;
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../hub.example.toml");

/// Every problem is on a line that exists (problems about the file as a whole use line 0,
/// which `parse` never produces) and has a key and a message.
fn check_problems_are_well_formed(text: &str) -> Result<(), TestCaseError> {
    if let Err(found) = parse(text, "fuzz.toml") {
        prop_assert!(!found.0.is_empty());
        let lines = text.lines().count().max(1) + 1;
        for p in &found.0 {
            prop_assert!(
                p.line >= 1 && p.line <= lines,
                "line {} of {}: {}",
                p.line,
                lines,
                p
            );
            prop_assert!(!p.key.is_empty(), "{}", p);
            prop_assert!(!p.message.is_empty(), "{}", p);
            prop_assert_eq!(&p.file, "fuzz.toml");
        }
    }
    Ok(())
}

/// Lines that look like config, so mutations reach the readers, not just the TOML parser.
fn toml_ish_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[site]".to_owned()),
        Just("[[bank]]".to_owned()),
        Just("[[bank.unit]]".to_owned()),
        Just("[[bank.unit.sensor]]".to_owned()),
        Just("[mqtt]".to_owned()),
        Just("[policies]".to_owned()),
        "[a-z_]{1,12} = \"[a-zA-Z0-9:./ -]{0,16}\"",
        "[a-z_]{1,12} = -?[0-9]{1,6}",
        "doors = \"[0-9]{1,4}-[0-9]{1,4}\"",
        "compartments = \\[\\{ doors = \"[0-9]{1,3}-[0-9]{1,3}\", size = \"[A-Za-z]{1,4}\" \\}\\]",
        "driver = \\{ kind = \"(mqtt|sim|kerong|modbus|lockboard-8a)\", port = \"/dev/tty[A-Z]{3}0\" \\}",
        "[a-z_]{1,10} = \"[0-9]{1,5}(ms|s|m|h|d|x)\"",
        ".{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in ".*") {
        check_problems_are_well_formed(&text)?;
    }

    #[test]
    fn config_shaped_text_never_panics(lines in prop::collection::vec(toml_ish_line(), 0..24)) {
        check_problems_are_well_formed(&lines.join("\n"))?;
    }

    /// Deleting, duplicating or garbling one line of the real example exercises every
    /// reader with almost-valid input.
    #[test]
    fn mutated_example_never_panics(
        index in 0usize..200,
        action in 0u8..3,
        garbage in ".{0,12}",
    ) {
        let mut lines: Vec<String> = EXAMPLE.lines().map(str::to_owned).collect();
        let i = index % lines.len();
        match action {
            0 => { lines.remove(i); }
            1 => { let copy = lines[i].clone(); lines.insert(i, copy); }
            _ => {
                let cut = lines[i].char_indices().nth(lines[i].chars().count() / 2).map_or(0, |(b, _)| b);
                lines[i].insert_str(cut, &garbage);
            }
        }
        check_problems_are_well_formed(&lines.join("\n"))?;
    }
}
