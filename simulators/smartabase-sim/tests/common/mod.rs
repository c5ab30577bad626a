//! Helpers shared by the black-box tests: a started site and an authenticated v1 client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use smartabase_sim::{NewUser, SimUser, SmartabaseSim, SmartabaseSimConfig, SmartabaseSimHandle};

/// A running site plus a client that speaks its v1 API.
pub struct Site {
    pub sim: SmartabaseSimHandle,
    pub client: reqwest::Client,
}

/// An answer: status and raw body text.
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {:?}", self.body))
    }
}

impl Site {
    pub async fn start() -> Self {
        Self::start_with(SmartabaseSimConfig::default()).await
    }

    pub async fn start_with(config: SmartabaseSimConfig) -> Self {
        let sim = SmartabaseSim::start(config).await.unwrap();
        Self {
            sim,
            client: reqwest::Client::new(),
        }
    }

    /// `{site}/api/v1/{endpoint}?informat=json&format=json`.
    pub fn url(&self, endpoint: &str) -> String {
        format!(
            "{}/api/v1/{endpoint}?informat=json&format=json",
            self.sim.site_url()
        )
    }

    /// A v1 call with the site's credentials.
    pub async fn call(&self, endpoint: &str, body: &Value) -> Answer {
        self.try_call(endpoint, body).await.unwrap()
    }

    /// A v1 call that may fail at the transport level (dropped connections).
    pub async fn try_call(&self, endpoint: &str, body: &Value) -> reqwest::Result<Answer> {
        let config = self.sim.config();
        let response = self
            .client
            .post(self.url(endpoint))
            .basic_auth(&config.username, Some(&config.password))
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        Ok(Answer { status, body })
    }

    /// A v1 call that must answer HTTP 200 with JSON.
    pub async fn call_ok(&self, endpoint: &str, body: &Value) -> Value {
        let answer = self.call(endpoint, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{endpoint}: {}", answer.body);
        answer.json()
    }

    /// Adds an athlete with a UUID.
    pub fn athlete(&self, first: &str, last: &str) -> SimUser {
        self.sim.add_user(NewUser {
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            uuid: format!("uuid-{}-{}", first.to_lowercase(), last.to_lowercase()),
            ..NewUser::default()
        })
    }

    /// The control API URL for `path` (below `/_sim/`).
    pub fn control(&self, path: &str) -> String {
        format!("{}/_sim/{path}", self.sim.base_url())
    }
}

/// A `Polar Sleep` event for `user_id`; the caller adjusts dates, times and pairs.
pub fn sleep_event(user_id: i64, start: (&str, &str), finish: (&str, &str)) -> Value {
    json!({
        "formName": "Polar Sleep",
        "startDate": start.0,
        "startTime": start.1,
        "finishDate": finish.0,
        "finishTime": finish.1,
        "userId": {"userId": user_id},
        "enteredByUserId": 120855,
        "rows": [{"row": 0, "pairs": [
            {"key": "Sleep Date", "value": finish.0},
            {"key": "Sleep Score", "value": "78"},
        ]}],
    })
}

/// A `Polar Activity` event for one day (12:00 AM sent as `00:00 AM`).
pub fn activity_event(user_id: i64, date: &str, steps: &str) -> Value {
    json!({
        "formName": "Polar Activity",
        "startDate": date,
        "startTime": "00:00 AM",
        "finishDate": date,
        "finishTime": "11:59 PM",
        "userId": {"userId": user_id},
        "rows": [{"row": 0, "pairs": [
            {"key": "Activity Date", "value": date},
            {"key": "Steps", "value": steps},
        ]}],
    })
}

/// The ids of a successful `eventsimport` answer (first form).
pub fn batch_ids(answer: &Value) -> Vec<i64> {
    assert_eq!(
        answer["result"]["state"], "SUCCESSFULLY_IMPORTED",
        "not imported: {answer}"
    );
    answer["eventImportResultForForm"][0]["eventImportResults"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect()
}
