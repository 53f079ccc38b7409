//! Printing results: JSON for machines (`--json`), short lines for people.

use serde::Serialize;

/// Prints `value` as pretty JSON if `json`, else the human text.
pub(crate) fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", human());
    }
    Ok(())
}
