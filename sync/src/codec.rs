//! Fact fields <-> Automerge values. A document is a map keyed by fact id; each value is a map of
//! the fact's fields, written once and never rewritten. This is the only module that knows the
//! raw layout; everything else goes through `Record` and `serde_json::Value`.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, ScalarValueRef, ValueRef, ROOT};
use serde_json::{Map, Number, Value};

/// Writes one fact under its id. The caller has checked the id is not present yet.
///
/// The fact's whole tree goes in as one batch (`batch_create_object`): two splices of the
/// document's op set instead of one per field, with the same content as writing each field in
/// turn (a map per object, a scalar per field; written breadth-first, keys in order, so op ids
/// differ, what the document reads does not). A bulk step (a rent roll of 100,000
/// residents) writes ten times faster for it.
pub(crate) fn put_fact(
    doc: &mut AutoCommit,
    id: &str,
    fields: &Map<String, Value>,
) -> Result<(), automerge::AutomergeError> {
    doc.batch_create_object(ROOT, id, &hydrate_map(fields), false)?;
    Ok(())
}

fn hydrate_map(fields: &Map<String, Value>) -> automerge::hydrate::Value {
    let map: std::collections::HashMap<String, automerge::hydrate::Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), hydrate(v)))
        .collect();
    automerge::hydrate::Value::Map(map.into())
}

fn hydrate(value: &Value) -> automerge::hydrate::Value {
    match value {
        Value::Object(inner) => hydrate_map(inner),
        Value::Array(items) => items.iter().map(hydrate).collect::<Vec<_>>().into(),
        scalar => automerge::hydrate::Value::Scalar(to_scalar(scalar)),
    }
}

/// Strings are stored as scalar strings (not Text objects): fact fields are never edited, and
/// scalars are cheaper to store and load.
fn to_scalar(value: &Value) -> ScalarValue {
    match value {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                ScalarValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                ScalarValue::Uint(u)
            } else {
                ScalarValue::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => ScalarValue::Str(s.as_str().into()),
        // Objects and arrays are written as objects by the callers.
        Value::Object(_) | Value::Array(_) => ScalarValue::Null,
    }
}

/// Every entry of the document's root map, in key (= id = time) order, one at a time (so a
/// caller that converts each value right away never holds the whole document as JSON). An entry
/// that is not a map of fields (possible only if another writer broke the layout) comes back as
/// an error string for that id instead of being silently dropped.
pub(crate) fn for_each_fact(doc: &AutoCommit, mut f: impl FnMut(&str, Result<Value, String>)) {
    for item in doc.map_range(ROOT, ..) {
        let id = item.id();
        let value = match item.value {
            ValueRef::Object(ObjType::Map) => read_map(doc, &id),
            other => Err(format!("expected a map of fields, found {other:?}")),
        };
        f(&item.key, value);
    }
}

/// One fact by id, if present.
pub(crate) fn read_one(doc: &AutoCommit, id: &str) -> Option<Result<Value, String>> {
    match doc.get(ROOT, id) {
        Ok(Some((automerge::Value::Object(ObjType::Map), obj))) => Some(read_map(doc, &obj)),
        Ok(Some((other, _))) => Some(Err(format!("expected a map of fields, found {other:?}"))),
        Ok(None) => None,
        Err(e) => Some(Err(e.to_string())),
    }
}

pub(crate) fn has_fact(doc: &AutoCommit, id: &str) -> bool {
    matches!(doc.get(ROOT, id), Ok(Some(_)))
}

fn read_map(doc: &AutoCommit, obj: &ObjId) -> Result<Value, String> {
    let mut out = Map::new();
    for item in doc.map_range(obj, ..) {
        let id = item.id();
        let value =
            read_value(doc, item.value, &id).map_err(|e| format!("field {:?}: {e}", item.key))?;
        out.insert(item.key.to_string(), value);
    }
    Ok(Value::Object(out))
}

fn read_list(doc: &AutoCommit, obj: &ObjId) -> Result<Value, String> {
    doc.list_range(obj, ..)
        .map(|item| {
            let id = item.id();
            read_value(doc, item.value, &id).map_err(|e| format!("[{}]: {e}", item.index))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn read_value(doc: &AutoCommit, value: ValueRef<'_>, id: &ObjId) -> Result<Value, String> {
    match value {
        ValueRef::Object(ObjType::Map) => read_map(doc, id),
        ValueRef::Object(ObjType::List) => read_list(doc, id),
        ValueRef::Object(ObjType::Text) => {
            doc.text(id).map(Value::String).map_err(|e| e.to_string())
        }
        ValueRef::Object(other) => Err(format!("unsupported object type {other:?}")),
        ValueRef::Scalar(s) => match s {
            ScalarValueRef::Null => Ok(Value::Null),
            ScalarValueRef::Boolean(b) => Ok(Value::Bool(b)),
            ScalarValueRef::Int(i) | ScalarValueRef::Counter(i) | ScalarValueRef::Timestamp(i) => {
                Ok(Value::Number(i.into()))
            }
            ScalarValueRef::Uint(u) => Ok(Value::Number(u.into())),
            ScalarValueRef::F64(f) => Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| format!("non-finite number {f}")),
            ScalarValueRef::Str(s) => Ok(Value::String(s.into_owned())),
            ScalarValueRef::Bytes(_) => Err("unsupported value type: bytes".into()),
            ScalarValueRef::Unknown { type_code, .. } => {
                Err(format!("unsupported value type code {type_code}"))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_all(doc: &AutoCommit) -> Vec<(String, Result<Value, String>)> {
        let mut out = Vec::new();
        for_each_fact(doc, |id, value| out.push((id.to_string(), value)));
        out
    }

    #[test]
    fn json_round_trips_through_automerge() {
        let fact = json!({
            "id": "0001796083199999-hub-a-7",
            "at_ms": 1_796_083_199_999u64,
            "big": u64::MAX,
            "neg": -5,
            "ratio": 0.25,
            "flag": true,
            "none": null,
            "kind": {"type": "delivered", "doors": [1, 2, {"n": "x"}], "empty": []},
        });
        let mut doc = AutoCommit::new();
        let id = "0001796083199999-hub-a-7";
        put_fact(&mut doc, id, fact.as_object().unwrap()).unwrap();
        // Through a save/load cycle, as on disk.
        let loaded = AutoCommit::load(&doc.save()).unwrap();
        assert_eq!(read_one(&loaded, id), Some(Ok(fact.clone())));
        let all = read_all(&loaded);
        assert_eq!(all, vec![(id.to_string(), Ok(fact))]);
        assert!(has_fact(&loaded, id));
        assert!(!has_fact(&loaded, "nope"));
    }

    #[test]
    fn a_non_map_entry_is_reported_not_dropped() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "x-1", "just a string").unwrap();
        let all = read_all(&doc);
        assert_eq!(all.len(), 1);
        assert!(all[0].1.as_ref().unwrap_err().contains("expected a map"));
    }
}
