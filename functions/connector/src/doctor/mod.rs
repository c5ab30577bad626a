//! `connector doctor [--json]` (design §7): checks a deployment against its site and says what to fix.
//! One line per check, `ok`, `warn` or `fail` with the fix; exit code 0 when nothing fails, 1 otherwise.
//!
//! The checks run in order and each one needs only what the earlier ones established: the AWS resources
//! need their settings, the Smartabase and Polar checks need the configuration and a readable secret, the
//! form checks need the mapping and a Smartabase session. A check whose prerequisite failed is reported
//! as `warn` "not checked", naming the check to fix first, so the `fail` lines are the causes. No secret
//! value is ever printed (user names and the Polar client id are not secrets).

mod aws;
mod polar;
mod smartabase;

use std::fmt::Write as _;

use anyhow::anyhow;
use serde::Serialize;

use crate::environment::Environment;
use crate::error::CliError;
use crate::output;

/// Arguments of `connector doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the checks as a JSON list of {name, status, message, fix} instead of lines.
    #[arg(long)]
    json: bool,
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Ready.
    Ok,
    /// Works, but something is missing or will go wrong for some athletes.
    Warn,
    /// Not ready: the connector will not work until it is fixed.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable name, e.g. `table`, `smartabase.login`, `form.sleep`.
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do about it; `None` when nothing needs doing.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }

    fn warn(name: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    /// A check that could not run because `blocker` (an earlier check) did not pass.
    fn not_checked(name: impl Into<String>, blocker: &str, reason: &str) -> Self {
        Self::warn(
            name,
            format!("not checked: {reason}"),
            format!("fix `{blocker}` first, then run `connector doctor` again"),
        )
    }
}

/// Runs every check and prints the result: lines on stdout (or JSON with `--json`), a count on stderr.
pub async fn run(args: DoctorArgs, environment: &Environment) -> Result<(), CliError> {
    let checks = diagnose(environment).await;
    if args.json {
        output::print_json(&checks)?;
    } else {
        print!("{}", lines(&checks));
    }
    let count = |status| checks.iter().filter(|c| c.status == status).count();
    let (ok, warn, fail) = (count(Status::Ok), count(Status::Warn), count(Status::Fail));
    eprintln!("doctor: {ok} ok, {warn} warn, {fail} fail");
    if fail > 0 {
        return Err(anyhow!(
            "{fail} check(s) failed: fix every `fail` line, then run `connector doctor` again"
        )
        .into());
    }
    Ok(())
}

/// Every check, in order.
async fn diagnose(environment: &Environment) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = match environment.config() {
        Ok(config) => {
            checks.push(Check::ok(
                "configuration",
                format!(
                    "every setting is present and valid (site {}, public URL {}, sync every {} min)",
                    config.smartabase_url,
                    config.public_base_url.as_str().trim_end_matches('/'),
                    config.sync_interval.minutes()
                ),
            ));
            Some(config)
        }
        Err(error) => {
            let message = error.to_string();
            checks.push(Check::fail(
                "configuration",
                message.strip_prefix("configuration: ").unwrap_or(&message),
                "set the variables the functions get from the stack (CONNECTOR_TABLE, SYNC_QUEUE_URL, \
                 CONNECTOR_SECRET_ID, PUBLIC_BASE_URL, SMARTABASE_URL) in the environment or in \
                 --env-file FILE; `connector init` prints the first three",
            ));
            None
        }
    };
    let sdk = environment.sdk_config().await;
    let resources = aws::check_resources(&sdk, environment, &mut checks).await;
    smartabase::check_site(
        config.as_ref(),
        resources.secrets.as_ref(),
        resources.mapping.as_ref(),
        &mut checks,
    )
    .await;
    polar::check_polar(config.as_ref(), resources.secrets.as_ref(), &mut checks).await;
    checks
}

/// The human output: `status  name  message — fix: …`, one line per check, names aligned.
fn lines(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for check in checks {
        let _ = write!(
            text,
            "{:<4}  {:<width$}  {}",
            check.status.label(),
            check.name,
            check.message
        );
        if let Some(fix) = &check.fix {
            let _ = write!(text, " — fix: {fix}");
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_is_one_line_with_its_fix() {
        let checks = [
            Check::ok("table", "polar-connector exists"),
            Check::fail("form.sleep", "lacks \"Continuity\"", "add it"),
            Check::not_checked("smartabase.athletes", "secret", "no readable secret"),
        ];
        assert_eq!(
            lines(&checks),
            "ok    table                polar-connector exists\n\
             fail  form.sleep           lacks \"Continuity\" — fix: add it\n\
             warn  smartabase.athletes  not checked: no readable secret — fix: fix `secret` first, \
             then run `connector doctor` again\n"
        );
    }

    #[test]
    fn json_names_the_status_in_lower_case_and_an_absent_fix_as_null() {
        let json = serde_json::to_value([
            Check::ok("table", "exists"),
            Check::warn("polar.webhook", "none", "register"),
        ])
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"name": "table", "status": "ok", "message": "exists", "fix": null},
                {"name": "polar.webhook", "status": "warn", "message": "none", "fix": "register"},
            ])
        );
    }
}
