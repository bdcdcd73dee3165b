use proptest::prelude::*;

use super::*;

fn opts(preset: Preset) -> Options {
    Options {
        columns: preset.columns(),
        country_code: Some("1".into()),
        ..Options::default()
    }
}

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/samples/{name}.csv", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn summary(roll: &Roll) -> Vec<(u64, Option<String>, String, String)> {
    roll.rows
        .iter()
        .map(|r| (r.line, r.resident.clone(), r.unit.clone(), r.name.clone()))
        .collect()
}

#[test]
fn yardi_rent_roll_with_titles_a_two_row_header_charge_lines_and_a_summary() {
    let roll = read(&sample("yardi"), &opts(Preset::Yardi)).expect("reads");
    assert_eq!(roll.header_line, 5);
    assert_eq!(
        summary(&roll),
        vec![
            (8, Some("t0001001".into()), "101".into(), "Doe, Jane".into()),
            (
                10,
                Some("t0001002".into()),
                "102".into(),
                "Roe, Richard".into()
            ),
            (
                12,
                Some("t0001004".into()),
                "104".into(),
                "García, José".into()
            ),
        ]
    );
    let jane = &roll.rows[0].tenancy;
    assert_eq!(jane.move_in.as_deref(), Some("2025-03-01"));
    assert_eq!(jane.lease_end.as_deref(), Some("2027-02-28"));
    assert_eq!(roll.rows[1].tenancy.move_out.as_deref(), Some("2026-12-31"));
    let reasons: Vec<(u64, &str)> = roll
        .skipped
        .iter()
        .map(|s| (s.line, s.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (11, "no resident (VACANT)"),
            (15, "a future resident or applicant"),
        ]
    );
    let stop = roll.stopped_at.expect("stops at the summary");
    assert_eq!(stop.line, 17);
}

#[test]
fn onesite_rent_roll_skips_vacant_and_leased_but_not_moved_in_units() {
    let roll = read(&sample("onesite"), &opts(Preset::Onesite)).expect("reads");
    assert_eq!(roll.header_line, 6);
    let ids: Vec<_> = roll.rows.iter().map(|r| r.resident.as_deref()).collect();
    assert_eq!(ids, vec![Some("5001"), Some("5002"), Some("5005")]);
    assert_eq!(roll.rows[1].tenancy.move_out.as_deref(), Some("2026-12-15"));
    assert_eq!(roll.skipped.len(), 2, "{:?}", roll.skipped);
}

#[test]
fn entrata_rent_roll_has_no_ids_and_a_future_section() {
    let roll = read(&sample("entrata"), &opts(Preset::Entrata)).expect("reads");
    assert_eq!(
        summary(&roll),
        vec![
            (3, None, "1-101".into(), "Brown, Sam".into()),
            (5, None, "1-102".into(), "White, Eve".into()),
        ]
    );
    assert_eq!(roll.rows[1].tenancy.move_out.as_deref(), Some("2026-12-20"));
    assert!(roll.stopped_at.is_some());
}

#[test]
fn resman_rent_roll_reads_excel_serial_dates_and_stops_at_total_charges() {
    let roll = read(&sample("resman"), &opts(Preset::ResMan)).expect("reads");
    assert_eq!(roll.header_line, 8);
    assert_eq!(
        summary(&roll),
        vec![
            (9, None, "301".into(), "Ann Taylor".into()),
            (10, None, "302".into(), "Bo Chen".into()),
        ]
    );
    assert_eq!(roll.rows[0].tenancy.move_in.as_deref(), Some("2025-03-01"));
    assert_eq!(roll.stopped_at.map(|s| s.line), Some(13));
}

#[test]
fn rent_manager_export_normalizes_phones_and_skips_past_tenants() {
    let roll = read(&sample("rent_manager"), &opts(Preset::RentManager)).expect("reads");
    let phones: Vec<_> = roll.rows.iter().map(|r| r.phone.as_deref()).collect();
    assert_eq!(phones, vec![Some("+15552010001"), Some("+15552010002")]);
    assert_eq!(roll.rows[0].email.as_deref(), Some("omar@example.com"));
    assert_eq!(roll.skipped[0].reason, "status \"Past\"");
}

#[test]
fn a_semicolon_file_from_a_european_excel_is_read() {
    let text = "Tenant ID;Name;Unit;Email\nT-1;Anna Berg;7;anna@example.com\n";
    let roll = read(text.as_bytes(), &opts(Preset::RentManager)).expect("reads");
    assert_eq!(roll.delimiter, ';');
    assert_eq!(roll.rows[0].email.as_deref(), Some("anna@example.com"));
}

#[test]
fn a_file_without_the_header_says_which_columns_it_looked_for() {
    let err = read(b"Apt,Person\n1,Ann\n", &opts(Preset::Yardi)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RollError::NoHeader { .. }), "{msg}");
    assert!(
        msg.contains("\"Unit\"") && msg.contains("\"Name\""),
        "{msg}"
    );
    assert!(msg.contains("Apt,Person"), "{msg}");
}

#[test]
fn windows_1252_is_refused_with_its_line_unless_chosen() {
    // "García" in Windows-1252: 0xED for í.
    let mut bytes = b"Tenant ID,Name,Unit\nT-1,Ann,1\nT-2,Garc".to_vec();
    bytes.push(0xED);
    bytes.extend_from_slice(b"a,2\n");
    let err = read(&bytes, &opts(Preset::RentManager)).unwrap_err();
    assert_eq!(
        err,
        RollError::NotUtf8 {
            line: 3,
            byte: 0xED
        }
    );
    assert!(err.to_string().contains("Windows-1252"));
    let mut o = opts(Preset::RentManager);
    o.encoding = Encoding::Windows1252;
    let roll = read(&bytes, &o).expect("reads");
    assert_eq!(roll.rows[1].name, "García");
}

#[test]
fn utf16_with_its_mark_and_utf8_with_a_bom_are_read() {
    let text = "Tenant ID,Name,Unit\nT-1,Zoë,1\n";
    let mut utf16 = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(text.as_bytes());
    for bytes in [utf16, bom] {
        let roll = read(&bytes, &opts(Preset::RentManager)).expect("reads");
        assert_eq!(roll.rows[0].name, "Zoë");
        assert_eq!(roll.rows[0].resident.as_deref(), Some("T-1"));
    }
}

#[test]
fn empty_and_oversized_files_are_refused() {
    assert_eq!(read(b"", &opts(Preset::Yardi)), Err(RollError::Empty));
    assert_eq!(read(b" \n\n", &opts(Preset::Yardi)), Err(RollError::Empty));
    let big = vec![b'a'; MAX_BYTES + 1];
    assert!(matches!(
        read(&big, &opts(Preset::Yardi)),
        Err(RollError::TooBig { .. })
    ));
}

#[test]
fn first_and_last_names_are_joined() {
    let text = "Unit,Resident 1 First Name,Resident 1 Last Name\n5,Ann,Lee\n";
    let roll = read(text.as_bytes(), &opts(Preset::ResMan)).expect("reads");
    assert_eq!(roll.rows[0].name, "Ann Lee");
}

#[test]
fn dates_in_every_shape_a_spreadsheet_writes() {
    let m = DateOrder::MonthFirst;
    assert_eq!(date("3/4/2025", m), "2025-03-04");
    assert_eq!(date("3/4/2025", DateOrder::DayFirst), "2025-04-03");
    assert_eq!(date("03-04-25", m), "2025-03-04");
    assert_eq!(date("2025-03-04", m), "2025-03-04");
    assert_eq!(date("2025/3/4", m), "2025-03-04");
    assert_eq!(date("3/28/2025 12:00:00 AM", m), "2025-03-28");
    assert_eq!(date("45717", m), "2025-03-01");
    assert_eq!(date("1/1/99", m), "1999-01-01");
    // Not read: passed on for the core to refuse with the line.
    assert_eq!(date("next week", m), "next week");
    assert_eq!(date("123456", m), "123456");
}

#[test]
fn phones_in_local_forms_get_the_country_code() {
    assert_eq!(phone("(555) 123-4567", Some("1")), "+15551234567");
    assert_eq!(phone("1-555-123-4567", Some("1")), "+15551234567");
    assert_eq!(phone("+44 20 7946 0958", Some("1")), "+442079460958");
    assert_eq!(phone("0044 20 7946 0958", None), "+442079460958");
    assert_eq!(phone("020 7946 0958", Some("44")), "+442079460958");
    assert_eq!(phone("555-1234", None), "555-1234");
    assert_eq!(phone("555 1234 x12", Some("1")), "555 1234 x12");
}

proptest! {
    /// Whatever bytes arrive, reading ends in rows or an error, never a panic, and every row
    /// names a line of the file.
    #[test]
    fn any_bytes_read_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut with_header = b"Unit,Name\n".to_vec();
        with_header.extend_from_slice(&bytes);
        for b in [bytes.clone(), with_header] {
            if let Ok(roll) = read(&b, &opts(Preset::Yardi)) {
                let lines = b.iter().filter(|c| **c == b'\n' || **c == b'\r').count() as u64 + 1;
                for row in &roll.rows {
                    prop_assert!(row.line >= 1 && row.line <= lines);
                }
            }
        }
    }

    /// Any text in a cell comes back as written (trimmed), through quoting.
    #[test]
    fn cells_survive_quoting(name in "[^\u{0}\r\n]{1,40}") {
        prop_assume!(!name.trim().is_empty());
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let text = format!("Tenant ID,Name,Unit\nT-1,{quoted},9\n");
        let roll = read(text.as_bytes(), &opts(Preset::RentManager)).expect("reads");
        // A name that reads like a placeholder or a total is skipped, by design.
        if let Some(row) = roll.rows.first() {
            prop_assert_eq!(&row.name, name.trim());
        } else {
            prop_assert_eq!(roll.skipped.len(), 1);
        }
    }
}

#[test]
fn names_that_begin_like_a_placeholder_are_residents() {
    let text = "Tenant ID,Name,Unit,Status\n\
                T-1,\"Downs, Mary\",1,Current\n\
                T-2,Vacanti Paolo,2,Current - Past Due\n\
                T-3,Model Unit,3,\n\
                MODEL,,4,\n\
                T-5,Admin Ada,5,Notice\n";
    let roll = read(text.as_bytes(), &opts(Preset::RentManager)).expect("reads");
    let names: Vec<&str> = roll.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["Downs, Mary", "Vacanti Paolo", "Admin Ada"]);
    assert_eq!(roll.skipped.len(), 2, "{:?}", roll.skipped);
}

#[test]
fn a_lone_amount_does_not_end_the_future_section() {
    let text = "Unit,Resident,Name\n\
                Current Residents,,\n\
                1,t1,Ann Lee\n\
                Future Residents/Applicants,,\n\
                2,t2,Bo Chen\n\
                1900.00,,\n\
                3,t3,Cy Doe\n";
    let roll = read(text.as_bytes(), &opts(Preset::Yardi)).expect("reads");
    let ids: Vec<_> = roll.rows.iter().map(|r| r.resident.as_deref()).collect();
    assert_eq!(ids, vec![Some("t1")]);
}

#[test]
fn an_export_of_two_properties_is_read_past_the_first_summary() {
    let text = "Unit,Resident,Name\n\
                1,t1,Ann Lee\n\
                Summary Groups,,\n\
                Current,,2\n\
                Unit,Resident,Name\n\
                2,t2,Bo Chen\n\
                Total Charges,,\n\
                Rent,,3000\n";
    let roll = read(text.as_bytes(), &opts(Preset::Yardi)).expect("reads");
    let ids: Vec<_> = roll.rows.iter().map(|r| r.resident.as_deref()).collect();
    assert_eq!(ids, vec![Some("t1"), Some("t2")]);
    assert_eq!(roll.stopped_at.map(|s| s.line), Some(3));
}

#[test]
fn encodings_are_named_as_the_api_and_the_form_write_them() {
    let e: Encoding = serde_json::from_str("\"windows-1252\"").expect("windows-1252");
    assert_eq!(e, Encoding::Windows1252);
    let e: Encoding = serde_json::from_str("\"utf-8\"").expect("utf-8");
    assert_eq!(e, Encoding::Utf8);
}
