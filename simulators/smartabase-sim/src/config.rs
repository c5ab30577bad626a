//! Simulator configuration: site name, API account, the site's forms and the seeded roster.

use serde::{Deserialize, Serialize};

/// Whether a form holds dated events or one record per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FormKind {
    /// Dated records written with `eventimport`/`eventsimport`.
    Event,
    /// One record per user written with `profileimport`.
    Profile,
}

/// How a field stores its values; it only matters for how values read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FieldKind {
    /// Stored and read back verbatim.
    Text,
    /// Read back the way a Java double prints: `1.78432026E9` for large or tiny magnitudes.
    Number,
}

/// One field of a form, keyed by its exact (case- and space-sensitive) name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDefinition {
    /// Exact field name as configured in the form builder.
    pub name: String,
    /// Value kind.
    pub kind: FieldKind,
}

/// A form of the simulated site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormDefinition {
    /// Exact form name.
    pub name: String,
    /// Event or profile form.
    pub kind: FormKind,
    /// The fields; keys not listed here are dropped on import.
    pub fields: Vec<FieldDefinition>,
}

impl FormDefinition {
    /// An event form without fields yet.
    pub fn event(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind: FormKind::Event,
            fields: Vec::new(),
        }
    }

    /// A profile form without fields yet.
    pub fn profile(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind: FormKind::Profile,
            fields: Vec::new(),
        }
    }

    /// Adds text fields.
    pub fn with_text_fields(self, names: &[&str]) -> Self {
        self.with_fields(names, FieldKind::Text)
    }

    /// Adds number fields.
    pub fn with_number_fields(self, names: &[&str]) -> Self {
        self.with_fields(names, FieldKind::Number)
    }

    fn with_fields(mut self, names: &[&str], kind: FieldKind) -> Self {
        self.fields.extend(names.iter().map(|name| FieldDefinition {
            name: (*name).to_owned(),
            kind,
        }));
        self
    }

    /// The field with this exact name, if the form has it.
    pub fn field(&self, name: &str) -> Option<&FieldDefinition> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// What `eventsearch` and `profilesearch` answer when nothing matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EmptyResults {
    /// HTTP 200 with an empty body (the harsher reading of the reference; default).
    #[default]
    EmptyBody,
    /// HTTP 200 with `{"events": []}` / `{"profiles": []}`.
    EmptyList,
}

/// Configuration of one simulated Smartabase site.
#[derive(Clone)]
pub struct SmartabaseSimConfig {
    /// Last path segment of the site URL (`{base}/{app_name}`).
    pub app_name: String,
    /// API account username for HTTP Basic auth.
    pub username: String,
    /// API account password for HTTP Basic auth.
    pub password: String,
    /// The API account's own Smartabase user id (default `enteredByUserId`).
    pub api_user_id: i64,
    /// The site's forms; defaults to the connector's forms (design §5).
    pub forms: Vec<FormDefinition>,
    /// Seed for the generated roster and probabilistic faults.
    pub seed: u64,
    /// Number of athletes (with UUIDs) generated at start.
    pub athletes: usize,
    /// Answer shape of searches that match nothing.
    pub empty_results: EmptyResults,
}

impl std::fmt::Debug for SmartabaseSimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartabaseSimConfig")
            .field("app_name", &self.app_name)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("api_user_id", &self.api_user_id)
            .field("forms", &self.forms)
            .field("seed", &self.seed)
            .field("athletes", &self.athletes)
            .field("empty_results", &self.empty_results)
            .finish()
    }
}

impl Default for SmartabaseSimConfig {
    fn default() -> Self {
        Self {
            app_name: "club".to_owned(),
            username: "polar.connector".to_owned(),
            password: "sim-password".to_owned(),
            api_user_id: 120_855,
            forms: default_forms(),
            seed: 42,
            athletes: 0,
            empty_results: EmptyResults::default(),
        }
    }
}

impl SmartabaseSimConfig {
    /// The form with this exact name.
    pub fn form(&self, name: &str) -> Option<&FormDefinition> {
        self.forms.iter().find(|form| form.name == name)
    }
}

/// Event form `Polar Training`.
pub const POLAR_TRAINING: &str = "Polar Training";
/// Event form `Polar Activity`.
pub const POLAR_ACTIVITY: &str = "Polar Activity";
/// Event form `Polar Sleep`.
pub const POLAR_SLEEP: &str = "Polar Sleep";
/// Event form `Polar Nightly Recharge`.
pub const POLAR_NIGHTLY_RECHARGE: &str = "Polar Nightly Recharge";
/// Optional event form `Polar Cardio Load` (design §5b).
pub const POLAR_CARDIO_LOAD: &str = "Polar Cardio Load";
/// Optional event form `Polar Alertness` (design §5b).
pub const POLAR_ALERTNESS: &str = "Polar Alertness";
/// Optional event form `Polar Daily Heart Rate` (design §5b).
pub const POLAR_DAILY_HEART_RATE: &str = "Polar Daily Heart Rate";
/// Profile form `Polar Auth Portal`.
pub const POLAR_AUTH_PORTAL: &str = "Polar Auth Portal";
/// Profile form `Polar Access Token`.
pub const POLAR_ACCESS_TOKEN: &str = "Polar Access Token";

/// The forms of design §5 with their exact field names.
pub fn default_forms() -> Vec<FormDefinition> {
    vec![
        FormDefinition::event(POLAR_TRAINING)
            .with_text_fields(&["Polar Exercise ID", "Sport", "Device"])
            .with_number_fields(&[
                "Duration (min)",
                "Distance (km)",
                "Calories",
                "Average HR",
                "Maximum HR",
                "Training Load",
                "Cardio Load",
                "Muscle Load",
                "Zone 1 (min)",
                "Zone 2 (min)",
                "Zone 3 (min)",
                "Zone 4 (min)",
                "Zone 5 (min)",
            ]),
        FormDefinition::event(POLAR_ACTIVITY)
            .with_text_fields(&["Activity Date"])
            .with_number_fields(&[
                "Steps",
                "Active Calories",
                "Total Calories",
                "Active Time (min)",
                "Distance (km)",
            ]),
        FormDefinition::event(POLAR_SLEEP)
            .with_text_fields(&["Sleep Date", "Sleep Start", "Sleep End"])
            .with_number_fields(&[
                "Total Sleep (min)",
                "Deep Sleep (min)",
                "REM Sleep (min)",
                "Light Sleep (min)",
                "Interruptions (min)",
                "Sleep Score",
                "Sleep Charge",
                "Continuity",
            ]),
        FormDefinition::event(POLAR_NIGHTLY_RECHARGE)
            .with_text_fields(&["Recharge Date"])
            .with_number_fields(&[
                "Nightly Recharge Status",
                "ANS Charge",
                "Average HR",
                "Average HRV (ms)",
                "Breathing Rate",
            ]),
        FormDefinition::profile(POLAR_AUTH_PORTAL).with_text_fields(&["Authorisation Link"]),
        FormDefinition::profile(POLAR_ACCESS_TOKEN).with_text_fields(&[
            "Polar User ID",
            "Access Token",
            "Status",
            "Linked At",
        ]),
    ]
}

/// The optional forms of design §5b with their exact field names: what a site that enables them builds.
/// Not on a site by default.
pub fn optional_forms() -> Vec<FormDefinition> {
    vec![
        FormDefinition::event(POLAR_CARDIO_LOAD)
            .with_text_fields(&["Cardio Load Date", "Cardio Load Status"])
            .with_number_fields(&["Cardio Load", "Strain", "Tolerance", "Cardio Load Ratio"]),
        FormDefinition::event(POLAR_ALERTNESS)
            .with_text_fields(&[
                "Alertness Date",
                "Grade Classification",
                "Sleep Inertia",
                "Sleep Type",
                "Validity",
            ])
            .with_number_fields(&["Alertness Grade"]),
        FormDefinition::event(POLAR_DAILY_HEART_RATE)
            .with_text_fields(&["Heart Rate Date"])
            .with_number_fields(&["Lowest HR", "Average HR", "Highest HR", "Samples"]),
    ]
}
