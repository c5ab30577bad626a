//! `connector mapping show|set|reset`: the site's override of form and field names, kept in the table's
//! settings under [`MAPPING_SETTING`] and read by every function at cold start. Works on the table alone,
//! so a stored override that no longer validates can still be replaced or reset.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use serde_json::Value;
use shared::bootstrap::MAPPING_SETTING;
use shared::mapping::{DEFAULT_MAPPING_JSON, FormSpec, Mapping};
use shared::store::SettingsStore as _;

use crate::environment::Operator;
use crate::error::CliError;

/// What `mapping reset` stores: an override that changes nothing.
const NO_OVERRIDE: &str = "{}";

/// `connector mapping …`.
#[derive(Debug, clap::Subcommand)]
pub enum MappingCommand {
    /// Print the effective mapping (the built-in names with the site's override) as JSON.
    Show,
    /// Validate FILE as a mapping override and store it; functions use it from their next cold start.
    Set {
        /// JSON naming only what differs, e.g. {"training": {"form": "Club Training"}} or
        /// {"cardio_load": {"enabled": true}}; a field set to null is left out of every write.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Drop the site's override; functions use the built-in names from their next cold start.
    Reset,
}

/// Runs `connector mapping …`.
pub async fn run(operator: &Operator, command: MappingCommand) -> Result<(), CliError> {
    let store = operator.store();
    match command {
        MappingCommand::Show => {
            let stored = store
                .get_setting(MAPPING_SETTING)
                .await
                .context("reading the mapping override")?;
            let mapping = match stored.as_deref().map(str::trim) {
                None | Some(NO_OVERRIDE) => {
                    eprintln!("no override stored: the built-in mapping");
                    Mapping::defaults()
                }
                Some(json) => Mapping::with_override(json).map_err(|e| {
                    anyhow!(
                        "the stored override is invalid ({e}); replace it with `connector mapping set \
                         FILE` or drop it with `connector mapping reset`"
                    )
                })?,
            };
            crate::output::print_json(&effective_json(&mapping)?)
        }
        MappingCommand::Set { file } => {
            let shown = file.display();
            let json = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {shown}"))
                .map_err(CliError::Input)?;
            Mapping::with_override(&json)
                .with_context(|| format!("{shown} is not a valid mapping override"))
                .map_err(CliError::Input)?;
            store
                .put_setting(MAPPING_SETTING, json.trim())
                .await
                .context("storing the mapping override")?;
            println!("stored the mapping override from {shown}");
            eprintln!("{}", COLD_START_NOTE);
            Ok(())
        }
        MappingCommand::Reset => {
            store
                .put_setting(MAPPING_SETTING, NO_OVERRIDE)
                .await
                .context("resetting the mapping override")?;
            println!("mapping reset to the built-in names");
            eprintln!("{}", COLD_START_NOTE);
            Ok(())
        }
    }
}

const COLD_START_NOTE: &str = "functions read the mapping at cold start: running containers keep \
    the old one until they restart (redeploy, or `aws lambda update-function-configuration` each \
    function to restart them now)";

/// The mapping in the shape of `default.json`, every name taken from `mapping` (so it shows exactly what
/// the functions will write; `null` = a field left out).
fn effective_json(mapping: &Mapping) -> anyhow::Result<Value> {
    let mut json: Value =
        serde_json::from_str(DEFAULT_MAPPING_JSON).context("reading the built-in mapping")?;
    let forms = json
        .as_object_mut()
        .ok_or_else(|| anyhow!("the built-in mapping is not a JSON object"))?;
    for (key, entry) in forms.iter_mut() {
        let spec = form_spec(mapping, key).ok_or_else(|| {
            anyhow!("the built-in mapping has a form `{key}` this CLI does not know")
        })?;
        entry["form"] = Value::String(spec.form.clone());
        if entry.get("enabled").is_some() {
            entry["enabled"] = Value::Bool(spec.enabled);
        }
        if let Some(fields) = entry.get_mut("fields").and_then(Value::as_object_mut) {
            for (role, name) in fields.iter_mut() {
                *name = spec
                    .field(role)
                    .map_or(Value::Null, |n| Value::String(n.to_string()));
            }
        }
    }
    Ok(json)
}

fn form_spec<'a>(mapping: &'a Mapping, key: &str) -> Option<&'a FormSpec> {
    mapping
        .forms()
        .into_iter()
        .find_map(|(form_key, spec)| (form_key == key).then_some(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_json_of_the_defaults_is_the_built_in_file() {
        let built_in: Value = serde_json::from_str(DEFAULT_MAPPING_JSON).unwrap();
        assert_eq!(effective_json(&Mapping::defaults()).unwrap(), built_in);
    }

    #[test]
    fn effective_json_shows_renamed_and_dropped_fields() {
        let mapping = Mapping::with_override(
            r#"{"sleep": {"form": "Club Sleep", "fields": {"continuity": null, "sleep_score": "Score"}}}"#,
        )
        .unwrap();
        let json = effective_json(&mapping).unwrap();
        assert_eq!(json["sleep"]["form"], "Club Sleep");
        assert_eq!(json["sleep"]["fields"]["continuity"], Value::Null);
        assert_eq!(json["sleep"]["fields"]["sleep_score"], "Score");
        assert_eq!(json["training"]["form"], "Polar Training");
    }

    #[test]
    fn effective_json_shows_which_optional_forms_are_enabled() {
        let mapping = Mapping::with_override(
            r#"{"daily_heart_rate": {"enabled": true, "fields": {"samples": null}}}"#,
        )
        .unwrap();
        let json = effective_json(&mapping).unwrap();
        assert_eq!(json["daily_heart_rate"]["enabled"], true);
        assert_eq!(json["daily_heart_rate"]["fields"]["samples"], Value::Null);
        assert_eq!(json["cardio_load"]["enabled"], false);
        assert_eq!(json["alertness"]["enabled"], false);
        assert_eq!(json["alertness"]["form"], "Polar Alertness");
        // The core forms are always written: they carry no switch.
        assert_eq!(json["training"].get("enabled"), None);
    }
}
