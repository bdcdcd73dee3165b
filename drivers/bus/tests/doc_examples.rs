//! Every JSON example in `docs/mqtt-api.md` parses as the payload type it illustrates and
//! survives a round trip through it: a field the type does not have, a misspelt name or a value
//! the type refuses fails here, so the reference for people and the one for code cannot drift.
//!
//! A ```json block says which type it shows in the comment before it
//! (`<!-- example: BankState -->`); in ```text blocks, `→ {…}` is a kiosk request, `← {…}` a
//! reply and `← on …/kiosk/update: {…}` a kiosk update.

use locker_bus::{
    AlertEvent, BankState, BankStatus, Command, CommandAck, DoorObservation, KioskReply,
    KioskRequest, KioskUpdateMessage, UnitReading,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/mqtt-api.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The short size names kiosks may send, which the hub writes out in full.
fn same_scalar(example: &Value, back: &Value) -> bool {
    let short = [
        ("xs", "extra_small"),
        ("s", "small"),
        ("m", "medium"),
        ("l", "large"),
        ("xl", "extra_large"),
    ];
    example == back
        || matches!((example, back), (Value::String(a), Value::String(b))
            if short.iter().any(|(s, l)| a == s && b == l))
}

/// Everything the example says is still said after the round trip (the type may add fields
/// the example leaves out, such as `ok` derived from `result`).
fn kept(example: &Value, back: &Value, path: &str) -> Result<(), String> {
    match (example, back) {
        (Value::Object(e), Value::Object(b)) => {
            for (k, v) in e {
                let Some(w) = b.get(k) else {
                    return Err(format!("{path}.{k} is dropped by the type"));
                };
                kept(v, w, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(b)) if e.len() == b.len() => e
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (v, w))| kept(v, w, &format!("{path}[{i}]"))),
        (e, b) if same_scalar(e, b) => Ok(()),
        (e, b) => Err(format!("{path} was {e} and came back as {b}")),
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(example: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(example.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    kept(example, &back, "$")
}

fn check(kind: &str, example: &Value) -> Result<(), String> {
    match kind {
        "BankStatus" => round_trip::<BankStatus>(example),
        "DoorObservation" => round_trip::<DoorObservation>(example),
        "UnitReading" => round_trip::<UnitReading>(example),
        "Command" => round_trip::<Command>(example),
        "CommandAck" => round_trip::<CommandAck>(example),
        "BankState" => round_trip::<BankState>(example),
        "KioskRequest" => round_trip::<KioskRequest>(example),
        "KioskReply" => round_trip::<KioskReply>(example),
        "KioskUpdateMessage" => round_trip::<KioskUpdateMessage>(example),
        "AlertEvent" => round_trip::<AlertEvent>(example),
        other => Err(format!("no payload type named {other}")),
    }
}

/// The JSON values of a text: one or more, separated by whitespace.
fn values(text: &str) -> Result<Vec<Value>, String> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not JSON: {e}"))
}

/// The examples of the document: (line, type, JSON text).
fn examples(doc: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut lines = doc.lines().enumerate().peekable();
    let mut annotated: Option<String> = None;
    while let Some((i, line)) = lines.next() {
        if let Some(kind) = line
            .trim()
            .strip_prefix("<!-- example: ")
            .and_then(|r| r.strip_suffix(" -->"))
        {
            annotated = Some(kind.to_owned());
            continue;
        }
        if line.trim() == "```json" {
            let mut text = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                text.push_str(l);
                text.push('\n');
            }
            let kind = annotated.take().unwrap_or_else(|| {
                format!(
                    "(no <!-- example: … --> before the block at line {})",
                    i + 1
                )
            });
            out.push((i + 1, kind, text));
            continue;
        }
        annotated = None;
        if line.trim() == "```text" {
            // Arrows, each followed by one JSON object that may continue on the next lines.
            let mut current: Option<(usize, String, String)> = None;
            for (j, l) in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                let t = l.trim_start();
                let start = if let Some(rest) = t.strip_prefix("→ ") {
                    Some(("KioskRequest", rest))
                } else if let Some(rest) = t.strip_prefix("← on …/kiosk/update: ") {
                    Some(("KioskUpdateMessage", rest))
                } else {
                    t.strip_prefix("← ").map(|rest| ("KioskReply", rest))
                };
                match start {
                    Some((kind, rest)) if rest.starts_with('{') => {
                        out.extend(current.take());
                        current = Some((j + 1, kind.to_owned(), rest.to_owned()));
                    }
                    _ if t.starts_with('"') => {
                        if let Some((_, _, text)) = current.as_mut() {
                            text.push_str(t);
                        }
                    }
                    _ => out.extend(current.take()),
                }
            }
            out.extend(current);
        }
    }
    out
}

#[test]
fn every_example_parses_as_its_type_and_round_trips() {
    let doc = doc();
    let found = examples(&doc);
    assert!(
        found.len() >= 15,
        "only {} examples found: is the reader still reading docs/mqtt-api.md?",
        found.len()
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for (line, kind, text) in &found {
        match values(text) {
            Ok(vs) => {
                for v in vs {
                    checked += 1;
                    if let Err(e) = check(kind, &v) {
                        problems.push(format!("docs/mqtt-api.md:{line}: {kind}: {e}\n  {v}"));
                    }
                }
            }
            Err(e) => problems.push(format!("docs/mqtt-api.md:{line}: {kind}: {e}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    println!("{checked} examples checked");
}

#[test]
fn the_checker_catches_a_field_the_type_drops_and_a_changed_value() {
    let dropped: Value = serde_json::json!({"open": true, "occupied": false, "colour": "red"});
    assert!(check("DoorObservation", &dropped)
        .unwrap_err()
        .contains("colour"));
    let misspelt: Value = serde_json::json!({"event": "raised", "alert": "a", "kind": "door_ajar",
        "bank": "A", "door": 1, "mesage": "x"});
    assert!(check("AlertEvent", &misspelt).is_err());
    assert!(check(
        "KioskRequest",
        &serde_json::json!({"request_id": "k", "type": "staff_open_bank",
        "bank": "A", "reason": "x"})
    )
    .is_err());
}
