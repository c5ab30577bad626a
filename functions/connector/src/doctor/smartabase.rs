//! The Smartabase site: the API account logs in (v2 session), sees athletes with UUIDs (v1 roster, as the
//! scan reads it), and every form the mapping enables exists with every mapped field (v3 form metadata).

use shared::config::{Config, Secrets};
use shared::mapping::{FormKind, Mapping, OPTIONAL_FORMS, SiteForm};
use shared::smartabase::{
    EVENT_FORMS, FormSummary, PROFILE_FORMS, SmartabaseApi as _, SmartabaseClient, SmartabaseError,
    SmartabaseSession,
};

use super::Check;

/// Permissions the connector's writes need (README, Smartabase forms).
const NEEDED_PERMISSIONS: [&str; 2] = ["Import Data", "Import Profile Data"];
/// Roster pages read at most (100 users each), so a server that never ends its cursor cannot hang doctor.
const MAX_ROSTER_PAGES: usize = 1_000;

/// The names of the form checks: one per form the mapping enables, or one `forms` when the mapping is
/// unknown.
fn form_check_names(mapping: Option<&Mapping>) -> Vec<String> {
    mapping.map_or_else(
        || vec!["forms".to_owned()],
        |mapping| {
            mapping
                .enabled_forms()
                .iter()
                .map(|form| form_check_name(form))
                .collect()
        },
    )
}

fn form_check_name(form: &SiteForm<'_>) -> String {
    format!("form.{}", form.key)
}

pub(super) async fn check_site(
    config: Option<&Config>,
    secrets: Option<&Secrets>,
    mapping: Option<&Mapping>,
    checks: &mut Vec<Check>,
) {
    let skip_all = |checks: &mut Vec<Check>, blocker: &str, reason: &str| {
        for name in ["smartabase.login", "smartabase.athletes"]
            .into_iter()
            .map(str::to_owned)
            .chain(form_check_names(mapping))
        {
            checks.push(Check::not_checked(name, blocker, reason));
        }
    };
    let Some(config) = config else {
        return skip_all(checks, "configuration", "the configuration is incomplete");
    };
    let Some(secrets) = secrets else {
        return skip_all(
            checks,
            "secret",
            "the Smartabase credentials are in the secret",
        );
    };
    let http = shared::http::client().map_err(|e| {
        let e = e.without_url();
        SmartabaseError::Transport {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    });
    let client = http.and_then(|http| {
        SmartabaseClient::new(
            config.smartabase_url.clone(),
            secrets.smartabase_username.clone(),
            secrets.smartabase_password.clone(),
            http,
        )
        .map_err(|e| SmartabaseError::BadRequest {
            status: 0,
            detail: e.to_string(),
        })
    });
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            checks.push(Check::fail(
                "smartabase.login",
                format!("no Smartabase client: {e}"),
                "set SMARTABASE_URL to the site URL with its app name",
            ));
            return skip_all(checks, "smartabase.login", "no Smartabase client");
        }
    };

    let username = &secrets.smartabase_username;
    let session = match client.login().await {
        Ok(session) => {
            checks.push(login_check(username, &session));
            Some(session)
        }
        Err(error) => {
            let refused = matches!(error, SmartabaseError::Unauthorized { .. });
            checks.push(Check::fail(
                "smartabase.login",
                format!("the API account {username} cannot log in: {error}"),
                site_fix(&error, config),
            ));
            if refused {
                let reason = "Smartabase refused the API account's credentials";
                checks.push(Check::not_checked(
                    "smartabase.athletes",
                    "smartabase.login",
                    reason,
                ));
                for name in form_check_names(mapping) {
                    checks.push(Check::not_checked(name, "smartabase.login", reason));
                }
                return;
            }
            None
        }
    };
    checks.push(athletes_check(&client, config).await);
    match (session, mapping) {
        (Some(session), Some(mapping)) => {
            check_forms(&client, session, mapping, config, checks).await
        }
        (None, _) => {
            for name in form_check_names(mapping) {
                checks.push(Check::not_checked(
                    name,
                    "smartabase.login",
                    "the form metadata needs a session",
                ));
            }
        }
        (_, None) => checks.push(Check::not_checked(
            "forms",
            "mapping",
            "the forms to check come from the mapping",
        )),
    }
}

/// What to do about a Smartabase call that failed.
fn site_fix(error: &SmartabaseError, config: &Config) -> String {
    match error {
        SmartabaseError::Unauthorized { .. } => "check smartabase_username (the Smartabase username, not \
            the e-mail address) and smartabase_password in the secret; the API account must not need \
            MFA, SSO or a terms document"
            .to_owned(),
        SmartabaseError::BadRequest { status: 404, .. } | SmartabaseError::Rejected { .. } => format!(
            "SMARTABASE_URL ({}) must be the site URL ending with its app name, e.g. \
             https://club.smartabase.com/club; the site must run Smartabase 6.14 or later",
            config.smartabase_url
        ),
        _ => format!(
            "check that {} is reachable from here and answering, then run again",
            config.smartabase_url
        ),
    }
}

fn login_check(username: &str, session: &SmartabaseSession) -> Check {
    let id = session
        .account
        .user_id
        .map_or_else(String::new, |id| format!(" (user id {})", id.get()));
    let granted = &session.account.permissions;
    let lacking: Vec<&str> = NEEDED_PERMISSIONS
        .into_iter()
        .filter(|needed| !granted.iter().any(|p| p == needed))
        .collect();
    // An answer without a permission list says nothing about them.
    if granted.is_empty() || lacking.is_empty() {
        Check::ok(
            "smartabase.login",
            format!("the API account {username} logs in{id}"),
        )
    } else {
        Check::warn(
            "smartabase.login",
            format!(
                "the API account {username} logs in{id} but lacks the permission(s) {}: its imports \
                 will be refused",
                lacking.join(", ")
            ),
            "give the API account's role the permissions Import Data and Import Profile Data",
        )
    }
}

async fn athletes_check(client: &SmartabaseClient, config: &Config) -> Check {
    const NAME: &str = "smartabase.athletes";
    let (mut total, mut without_uuid) = (0_usize, 0_usize);
    let mut cursor: Option<String> = None;
    let mut complete = false;
    for _ in 0..MAX_ROSTER_PAGES {
        match client.roster_page(cursor.as_deref()).await {
            Ok(page) => {
                total += page.users.len();
                without_uuid += page.users_without_uuid;
                cursor = page.next_cursor;
                if cursor.is_none() {
                    complete = true;
                    break;
                }
            }
            Err(error) => {
                return Check::fail(
                    NAME,
                    format!("reading the roster (usersynchronise) failed: {error}"),
                    site_fix(&error, config),
                );
            }
        }
    }
    let counted = if complete {
        String::new()
    } else {
        format!(" (counted the first {MAX_ROSTER_PAGES} pages)")
    };
    let with_uuid = total - without_uuid;
    if total == 0 {
        Check::fail(
            NAME,
            "the API account sees no users",
            "make the API account a coach of the athletes' groups: it sees only the users of groups it \
             coaches",
        )
    } else if with_uuid == 0 {
        Check::fail(
            NAME,
            format!(
                "none of the {} the API account sees has a UUID: nobody can link",
                users(total)
            ),
            "enable UUIDs on the site and give every athlete one (Smartabase administration)",
        )
    } else if without_uuid > 0 {
        Check::warn(
            NAME,
            format!(
                "{} with a UUID; {without_uuid} of {total} without one cannot link{counted}",
                users(with_uuid)
            ),
            "give those athletes a UUID in Smartabase (staff accounts without one can stay as they are)",
        )
    } else {
        Check::ok(NAME, format!("{}, all with a UUID{counted}", users(total)))
    }
}

async fn check_forms(
    client: &SmartabaseClient,
    mut session: SmartabaseSession,
    mapping: &Mapping,
    config: &Config,
    checks: &mut Vec<Check>,
) {
    let forms = mapping.enabled_forms();
    let summaries = match client.form_summaries(&mut session).await {
        Ok(summaries) => summaries,
        Err(error) => {
            checks.push(Check::fail(
                "forms",
                format!("reading the site's forms (v3 forms/summaries) failed: {error}"),
                site_fix(&error, config),
            ));
            for form in &forms {
                checks.push(Check::not_checked(
                    form_check_name(form),
                    "forms",
                    "the site's forms could not be listed",
                ));
            }
            return;
        }
    };
    for form in &forms {
        let summary = match find_form(form, &summaries) {
            Ok(summary) => summary,
            Err(check) => {
                checks.push(check);
                continue;
            }
        };
        checks.push(match client.form_field_names(&mut session, summary).await {
            Ok(fields) => compare_fields(form, &fields),
            Err(error) => Check::fail(
                form_check_name(form),
                format!("reading the fields of `{}` failed: {error}", summary.name),
                site_fix(&error, config),
            ),
        });
    }
}

fn kind_words(kind: FormKind) -> (&'static str, &'static str) {
    match kind {
        FormKind::Event => (EVENT_FORMS, "event"),
        FormKind::Profile => (PROFILE_FORMS, "profile"),
    }
}

/// The site's form for `form`: the one with exactly its name and type that the API account may enter
/// data in; otherwise the failing check, with the closest thing the site has.
fn find_form<'a>(
    form: &SiteForm<'_>,
    summaries: &'a [FormSummary],
) -> Result<&'a FormSummary, Check> {
    let name = &form.spec.form;
    let (wanted_type, kind) = kind_words(form.kind);
    let same_name: Vec<&FormSummary> = summaries.iter().filter(|s| &s.name == name).collect();
    let rename = rename_example(
        form.key,
        serde_json::json!({"form": "<the site's form name>"}),
    );
    match same_name.iter().find(|s| s.form_type == wanted_type) {
        Some(summary) if summary.read_only => Err(Check::fail(
            form_check_name(form),
            format!("the API account can only read the {kind} form `{name}`"),
            format!("give the API account's role permission to enter data in `{name}`"),
        )),
        Some(summary) => Ok(summary),
        None => {
            let found = match (same_name.first(), near_name(name, summaries)) {
                (Some(other), _) => format!(
                    "`{name}` is a {} form on the site; the connector writes it as a {kind} form",
                    other.form_type
                ),
                (None, Some(near)) => format!(
                    "no {kind} form `{name}` on the site (it has `{near}`: names must match exactly)"
                ),
                (None, None) => {
                    format!("no {kind} form `{name}` on the site, or the API account cannot see it")
                }
            };
            let fields: Vec<&str> = form.spec.fields().filter_map(|(_, name)| name).collect();
            let mut fix = format!(
                "build the {kind} form `{name}` with the fields {} and give the API account's \
                 role access to it; if the site names it differently: `connector mapping set` \
                 with {rename}",
                quoted(&fields)
            );
            if OPTIONAL_FORMS.contains(&form.key) {
                let off = rename_example(form.key, serde_json::json!({"enabled": false}));
                fix.push_str(&format!(
                    "; if the site does not want it: `connector mapping set` with {off}"
                ));
            }
            Err(Check::fail(form_check_name(form), found, fix))
        }
    }
}

/// A name on the site equal to `name` but for case and surrounding spaces.
fn near_name<'a>(name: &str, summaries: &'a [FormSummary]) -> Option<&'a str> {
    summaries
        .iter()
        .map(|s| s.name.as_str())
        .find(|other| other.trim().eq_ignore_ascii_case(name.trim()))
}

/// Every mapped field must be on the site's form; a field mapped to `null` is not needed.
fn compare_fields(form: &SiteForm<'_>, site_fields: &[String]) -> Check {
    let name = &form.spec.form;
    let has = |field: &str| site_fields.iter().any(|f| f == field);
    let mapped: Vec<(&str, &str)> = form
        .spec
        .fields()
        .filter_map(|(role, field)| field.map(|field| (role, field)))
        .collect();
    let left_out = form.spec.fields().count() - mapped.len();
    let missing: Vec<(&str, &str)> = mapped
        .iter()
        .copied()
        .filter(|(_, field)| !has(field))
        .collect();
    let Some((first_role, _)) = missing.first() else {
        let left_out = if left_out > 0 {
            format!("; {left_out} left out by the mapping")
        } else {
            String::new()
        };
        return Check::ok(
            form_check_name(form),
            format!(
                "`{name}` has every mapped field ({}{left_out})",
                mapped.len()
            ),
        );
    };
    let names: Vec<&str> = missing.iter().map(|(_, field)| *field).collect();
    let hints: Vec<String> = names
        .iter()
        .filter_map(|field| {
            site_fields
                .iter()
                .find(|f| f.trim().eq_ignore_ascii_case(field.trim()))
                .map(|near| format!("the form has \"{near}\", not \"{field}\""))
        })
        .collect();
    let hints = if hints.is_empty() {
        String::new()
    } else {
        format!(" ({}: names must match exactly)", hints.join("; "))
    };
    let (_, kind) = kind_words(form.kind);
    let mut fix = format!(
        "add {} to the {kind} form `{name}` with exactly these names",
        quoted(&names)
    );
    if form.kind == FormKind::Event {
        let example = rename_example(form.key, serde_json::json!({"fields": {*first_role: null}}));
        fix.push_str(&format!(
            ", or rename a field to the site's name or leave it out (null) with `connector mapping \
             set`, e.g. {example}"
        ));
    }
    Check::fail(
        form_check_name(form),
        format!(
            "`{name}` lacks {} of {} mapped field(s): {}{hints}: that data would be dropped",
            names.len(),
            mapped.len(),
            quoted(&names)
        ),
        fix,
    )
}

fn users(count: usize) -> String {
    match count {
        1 => "1 user".to_owned(),
        n => format!("{n} users"),
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("\"{name}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A mapping override for one form, as `connector mapping set` takes it.
fn rename_example(key: &str, entry: serde_json::Value) -> String {
    serde_json::json!({ key: entry }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: i64, name: &str, form_type: &str, read_only: bool) -> FormSummary {
        FormSummary {
            id,
            name: name.to_owned(),
            form_type: form_type.to_owned(),
            read_only,
        }
    }

    fn sleep_form(mapping: &Mapping) -> SiteForm<'_> {
        mapping
            .enabled_forms()
            .into_iter()
            .find(|f| f.key == "sleep")
            .unwrap()
    }

    fn sleep_fields() -> Vec<String> {
        Mapping::defaults()
            .sleep
            .fields()
            .filter_map(|(_, name)| name.map(str::to_owned))
            .collect()
    }

    #[test]
    fn a_form_is_found_by_exact_name_and_type() {
        let mapping = Mapping::defaults();
        let form = sleep_form(&mapping);
        let summaries = [
            summary(1, "Polar Sleep", "profile", false),
            summary(2, "Polar Sleep", "event", false),
        ];
        assert_eq!(find_form(&form, &summaries).unwrap().id, 2);
    }

    #[test]
    fn a_missing_form_is_named_with_what_to_build_and_a_near_name() {
        let mapping = Mapping::defaults();
        let form = sleep_form(&mapping);
        let check = find_form(&form, &[summary(1, "polar sleep ", "event", false)]).unwrap_err();
        assert_eq!(check.name, "form.sleep");
        assert_eq!(check.status, super::super::Status::Fail);
        assert!(
            check.message.contains("no event form `Polar Sleep`"),
            "{check:?}"
        );
        assert!(check.message.contains("`polar sleep `"), "{check:?}");
        let fix = check.fix.unwrap();
        assert!(
            fix.contains("\"Sleep Score\"") && fix.contains("\"Continuity\""),
            "{fix}"
        );
        assert!(
            fix.contains(r#"{"sleep":{"form":"<the site's form name>"}}"#),
            "{fix}"
        );
    }

    #[test]
    fn a_form_of_the_wrong_type_or_read_only_fails() {
        let mapping = Mapping::defaults();
        let form = sleep_form(&mapping);
        let wrong = find_form(&form, &[summary(1, "Polar Sleep", "profile", false)]).unwrap_err();
        assert!(wrong.message.contains("is a profile form"), "{wrong:?}");
        let read_only = find_form(&form, &[summary(1, "Polar Sleep", "event", true)]).unwrap_err();
        assert!(read_only.message.contains("can only read"), "{read_only:?}");
    }

    #[test]
    fn every_missing_field_is_named_with_a_case_hint() {
        let mapping = Mapping::defaults();
        let form = sleep_form(&mapping);
        let mut fields = sleep_fields();
        fields.retain(|f| f != "Continuity" && f != "Sleep Charge");
        fields.push("sleep charge".to_owned());
        let check = compare_fields(&form, &fields);
        assert_eq!(check.status, super::super::Status::Fail);
        assert!(
            check
                .message
                .contains("lacks 2 of 11 mapped field(s): \"Continuity\", \"Sleep Charge\""),
            "{check:?}"
        );
        assert!(
            check
                .message
                .contains("the form has \"sleep charge\", not \"Sleep Charge\""),
            "{check:?}"
        );
        let fix = check.fix.unwrap();
        assert!(
            fix.contains(r#"{"sleep":{"fields":{"continuity":null}}}"#),
            "{fix}"
        );
    }

    #[test]
    fn a_field_mapped_to_null_is_not_required() {
        let mapping =
            Mapping::with_override(r#"{"sleep": {"fields": {"continuity": null}}}"#).unwrap();
        let form = sleep_form(&mapping);
        let mut fields = sleep_fields();
        fields.retain(|f| f != "Continuity");
        let check = compare_fields(&form, &fields);
        assert_eq!(check.status, super::super::Status::Ok, "{check:?}");
        assert_eq!(
            check.message,
            "`Polar Sleep` has every mapped field (10; 1 left out by the mapping)"
        );
    }
}
