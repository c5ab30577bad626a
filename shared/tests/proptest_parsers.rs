//! Property tests of every parser of outside input that is not an HTTP client (those are in
//! `proptest_clients.rs`): SQS job bodies, the secret JSON, the environment, mapping overrides, the revoke
//! hook's and Polar's webhook signatures, the athletes' signed links, sealed tokens and identifiers,
//! Polar's durations; and of every date and duration computation on outside numbers at their extremes:
//! the rate budget fed any `RateLimit-*` reading and any 429 wait, token expiries from any `expires_in`,
//! the mapping of records with any times and numbers, Lambda deadlines of any size.
//! Whatever comes in: no panic, a clear error, and no secret in the error; what was signed or sealed
//! correctly always verifies, and anything else never does.
//!
//! Constant time: the signature checks go through `hmac`'s `verify_slice` (a constant-time comparison).
//! Timing cannot be measured reliably on a shared CI machine, so
//! `signature_checks_compare_in_constant_time_and_refuse_every_one_bit_change` pins the structure instead:
//! every check reaches `verify_slice`, and a signature one bit off is refused at every bit.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::budget::{BudgetState, LONG_WINDOW, LimitFormula, polar_wait_until};
use shared::config::{Config, EncryptionKey, Secrets};
use shared::crypto::{
    LinkError, LinkSigner, REVOKE_REPLAY_WINDOW_SECONDS, RevokeSignatureError, TokenCipher,
    hmac_hex, revoke_signature_header, verify_revoke_signature, verify_webhook_signature,
};
use shared::ids::{AccessToken, AthleteUuid, AuthState, ExerciseId, PolarUserId};
use shared::mapping::Mapping;
use shared::model::LedgerKey;
use shared::polar::{
    Alertness, CardioLoad, DailyActivity, DailyHeartRate, Exercise, HeartRateSample, HeartRateZone,
    NightlyRecharge, RateLimitInfo, RateLimitObservation, Sleep, TokenGrant,
};
use shared::queue::SyncJob;

/// A secret-looking value; inputs carry it where a secret would be, errors must never show it.
const MARKER: &str = "5ecre7-marker-9d2f41b7c6e0a83d5f1b";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 15, 0).unwrap()
}

/// Text that breaks naive parsers.
fn tricky() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(MARKER.to_string()),
        Just("t=,v1=".to_string()),
        Just("t=-9223372036854775808,v1=00".to_string()),
        Just("t=9223372036854775807,v1=00".to_string()),
        Just("\u{0}\u{202e}\u{feff}".to_string()),
        Just("9".repeat(40)),
        "\\PC{0,40}",
        "[ -~]{0,60}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        tricky().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,16}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `template` with some of its top-level keys replaced by odd values or removed.
fn near(template: Value) -> impl Strategy<Value = Value> {
    let keys: Vec<String> = template
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let count = keys.len().max(1);
    prop::collection::vec((0..count, prop::option::weighted(0.8, json_value())), 0..4).prop_map(
        move |changes| {
            let mut body = template.clone();
            for (index, replacement) in changes {
                let (Some(key), Some(map)) = (keys.get(index), body.as_object_mut()) else {
                    continue;
                };
                match replacement {
                    Some(value) => map.insert(key.clone(), value),
                    None => map.remove(key),
                };
            }
            body
        },
    )
}

/// Input text: near the documented shape, any JSON, or any text.
fn input(template: Value) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => near(template).prop_map(|v| v.to_string()),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => tricky(),
    ]
}

/// Numbers at the extremes Polar could send (and the ordinary ones).
fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(86_400),
        Just(86_401),
        Just(i64::MAX as u64),
        Just(i64::MAX as u64 + 1),
        Just(u64::MAX),
        Just(1 << 62),
        0..200_000u64,
        any::<u64>(),
    ]
}

fn extreme_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(-1),
        Just(0),
        Just(31_535_999),
        any::<i64>(),
    ]
}

fn extreme_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(-1.0),
        Just(0.0),
        Just(1e300),
        Just(8.64e12),
        -1e6..1e6f64,
        any::<f64>(),
    ]
}

/// Local date-times anywhere in chrono's calendar, its edges included.
fn any_local_time() -> impl Strategy<Value = NaiveDateTime> {
    prop_oneof![
        Just(NaiveDateTime::MIN),
        Just(NaiveDateTime::MAX),
        Just(
            NaiveDate::from_ymd_opt(9999, 12, 31)
                .unwrap()
                .and_hms_opt(23, 30, 0)
                .unwrap()
        ),
        (i64::from(i32::MIN)..i64::from(i32::MAX))
            .prop_map(|s| DateTime::from_timestamp(s * 8, 0).unwrap().naive_utc()),
    ]
}

fn any_utc() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::<Utc>::MAX_UTC),
        any_local_time().prop_map(|t| t.and_utc()),
    ]
}

fn clear_error(error: &str) -> Result<(), TestCaseError> {
    prop_assert!(!error.trim().is_empty(), "an error without a message");
    prop_assert!(
        !error.contains(MARKER),
        "the error echoes its input: {error}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sqs_bodies_parse_or_say_which_field_is_wrong(body in input(json!({
        "job_id": MARKER, "athlete": "athlete-1", "kind": "targeted",
        "targets": [{"type": "night", "date": "2026-11-26"}, {"type": "exercise", "id": "Xy7Qp2Lr"}],
        "enqueued_at": "2026-11-27T10:15:00Z", "deferrals": 2
    }))) {
        if let Err(error) = SyncJob::from_body(&body) {
            clear_error(&error)?;
        }
    }

    #[test]
    fn a_job_survives_its_own_body(athlete in "[a-zA-Z0-9._-]{1,40}", deferrals in any::<u32>(), seconds in 0i64..4_000_000_000) {
        let at = Utc.timestamp_opt(seconds, 0).unwrap();
        let mut job = SyncJob::new(AthleteUuid::parse(athlete).unwrap(), shared::queue::JobKind::Scheduled, Vec::new(), at);
        job.deferrals = deferrals;
        prop_assert_eq!(SyncJob::from_body(&job.to_body()).unwrap(), job);
    }

    #[test]
    fn the_secret_json_parses_or_names_the_key_and_never_shows_a_secret(text in input(secret_json())) {
        match Secrets::from_json(&text) {
            Err(error) => clear_error(&error.to_string())?,
            // Whatever parsed prints redacted.
            Ok(secrets) => {
                let printed = format!("{secrets:?}");
                prop_assert!(!printed.contains(MARKER), "secrets print unredacted: {printed}");
            }
        }
    }

    #[test]
    fn the_environment_loads_or_names_the_variable(changes in prop::collection::btree_map(
        prop::sample::select(vec![
            "CONNECTOR_TABLE", "SYNC_QUEUE_URL", "CONNECTOR_SECRET_ID", "PUBLIC_BASE_URL", "SMARTABASE_URL",
            "POLAR_AUTH_URL", "POLAR_TOKEN_URL", "POLAR_API_URL", "SYNC_INTERVAL_MINUTES",
        ]),
        prop::option::weighted(0.9, prop_oneof![
            tricky(),
            Just(format!("https://user:{MARKER}@host.test/club")),
            Just("15".to_string()),
            Just("14".to_string()),
            Just("4294967296".to_string()),
            "https://[a-z]{1,10}\\.test(/[a-z]{0,8}){0,2}/?",
        ]),
        0..4,
    )) {
        // A working environment with up to four variables changed or removed.
        let mut values: BTreeMap<&str, String> = [
            ("CONNECTOR_TABLE", "connector"),
            ("SYNC_QUEUE_URL", "https://sqs.test/123456789012/sync"),
            ("CONNECTOR_SECRET_ID", "connector/secrets"),
            ("PUBLIC_BASE_URL", "https://api.example.com/prod"),
            ("SMARTABASE_URL", "https://club.smartabase.com/club"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        for (name, value) in changes {
            match value {
                Some(value) => values.insert(name, value),
                None => values.remove(name),
            };
        }
        match Config::from_lookup(|name| values.get(name).cloned()) {
            Err(error) => {
                let text = error.to_string();
                prop_assert!(text.starts_with("configuration: "), "{text}");
                prop_assert!(!text.contains(MARKER), "the error echoes a value: {text}");
            }
            Ok(config) => {
                prop_assert!(config.sync_interval.minutes() >= 15);
                // `Config` is safe to print and its URLs end up in links and requests: none carries credentials.
                for url in [&config.public_base_url, &config.smartabase_url, &config.polar_auth_url, &config.polar_token_url, &config.polar_api_url] {
                    prop_assert!(url.username().is_empty() && url.password().is_none(), "{url} carries credentials");
                }
            }
        }
    }

    #[test]
    fn a_mapping_override_applies_or_says_what_is_wrong(text in input(json!({
        "training": {"form": "Club Training", "fields": {"calories": "Energy", "device": null}},
        "sleep": {"fields": {"sleep_score": "Score"}},
        "cardio_load": {"enabled": true, "fields": {"strain": "Acute Load", "cardio_load_ratio": null}},
        "alertness": {"enabled": false, "form": "Sleep Boost"},
        "access_token": {"form": "Polar Link"}
    }))) {
        if let Err(error) = Mapping::with_override(&text) {
            prop_assert!(!error.to_string().trim().is_empty());
        }
    }

    #[test]
    fn any_revoke_signature_header_is_refused_without_panicking(header in tricky(), body in prop::collection::vec(any::<u8>(), 0..64)) {
        let secret = SecretString::from(MARKER);
        if let Err(error) = verify_revoke_signature(&secret, Some(&header), &body, now()) {
            clear_error(&error.to_string())?;
        }
    }

    #[test]
    fn a_signed_revoke_verifies_within_the_window_and_nowhere_else(
        body in prop::collection::vec(any::<u8>(), 0..128),
        skew in -2 * REVOKE_REPLAY_WINDOW_SECONDS..2 * REVOKE_REPLAY_WINDOW_SECONDS,
        t in any::<i64>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let secret = SecretString::from("revoke-hook-secret-0123456789");
        let signed_at = now() + Duration::seconds(skew);
        let header = revoke_signature_header(&secret, &body, signed_at);
        let result = verify_revoke_signature(&secret, Some(&header), &body, now());
        if skew.abs() <= REVOKE_REPLAY_WINDOW_SECONDS {
            prop_assert_eq!(result, Ok(signed_at));
            // Another body under the same signature is refused.
            let mut other = body.clone();
            if other.is_empty() { other.push(b'x') } else { let i = flip.index(other.len()); other[i] ^= 0x01; }
            prop_assert_eq!(verify_revoke_signature(&secret, Some(&header), &other, now()), Err(RevokeSignatureError::BadSignature));
            // And so is the right signature under another key.
            let wrong = SecretString::from("another-secret-0123456789");
            prop_assert_eq!(verify_revoke_signature(&wrong, Some(&header), &body, now()), Err(RevokeSignatureError::BadSignature));
        } else {
            prop_assert_eq!(result, Err(RevokeSignatureError::OutsideWindow));
        }
        // Any timestamp at all is an answer, never a panic (this signature leaves out `t`, so it never matches).
        let any_time = format!("t={t},v1={}", hmac_hex(b"revoke-hook-secret-0123456789", &body));
        prop_assert!(verify_revoke_signature(&secret, Some(&any_time), &body, now()).is_err());
    }

    #[test]
    fn a_webhook_verifies_only_with_its_own_body_and_secret(
        body in prop::collection::vec(any::<u8>(), 0..128),
        signature in tricky(),
        flip in any::<prop::sample::Index>(),
    ) {
        let secret = SecretString::from("polar-webhook-secret");
        let good = hmac_hex(b"polar-webhook-secret", &body);
        prop_assert!(verify_webhook_signature(&secret, Some(&good), &body));
        prop_assert!(verify_webhook_signature(&secret, Some(&good.to_uppercase()), &body));
        prop_assert!(!verify_webhook_signature(&secret, None, &body));
        prop_assert_eq!(verify_webhook_signature(&secret, Some(&signature), &body), signature.trim().eq_ignore_ascii_case(&good));
        let mut other = body.clone();
        if other.is_empty() { other.push(0) } else { let i = flip.index(other.len()); other[i] ^= 0x80; }
        prop_assert!(!verify_webhook_signature(&secret, Some(&good), &other));
    }

    #[test]
    fn a_link_verifies_for_its_athlete_until_it_expires_and_never_otherwise(
        athlete in "[\\p{L}\\p{N}._~-]{1,64}",
        other in "[\\p{L}\\p{N}._~-]{1,64}",
        valid_for in -1_000_000i64..1_000_000,
        exp in any::<i64>(),
        sig in tricky(),
    ) {
        let signer = LinkSigner::new(SecretString::from("link-signing-key-0123456789"));
        let athlete = AthleteUuid::parse(athlete).unwrap();
        let expires = now() + Duration::seconds(valid_for);
        let link = signer.sign(&athlete, expires);
        let verdict = signer.verify(&athlete, link.expires, &link.signature, now());
        if valid_for >= 0 {
            prop_assert_eq!(verdict, Ok(()));
        } else {
            prop_assert_eq!(verdict, Err(LinkError::Expired));
        }
        let other = AthleteUuid::parse(other).unwrap();
        if other != athlete {
            prop_assert_eq!(signer.verify(&other, link.expires, &link.signature, now()), Err(LinkError::BadSignature));
        }
        if exp != link.expires {
            prop_assert_eq!(signer.verify(&athlete, exp, &link.signature, now()), Err(LinkError::BadSignature));
        }
        // Anything else as a signature: refused, never a panic.
        if !sig.trim().eq_ignore_ascii_case(&link.signature) {
            prop_assert_eq!(signer.verify(&athlete, link.expires, &sig, now()), Err(LinkError::BadSignature));
        }
    }

    #[test]
    fn a_sealed_token_opens_only_for_its_athlete_and_garbage_never_opens(
        token in "[ -~]{1,80}",
        garbage in prop_oneof![
            tricky(),
            prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| format!("v1.{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(b))),
        ],
    ) {
        let cipher = TokenCipher::new(&key());
        let athlete = AthleteUuid::parse("athlete-1").unwrap();
        let sealed = cipher.seal(&athlete, &AccessToken::new(token.clone())).unwrap();
        prop_assert!(!sealed.as_str().contains(&token) || token.len() < 8);
        let opened = cipher.open(&athlete, &sealed).unwrap();
        prop_assert_eq!(opened.expose_secret(), token.as_str());
        prop_assert!(cipher.open(&AthleteUuid::parse("athlete-2").unwrap(), &sealed).is_err());
        let refused = cipher.open(&athlete, &shared::crypto::SealedToken::from_stored(garbage));
        prop_assert!(refused.is_err(), "garbage opened");
        prop_assert!(!refused.unwrap_err().to_string().is_empty());
    }

    #[test]
    fn polar_durations_of_any_size_are_finite_seconds_or_refused(
        days in extreme_u64(), hours in extreme_u64(), minutes in extreme_u64(), seconds in extreme_u64(),
        millis in 0u32..1000, negative in any::<bool>(), text in tricky(),
    ) {
        let sign = if negative { "-" } else { "" };
        for duration in [
            format!("{sign}P{days}DT{hours}H{minutes}M{seconds}.{millis:03}S"),
            format!("P{days}W"),
            format!("PT{sign}{seconds}S"),
            text.clone(),
        ] {
            match shared::polar::duration::parse_seconds(&duration) {
                Ok(parsed) => prop_assert!(parsed.is_finite(), "{duration} gave {parsed}"),
                Err(error) => prop_assert!(!error.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn the_rate_budget_takes_any_reading_and_any_429_without_panicking_or_waiting_past_a_day(
        used in (extreme_u64(), extreme_u64()),
        limit in (extreme_u64(), extreme_u64()),
        reset in (extreme_u64(), extreme_u64()),
        retry_after in extreme_u64(),
        calls in extreme_u64(),
        at in any_utc(),
    ) {
        let reading = RateLimitObservation {
            info: RateLimitInfo {
                short_used: used.0,
                short_limit: limit.0,
                short_reset_seconds: reset.0,
                long_used: used.1,
                long_limit: limit.1,
                long_reset_seconds: reset.1,
            },
            observed_at: at,
        };
        let state = BudgetState::initial(LimitFormula::POLAR, 0).observe(reading);
        for window in [state.short, state.long] {
            if let Some(resets_at) = window.resets_at {
                prop_assert!(resets_at >= at && resets_at - at <= LONG_WINDOW);
            }
        }
        let blocked = state.rate_limited(retry_after, at);
        let until = blocked.blocked_until.unwrap();
        prop_assert!(until >= at && until - at <= LONG_WINDOW);
        prop_assert_eq!(until, polar_wait_until(at, retry_after.max(1)));
        let _ = state.reserve(calls, 0.9, at);
        let _ = blocked.available(0.9, at);
    }

    #[test]
    fn a_token_expires_at_an_instant_or_never_whatever_its_lifetime(lifetime in extreme_i64(), issued in any_utc()) {
        let grant = TokenGrant {
            access_token: AccessToken::new("t"),
            polar_user_id: PolarUserId::new(1).unwrap(),
            expires_in_seconds: Some(lifetime),
        };
        if let Some(expires) = grant.expires_at(issued) {
            prop_assert_eq!(expires - issued, Duration::seconds(lifetime));
        }
    }

    #[test]
    fn records_with_any_times_and_numbers_map_without_panicking(
        start in any_local_time(),
        numbers in prop::collection::vec(extreme_f64(), 12),
        integers in prop::collection::vec(extreme_i64(), 8),
        offset in any::<i32>(),
        day in any_local_time(),
    ) {
        let m = Mapping::defaults();
        let n = |i: usize| Some(numbers[i]);
        let k = |i: usize| Some(integers[i]);
        let event = m.training(&Exercise {
            id: ExerciseId::parse("Xy7Qp2Lr").unwrap(),
            upload_time: None,
            device: Some("Polar".into()),
            start_time: start,
            start_time_utc_offset_minutes: offset,
            duration_seconds: n(0),
            calories: n(1),
            distance_metres: n(2),
            heart_rate_average: n(3),
            heart_rate_maximum: n(4),
            training_load: n(5),
            sport: None,
            detailed_sport_info: None,
            heart_rate_zones: vec![HeartRateZone { index: 1, in_zone_seconds: numbers[6] }],
            cardio_load: n(7),
            muscle_load: n(8),
        });
        prop_assert!(event.finish >= event.start);
        let date = day.date();
        m.activity(&DailyActivity {
            date,
            active_duration_seconds: n(9),
            calories: n(10),
            active_calories: n(11),
            steps: k(0),
            distance_from_steps_metres: n(2),
        });
        m.sleep(&Sleep {
            date,
            sleep_start: Some(DateTime::<Utc>::MAX_UTC.fixed_offset()),
            sleep_end: Some(DateTime::<Utc>::MIN_UTC.fixed_offset()),
            light_sleep_seconds: k(1),
            deep_sleep_seconds: k(2),
            rem_sleep_seconds: k(3),
            unrecognized_sleep_seconds: k(4),
            total_interruption_seconds: k(5),
            sleep_score: n(0),
            sleep_charge: n(1),
            continuity: n(2),
        });
        m.recharge(&NightlyRecharge {
            date,
            nightly_recharge_status: k(6),
            ans_charge: n(3),
            heart_rate_avg: n(4),
            heart_rate_variability_avg: n(5),
            breathing_rate_avg: n(6),
        });
    }

    #[test]
    fn optional_records_with_any_times_and_numbers_map_without_panicking(
        start in any_utc(),
        end in any_utc(),
        offset in any::<i32>(),
        numbers in prop::collection::vec(extreme_f64(), 5),
        day in any_local_time(),
        rates in prop::collection::vec(any::<u16>(), 0..600),
    ) {
        let m = Mapping::defaults();
        let date = day.date();
        let n = |i: usize| Some(numbers[i]);
        let cardio = m.cardio_load(&CardioLoad {
            date,
            status: Some("PRODUCTIVE".into()),
            cardio_load: n(0),
            strain: n(1),
            tolerance: n(2),
            cardio_load_ratio: n(3),
        });
        for (field, value) in &cardio.pairs {
            prop_assert!(!value.contains("NaN") && !value.contains("inf"), "{field} = {value}");
        }
        let period = Alertness {
            sleep_period_start: start,
            sleep_period_end: end,
            sleep_timezone_offset_minutes: offset,
            grade: n(4),
            grade_classification: None,
            sleep_inertia: None,
            sleep_type: Some("SLEEP_TYPE_SECONDARY".into()),
            validity: None,
        };
        let event = m.alertness(&period);
        prop_assert_eq!(event.start.date(), period.local_end_date());
        prop_assert!(event.finish >= event.start);
        if (0..=9999).contains(&start.year()) {
            prop_assert_eq!(LedgerKey::decode(&event.key.encode()), Some(event.key.clone()));
        }
        let heart = m.daily_heart_rate(&DailyHeartRate {
            date,
            samples: rates
                .iter()
                .map(|bpm| HeartRateSample { time: NaiveTime::MIN, heart_rate: *bpm })
                .collect(),
        });
        if let (Some(low), Some(mean), Some(high)) = (
            heart.value("Lowest HR"),
            heart.value("Average HR"),
            heart.value("Highest HR"),
        ) {
            let (low, mean, high): (f64, f64, f64) =
                (low.parse().unwrap(), mean.parse().unwrap(), high.parse().unwrap());
            prop_assert!(low <= mean + 0.05 && mean <= high + 0.05, "{low} {mean} {high}");
            let count = rates.len().to_string();
            prop_assert_eq!(heart.value("Samples"), Some(count.as_str()));
        } else {
            prop_assert!(rates.is_empty());
        }
    }

    #[test]
    fn a_lambda_deadline_of_any_size_is_an_instant(deadline in extreme_u64(), margin in extreme_u64()) {
        let _ = shared::usecase::deadline_before(deadline, margin);
    }

    #[test]
    fn identifiers_are_checked_not_trusted(text in tricky()) {
        for error in [
            AthleteUuid::parse(text.clone()).err().map(|e| e.to_string()),
            ExerciseId::parse(text.clone()).err().map(|e| e.to_string()),
            PolarUserId::parse(&text).err().map(|e| e.to_string()),
            AuthState::parse(&text).err().map(|e| e.to_string()),
        ].into_iter().flatten() {
            clear_error(&error)?;
        }
    }
}

fn key() -> EncryptionKey {
    EncryptionKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
        .unwrap()
}

/// A complete secret JSON whose secret values all carry [`MARKER`].
fn secret_json() -> Value {
    let values: BTreeMap<&str, String> = [
        ("polar_client_id", "client-id".to_string()),
        ("polar_client_secret", format!("{MARKER}-client")),
        ("smartabase_username", "api.user".to_string()),
        ("smartabase_password", format!("{MARKER}-password")),
        ("link_signing_key", format!("{MARKER}-link")),
        (
            "token_encryption_key",
            base64::engine::general_purpose::STANDARD.encode(MARKER.as_bytes()),
        ),
        ("revoke_hook_secret", format!("{MARKER}-revoke")),
        ("polar_webhook_secret", format!("{MARKER}-webhook")),
    ]
    .into();
    serde_json::to_value(values).unwrap()
}

#[test]
fn signature_checks_compare_in_constant_time_and_refuse_every_one_bit_change() {
    // Structure: one helper holds the comparison and it is `hmac`'s constant-time `verify_slice`; every
    // signature check goes through it and none compares signatures itself.
    let source = include_str!("../src/crypto.rs");
    let helper = source
        .split("fn verify_hex(")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("crypto.rs has verify_hex");
    assert!(
        helper.contains(".verify_slice("),
        "verify_hex must use verify_slice"
    );
    for check in [
        "pub fn verify(",
        "pub fn verify_revoke_signature(",
        "pub fn verify_webhook_signature(",
    ] {
        let body = source
            .split(check)
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .unwrap_or_else(|| panic!("crypto.rs has {check}"));
        assert!(
            body.contains("verify_hex("),
            "{check} must check through verify_hex"
        );
        assert!(
            !body.contains("signature ==")
                && !body.contains("== signature")
                && !body.contains("sig =="),
            "{check} compares a signature with =="
        );
    }

    // Behaviour: a signature of the right length with any one bit flipped is refused.
    let flips = |signature: &str| -> Vec<String> {
        let bytes = hex::decode(signature).unwrap();
        (0..bytes.len() * 8)
            .map(|bit| {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                hex::encode(flipped)
            })
            .collect()
    };
    let signer = LinkSigner::new(SecretString::from("link-signing-key-0123456789"));
    let athlete = AthleteUuid::parse("athlete-1").unwrap();
    let link = signer.sign(&athlete, now() + Duration::days(1));
    let revoke_secret = SecretString::from("revoke-hook-secret-0123456789");
    let body = br#"{"athlete_uuid":"athlete-1"}"#;
    let t = now().timestamp();
    let revoke = hmac_hex(
        b"revoke-hook-secret-0123456789",
        format!("{t}.{}", String::from_utf8_lossy(body)).as_bytes(),
    );
    let webhook_secret = SecretString::from("polar-webhook-secret");
    let webhook = hmac_hex(b"polar-webhook-secret", body);
    assert_eq!(
        signer.verify(&athlete, link.expires, &link.signature, now()),
        Ok(())
    );
    assert!(
        verify_revoke_signature(
            &revoke_secret,
            Some(&format!("t={t},v1={revoke}")),
            body,
            now()
        )
        .is_ok()
    );
    assert!(verify_webhook_signature(
        &webhook_secret,
        Some(&webhook),
        body
    ));
    for (flipped_link, (flipped_revoke, flipped_webhook)) in flips(&link.signature)
        .iter()
        .zip(flips(&revoke).iter().zip(flips(&webhook).iter()))
    {
        assert_eq!(
            signer.verify(&athlete, link.expires, flipped_link, now()),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            verify_revoke_signature(
                &revoke_secret,
                Some(&format!("t={t},v1={flipped_revoke}")),
                body,
                now()
            ),
            Err(RevokeSignatureError::BadSignature)
        );
        assert!(!verify_webhook_signature(
            &webhook_secret,
            Some(flipped_webhook),
            body
        ));
    }
    assert_eq!(flips(&webhook).len(), 256);
}
