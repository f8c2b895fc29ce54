//! Lenient readers for the AP's fields: a value of the wrong type reads as
//! absent.

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A non-empty string, or a number as its text; anything else is absent.
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        String(String),
        Number(serde_json::Number),
        Other(IgnoredAny),
    }
    Ok(match Text::deserialize(d)? {
        Text::String(s) if !s.is_empty() => Some(s),
        Text::Number(n) => Some(n.to_string()),
        Text::String(_) | Text::Other(_) => None,
    })
}

/// A JSON object read as a `T` (serde would also read a struct from an
/// array); anything else is absent.
pub(crate) fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(match Value::deserialize(d)? {
        Value::Object(map) => from_map(map),
        _ => None,
    })
}

/// A list of which only the objects readable as a `T` are kept; anything
/// but a list is an empty one.
pub(crate) fn objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|i| match i {
                Value::Object(map) => from_map(map),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

fn from_map<T: DeserializeOwned>(map: Map<String, Value>) -> Option<T> {
    T::deserialize(Value::Object(map)).ok()
}

/// A non-empty string; anything else (a number too) is absent.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if !s.is_empty() => Some(s),
        _ => None,
    })
}
