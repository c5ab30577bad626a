//! The store contract: one suite of generic checks run against `MemoryStore` and against `DynamoStore`
//! on moto (a fresh table per test), so the in-memory fake cannot drift from the real store.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use futures::future::join_all;
use shared::budget::{BudgetState, LimitFormula};
use shared::crypto::SealedToken;
use shared::ids::{AthleteUuid, AuthState, EventId, ExerciseId, PolarUserId, SmartabaseUserId};
use shared::model::{
    Athlete, AthleteStatus, BackfillProgress, DataKind, LAST_ERROR_MAX_BYTES, LedgerEntry,
    LedgerKey, LedgerState, ListRead, PendingLink, RecordKey, StoredToken, SyncCursors, SyncLock,
    TokenSource,
};
use shared::store::{Locking, PageToken, Store, StoreError, StoredState};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn uuid(value: &str) -> AthleteUuid {
    AthleteUuid::parse(value).unwrap()
}

fn linked(id: &str, due: Option<DateTime<Utc>>) -> Athlete {
    let mut athlete = Athlete::new(uuid(id));
    athlete.set_status(AthleteStatus::Linked, t0());
    athlete.next_sync_due = due;
    athlete
}

async fn create<S: Store>(store: &S, athlete: Athlete) -> Athlete {
    store.save_athlete(&athlete).await.unwrap()
}

/// The due listing at `now`, as UUIDs in the order given.
async fn all_due<S: Store>(store: &S, now: DateTime<Utc>) -> Vec<AthleteUuid> {
    let listing = store.due_athletes(now).await.unwrap();
    assert_eq!(listing.skipped, 0);
    assert!(
        listing.due.iter().all(|d| d.due <= now),
        "listed an athlete not yet due"
    );
    listing.due.into_iter().map(|d| d.uuid).collect()
}

/// Every page of `list_athletes`, checking each respects `limit`.
async fn all_listed<S: Store>(
    store: &S,
    status: Option<AthleteStatus>,
    limit: usize,
) -> Vec<Athlete> {
    let mut all = Vec::new();
    let mut page: Option<PageToken> = None;
    for _ in 0..100 {
        let got = store.list_athletes(status, page, limit).await.unwrap();
        assert!(
            got.items.len() <= limit,
            "page of {} > {limit}",
            got.items.len()
        );
        all.extend(got.items);
        match got.next {
            Some(next) => page = Some(next),
            None => return all,
        }
    }
    panic!("list_athletes did not end");
}

async fn athlete_round_trips_with_optimistic_versions<S: Store>(store: &S) {
    let id = uuid("505050");
    assert_eq!(store.get_athlete(&id).await.unwrap(), None);

    let full = Athlete {
        uuid: id.clone(),
        smartabase_user_id: Some(SmartabaseUserId::new(4711).unwrap()),
        status: AthleteStatus::Linked,
        polar_user_id: Some(PolarUserId::new(48_211_902).unwrap()),
        linked_at: Some(t0() + Duration::nanoseconds(123_456_789)),
        status_changed_at: Some(t0()),
        last_sync_at: Some(t0() - Duration::minutes(5)),
        next_sync_due: Some(t0() + Duration::minutes(55)),
        queued_until: Some(t0() + Duration::hours(2)),
        roster_seen_at: Some(t0() - Duration::days(1)),
        cursors: SyncCursors {
            exercises_uploaded_since: Some(t0() - Duration::days(2)),
            backfill: [(
                DataKind::Activity,
                BackfillProgress {
                    floor: t0().date_naive() - Duration::days(364),
                    next_to: t0().date_naive() - Duration::days(83),
                    oldest_delivered: Some(t0().date_naive() - Duration::days(80)),
                    finished: None,
                },
            )]
            .into(),
            lists: [(
                DataKind::Sleep,
                ListRead {
                    at: t0() - Duration::minutes(5),
                    newest: Some(t0().date_naive()),
                },
            )]
            .into(),
            utc_offset_minutes: Some(-570),
            confirmed_lists: [(
                DataKind::Sleep,
                "5f0c1d2e3a4b5c6d7e8f901a2b3c4d5e".to_string(),
            )]
            .into(),
            confirmed_lists_at_lock: Some(6),
            uncounted_lists: Default::default(),
        },
        last_error: Some("Smartabase 503".into()),
        sync_lock: Some(SyncLock {
            owner: "job-1".to_string(),
            until: t0() + Duration::seconds(180),
        }),
        locks_taken: 7,
        version: 0,
    };
    let saved = store.save_athlete(&full).await.unwrap();
    assert_eq!(saved.version, 1);
    assert_eq!(
        saved,
        Athlete {
            version: 1,
            ..full.clone()
        }
    );
    assert_eq!(store.get_athlete(&id).await.unwrap(), Some(saved.clone()));

    // Creating again (version 0) is a conflict: someone created it first.
    assert!(matches!(
        store.save_athlete(&full).await,
        Err(StoreError::Conflict(_))
    ));

    // Clearing optional fields is stored too.
    let mut cleared = saved.clone();
    cleared.smartabase_user_id = None;
    cleared.polar_user_id = None;
    cleared.linked_at = None;
    cleared.last_sync_at = None;
    cleared.queued_until = None;
    cleared.roster_seen_at = None;
    cleared.cursors = SyncCursors::default();
    cleared.last_error = None;
    cleared.set_status(AthleteStatus::Revoked, t0() + Duration::minutes(1));
    let second = store.save_athlete(&cleared).await.unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(store.get_athlete(&id).await.unwrap(), Some(second.clone()));
    assert_eq!(second.next_sync_due, None);

    // A writer holding version 1 lost the race.
    let mut stale = saved;
    stale.last_error = Some("stale".into());
    assert!(matches!(
        store.save_athlete(&stale).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_athlete(&id).await.unwrap(), Some(second));

    // A version that never existed is a conflict too.
    let mut unknown = Athlete::new(uuid("never-saved"));
    unknown.version = 3;
    assert!(matches!(
        store.save_athlete(&unknown).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_athlete(&uuid("never-saved")).await.unwrap(), None);
}

async fn a_long_last_error_is_stored_bounded<S: Store>(store: &S) {
    let mut a = linked("long-error", None);
    let long = "Smartabase rejected é€𝄞 ".repeat(200);
    a.last_error = Some(long.clone().into());
    let saved = store.save_athlete(&a).await.unwrap();
    let stored = store.get_athlete(&a.uuid).await.unwrap().unwrap();
    assert_eq!(stored, saved);
    let error = stored.last_error.unwrap();
    assert!(error.len() <= LAST_ERROR_MAX_BYTES, "{} bytes", error.len());
    let kept = error.strip_suffix('…').unwrap();
    assert!(long.starts_with(kept), "{error}");
}

async fn due_athletes_come_oldest_first_with_their_markers<S: Store>(store: &S) {
    let now = t0();
    // Due in the past at distinct times, one exactly now, two tied (UUID breaks the tie), one in the future.
    let due = [
        ("d-late", now - Duration::minutes(1)),
        ("d-early", now - Duration::hours(3)),
        ("d-now", now),
        ("tie-b", now - Duration::hours(1)),
        ("tie-a", now - Duration::hours(1)),
        (
            "d-mid",
            now - Duration::minutes(30) - Duration::nanoseconds(1),
        ),
        ("future", now + Duration::seconds(1)),
    ];
    for (id, at) in due {
        create(store, linked(id, Some(at))).await;
    }
    // More than one BatchGetItem's worth (100 keys) of due athletes.
    let bulk: Vec<String> = (0..105).map(|i| format!("bulk-{i:03}")).collect();
    for id in &bulk {
        create(store, linked(id, Some(now - Duration::days(1)))).await;
    }
    // Not due: linked without a due time, and not linked (even with a due time set directly).
    create(store, linked("no-due", None)).await;
    let mut unlinked = Athlete::new(uuid("unlinked"));
    unlinked.next_sync_due = Some(now - Duration::hours(5));
    create(store, unlinked).await;

    let mut expected = bulk.clone();
    expected.extend(["d-early", "tie-a", "tie-b", "d-mid", "d-late", "d-now"].map(String::from));
    let got: Vec<String> = all_due(store, now)
        .await
        .into_iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(got, expected);

    // The listing carries each athlete's due time and queued marker (set, lapsed or none).
    assert!(
        store
            .mark_queued(&uuid("tie-a"), now + Duration::hours(2), now)
            .await
            .unwrap()
    );
    let listing = store.due_athletes(now).await.unwrap().due;
    let entry = |id: &str| listing.iter().find(|d| d.uuid == uuid(id)).unwrap().clone();
    assert_eq!(
        entry("d-mid").due,
        now - Duration::minutes(30) - Duration::nanoseconds(1)
    );
    assert_eq!(entry("tie-a").queued_until, Some(now + Duration::hours(2)));
    assert!(entry("tie-a").queued_at(now) && !entry("tie-a").queued_at(now + Duration::hours(3)));
    assert_eq!(entry("tie-b").queued_until, None);
    assert!(!entry("tie-b").queued_at(now));
    // And whether a sync ever finished for them.
    assert!(entry("d-mid").never_synced);
    let mut synced = store.get_athlete(&uuid("d-mid")).await.unwrap().unwrap();
    synced.last_sync_at = Some(now - Duration::hours(2));
    store.save_athlete(&synced).await.unwrap();
    let listing = store.due_athletes(now).await.unwrap().due;
    let entry = |id: &str| listing.iter().find(|d| d.uuid == uuid(id)).unwrap().clone();
    assert!(!entry("d-mid").never_synced);
    assert!(entry("tie-b").never_synced);

    // Leaving `Linked` or moving the due time later takes an athlete out of the due list.
    let mut early = store.get_athlete(&uuid("d-early")).await.unwrap().unwrap();
    early.set_status(AthleteStatus::NeedsReauthorisation, now);
    store.save_athlete(&early).await.unwrap();
    let mut late = store.get_athlete(&uuid("d-late")).await.unwrap().unwrap();
    late.next_sync_due = Some(now + Duration::hours(1));
    store.save_athlete(&late).await.unwrap();
    let got: HashSet<String> = all_due(store, now)
        .await
        .into_iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(got.len(), expected.len() - 2);
    assert!(!got.contains("d-early") && !got.contains("d-late"));
    // Later, the future one is due too.
    assert!(
        all_due(store, now + Duration::hours(2))
            .await
            .contains(&uuid("future"))
    );
}

async fn listings_page_by_status_then_uuid<S: Store>(store: &S) {
    let statuses = [
        ("m", AthleteStatus::Linked),
        ("c", AthleteStatus::Unlinked),
        ("k", AthleteStatus::Linked),
        ("z", AthleteStatus::Revoked),
        ("a", AthleteStatus::Linked),
        ("q", AthleteStatus::NeedsReauthorisation),
        ("b", AthleteStatus::Removed),
        ("y", AthleteStatus::Unlinked),
        ("e", AthleteStatus::Linked),
    ];
    for (id, status) in statuses {
        let mut athlete = Athlete::new(uuid(id));
        athlete.set_status(status, t0());
        create(store, athlete).await;
    }
    let linked: Vec<String> = all_listed(store, Some(AthleteStatus::Linked), 2)
        .await
        .into_iter()
        .map(|a| a.uuid.to_string())
        .collect();
    assert_eq!(linked, ["a", "e", "k", "m"]);
    assert!(
        all_listed(store, Some(AthleteStatus::Revoked), 10)
            .await
            .iter()
            .all(|a| a.status == AthleteStatus::Revoked && a.version == 1)
    );

    let rank = |s: AthleteStatus| AthleteStatus::ALL.iter().position(|x| *x == s);
    let mut expected: Vec<(Option<usize>, String)> = statuses
        .iter()
        .map(|(id, s)| (rank(*s), id.to_string()))
        .collect();
    expected.sort();
    for limit in [1, 3, 4, 100] {
        let all: Vec<(Option<usize>, String)> = all_listed(store, None, limit)
            .await
            .into_iter()
            .map(|a| (rank(a.status), a.uuid.to_string()))
            .collect();
        assert_eq!(all, expected, "limit {limit}");
    }

    // A status change moves the athlete between listings.
    let mut moved = store.get_athlete(&uuid("k")).await.unwrap().unwrap();
    moved.set_status(AthleteStatus::Revoked, t0());
    store.save_athlete(&moved).await.unwrap();
    let linked = all_listed(store, Some(AthleteStatus::Linked), 10).await;
    assert!(linked.iter().all(|a| a.uuid != uuid("k")));
    assert_eq!(linked.len(), 3);
    let revoked = all_listed(store, Some(AthleteStatus::Revoked), 10).await;
    assert_eq!(
        revoked
            .iter()
            .map(|a| a.uuid.to_string())
            .collect::<Vec<_>>(),
        ["k", "z"]
    );
}

async fn polar_user_finds_the_linked_athlete<S: Store>(store: &S) {
    let user = PolarUserId::new(777).unwrap();
    assert_eq!(store.athlete_for_polar_user(user).await.unwrap(), None);

    let mut first = linked("first", Some(t0()));
    first.polar_user_id = Some(user);
    first.linked_at = Some(t0() - Duration::days(30));
    let first = create(store, first).await;
    assert_eq!(
        store.athlete_for_polar_user(user).await.unwrap(),
        Some(uuid("first"))
    );

    // The same Polar account linked again by another athlete after the first was revoked.
    let mut revoked = first.clone();
    revoked.set_status(AthleteStatus::Revoked, t0());
    store.save_athlete(&revoked).await.unwrap();
    let mut second = linked("second", Some(t0()));
    second.polar_user_id = Some(user);
    second.linked_at = Some(t0() - Duration::days(40));
    create(store, second).await;
    assert_eq!(
        store.athlete_for_polar_user(user).await.unwrap(),
        Some(uuid("second")),
        "the linked athlete wins over a more recently linked revoked one"
    );

    // Dropping the id takes the athlete out of the index.
    let mut second = store.get_athlete(&uuid("second")).await.unwrap().unwrap();
    second.polar_user_id = None;
    store.save_athlete(&second).await.unwrap();
    assert_eq!(
        store.athlete_for_polar_user(user).await.unwrap(),
        Some(uuid("first"))
    );
    assert_eq!(
        store
            .athlete_for_polar_user(PolarUserId::new(778).unwrap())
            .await
            .unwrap(),
        None
    );
}

async fn queued_marker_guards_the_fanout<S: Store>(store: &S) {
    let now = t0();
    let id = uuid("queued");
    let until = now + Duration::hours(2);
    assert!(
        !store.mark_queued(&id, until, now).await.unwrap(),
        "unknown athlete"
    );
    store.clear_queued(&id).await.unwrap();
    assert_eq!(
        store.get_athlete(&id).await.unwrap(),
        None,
        "clear creates nothing"
    );

    let unlinked = create(store, Athlete::new(id.clone())).await;
    assert!(
        !store.mark_queued(&id, until, now).await.unwrap(),
        "not linked"
    );

    let mut athlete = unlinked;
    athlete.set_status(AthleteStatus::Linked, now);
    let athlete = store.save_athlete(&athlete).await.unwrap();
    assert!(store.mark_queued(&id, until, now).await.unwrap());
    assert!(
        !store
            .mark_queued(&id, until, now + Duration::minutes(5))
            .await
            .unwrap()
    );
    let stored = store.get_athlete(&id).await.unwrap().unwrap();
    assert_eq!(stored.queued_until, Some(until));
    assert!(
        stored.version > athlete.version,
        "the marker moves the version"
    );
    // A job that read the athlete before the fan-out marked it cannot write the old marker back.
    let mut stale = athlete.clone();
    stale.last_error = Some("a job read before the marker".into());
    assert!(matches!(
        store.save_athlete(&stale).await,
        Err(StoreError::Conflict(_))
    ));
    let cleared_from = store.get_athlete(&id).await.unwrap().unwrap();
    store.clear_queued(&id).await.unwrap();
    assert!(
        store.get_athlete(&id).await.unwrap().unwrap().version > cleared_from.version,
        "clearing moves the version too"
    );
    assert!(store.mark_queued(&id, until, now).await.unwrap());

    // A lapsed marker (the job was lost) can be taken again.
    let later = until + Duration::seconds(1);
    assert!(
        store
            .mark_queued(&id, later + Duration::hours(2), later)
            .await
            .unwrap()
    );

    store.clear_queued(&id).await.unwrap();
    assert_eq!(
        store.get_athlete(&id).await.unwrap().unwrap().queued_until,
        None
    );
    assert!(store.mark_queued(&id, until, now).await.unwrap());

    // A save carrying the marker's absence clears it (the revoke path does this).
    let mut current = store.get_athlete(&id).await.unwrap().unwrap();
    current.queued_until = None;
    store.save_athlete(&current).await.unwrap();
    assert_eq!(
        store.get_athlete(&id).await.unwrap().unwrap().queued_until,
        None
    );
}

async fn the_fanouts_marker_needs_the_athlete_still_due<S: Store>(store: &S) {
    let now = t0();
    let until = now + Duration::hours(2);
    // Synced since the fan-out's listing: next due an interval later.
    let synced = create(
        store,
        linked("fan-synced", Some(now + Duration::minutes(59))),
    )
    .await;
    assert!(
        !store
            .mark_due_queued(&synced.uuid, until, now)
            .await
            .unwrap()
    );
    let stored = store.get_athlete(&synced.uuid).await.unwrap().unwrap();
    assert_eq!(
        (stored.queued_until, stored.version),
        (None, synced.version)
    );
    // The webhook's and the link's marker does not ask.
    assert!(store.mark_queued(&synced.uuid, until, now).await.unwrap());

    // Due (exactly now, or earlier): marked once, like `mark_queued`.
    for (id, due) in [("fan-now", now), ("fan-late", now - Duration::hours(3))] {
        let athlete = create(store, linked(id, Some(due))).await;
        assert!(
            store
                .mark_due_queued(&athlete.uuid, until, now)
                .await
                .unwrap()
        );
        assert!(
            !store
                .mark_due_queued(&athlete.uuid, until, now)
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .get_athlete(&athlete.uuid)
                .await
                .unwrap()
                .unwrap()
                .queued_until,
            Some(until)
        );
    }
    // Linked without a due time, or not linked: never.
    let no_due = create(store, linked("fan-no-due", None)).await;
    assert!(
        !store
            .mark_due_queued(&no_due.uuid, until, now)
            .await
            .unwrap()
    );
    let mut unlinked = Athlete::new(uuid("fan-unlinked"));
    unlinked.next_sync_due = Some(now - Duration::hours(1));
    let unlinked = create(store, unlinked).await;
    assert!(
        !store
            .mark_due_queued(&unlinked.uuid, until, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_due_queued(&uuid("fan-unknown"), until, now)
            .await
            .unwrap()
    );
}

async fn tokens_are_replaced_and_deleted<S: Store>(store: &S) {
    let id = uuid("token-owner");
    assert_eq!(store.get_token(&id).await.unwrap(), None);
    let token = StoredToken {
        sealed: SealedToken::from_stored("v1.bm9uY2U.Y2lwaGVy".to_string()),
        polar_user_id: Some(PolarUserId::new(99).unwrap()),
        issued_at: t0(),
        expires_at: Some(t0() + Duration::days(365)),
        source: TokenSource::WebFlow,
        fingerprint: "ab".repeat(32),
    };
    store.put_token(&id, &token).await.unwrap();
    assert_eq!(store.get_token(&id).await.unwrap(), Some(token.clone()));

    let replacement = StoredToken {
        sealed: SealedToken::from_stored("v1.other".to_string()),
        polar_user_id: None,
        expires_at: None,
        source: TokenSource::AthleteApp,
        ..token
    };
    store.put_token(&id, &replacement).await.unwrap();
    assert_eq!(store.get_token(&id).await.unwrap(), Some(replacement));
    assert_eq!(store.get_token(&uuid("someone-else")).await.unwrap(), None);

    store.delete_token(&id).await.unwrap();
    assert_eq!(store.get_token(&id).await.unwrap(), None);
    store.delete_token(&id).await.unwrap();
}

fn pending(athlete: &str, fingerprint: &str, replaces: Option<i64>) -> PendingLink {
    PendingLink {
        athlete: uuid(athlete),
        token: StoredToken {
            sealed: SealedToken::from_stored(format!("v1.{fingerprint}")),
            polar_user_id: Some(PolarUserId::new(7).unwrap()),
            issued_at: t0(),
            expires_at: None,
            source: TokenSource::WebFlow,
            fingerprint: fingerprint.to_string(),
        },
        replaces: replaces.map(|id| PolarUserId::new(id).unwrap()),
    }
}

async fn pending_links_are_kept_per_token_listed_in_pages_and_deleted<S: Store>(store: &S) {
    let first = pending("pending-a", &"1".repeat(64), None);
    let other_token = pending("pending-a", &"2".repeat(64), Some(5));
    let other_athlete = pending("pending-b", &"1".repeat(64), None);
    for link in [&first, &other_token, &other_athlete] {
        store.put_pending_link(link).await.unwrap();
    }
    assert_eq!(
        store
            .pending_link(&first.athlete, &first.token.fingerprint)
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store
            .pending_link(&uuid("pending-c"), &first.token.fingerprint)
            .await
            .unwrap(),
        None
    );
    // Stored again with what it replaced: one item, updated.
    let updated = PendingLink {
        replaces: Some(PolarUserId::new(3).unwrap()),
        ..first.clone()
    };
    store.put_pending_link(&updated).await.unwrap();

    let mut listed = Vec::new();
    let mut page = None;
    loop {
        let listing = store.pending_links(page, 2).await.unwrap();
        assert!(listing.items.len() <= 2);
        listed.extend(listing.items);
        match listing.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.contains(&updated));
    assert!(listed.contains(&other_token));
    assert!(listed.contains(&other_athlete));

    store
        .delete_pending_link(&first.athlete, &first.token.fingerprint)
        .await
        .unwrap();
    store
        .delete_pending_link(&first.athlete, &first.token.fingerprint)
        .await
        .unwrap();
    let left = store.pending_links(None, 10).await.unwrap();
    assert_eq!(left.items.len(), 2);
    assert!(!left.items.contains(&updated));
}

async fn auth_states_are_single_use_and_expire<S: Store>(store: &S) {
    let athlete = uuid("state-owner");
    let state = AuthState::generate();
    let expires = t0() + Duration::minutes(15);
    let browser = "cd".repeat(32);
    store
        .put_state(&state, &athlete, &browser, expires)
        .await
        .unwrap();
    assert!(matches!(
        store.put_state(&state, &athlete, &browser, expires).await,
        Err(StoreError::Conflict(_))
    ));
    // Reading does not consume; it gives the browser binding.
    for _ in 0..2 {
        assert_eq!(
            store
                .get_state(&state, t0() + Duration::minutes(14))
                .await
                .unwrap(),
            Some(StoredState {
                athlete: athlete.clone(),
                browser_hash: Some(browser.clone()),
            })
        );
    }
    assert_eq!(store.get_state(&state, expires).await.unwrap(), None);
    assert_eq!(
        store
            .take_state(&state, t0() + Duration::minutes(14))
            .await
            .unwrap(),
        Some(athlete.clone())
    );
    assert_eq!(
        store.take_state(&state, t0()).await.unwrap(),
        None,
        "single use"
    );
    assert_eq!(store.get_state(&state, t0()).await.unwrap(), None);

    // Expired but not yet removed by TTL: absent, and consumed.
    let old = AuthState::generate();
    store
        .put_state(&old, &athlete, &browser, expires)
        .await
        .unwrap();
    assert_eq!(
        store.take_state(&old, expires).await.unwrap(),
        None,
        "expiry is exclusive"
    );
    assert_eq!(store.take_state(&old, t0()).await.unwrap(), None);

    assert_eq!(
        store
            .take_state(&AuthState::generate(), t0())
            .await
            .unwrap(),
        None
    );
}

async fn one_of_twenty_concurrent_takes_wins<S: Store>(store: &S) {
    let state = AuthState::generate();
    store
        .put_state(
            &state,
            &uuid("racer"),
            &"ef".repeat(32),
            t0() + Duration::minutes(15),
        )
        .await
        .unwrap();
    let results = join_all((0..20).map(|_| store.take_state(&state, t0()))).await;
    let winners = results
        .into_iter()
        .map(Result::unwrap)
        .filter(Option::is_some)
        .count();
    assert_eq!(winners, 1);
}

fn entry(hash: &str, event: Option<i64>, state: LedgerState) -> LedgerEntry {
    LedgerEntry {
        content_hash: hash.to_string(),
        event_id: event.map(|id| EventId::new(id).unwrap()),
        state,
        event_start_date: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
        updated_at: t0(),
    }
}

fn exercise_key(id: &str) -> LedgerKey {
    LedgerKey {
        kind: DataKind::Training,
        record: RecordKey::Exercise(ExerciseId::parse(id).unwrap()),
    }
}

fn day_key(kind: DataKind, day: u32) -> LedgerKey {
    LedgerKey {
        kind,
        record: RecordKey::Date(
            NaiveDate::from_ymd_opt(2026, 10, 1).unwrap() + Duration::days(day.into()),
        ),
    }
}

async fn ledger_reads_writes_and_counts<S: Store>(store: &S) {
    let athlete = uuid("ledger-owner");
    let other = uuid("ledger-other");
    let training = exercise_key("Xy7Qp2Lr");
    let sleep = day_key(DataKind::Sleep, 3);
    let activity = day_key(DataKind::Activity, 3);
    let missing = day_key(DataKind::Recharge, 3);
    assert!(
        store
            .ledger_get(&athlete, std::slice::from_ref(&training))
            .await
            .unwrap()
            .is_empty()
    );

    store
        .ledger_put(
            &athlete,
            &[
                (training.clone(), entry("h1", None, LedgerState::Pending)),
                (sleep.clone(), entry("h2", Some(12), LedgerState::Confirmed)),
                (
                    activity.clone(),
                    entry("h3", Some(13), LedgerState::LookedUp),
                ),
            ],
        )
        .await
        .unwrap();
    store
        .ledger_put(
            &other,
            &[(missing.clone(), entry("x", None, LedgerState::Pending))],
        )
        .await
        .unwrap();
    let got = store
        .ledger_get(
            &athlete,
            &[
                training.clone(),
                sleep.clone(),
                missing.clone(),
                sleep.clone(),
                activity.clone(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        got.len(),
        3,
        "the missing key is absent, the repeated one counted once"
    );
    assert_eq!(got[&training], entry("h1", None, LedgerState::Pending));
    assert_eq!(got[&sleep], entry("h2", Some(12), LedgerState::Confirmed));
    assert_eq!(got[&activity], entry("h3", Some(13), LedgerState::LookedUp));

    // Replacing an entry (confirming it); of two writes to one key in a call, the last wins.
    store
        .ledger_put(
            &athlete,
            &[
                (training.clone(), entry("stale", None, LedgerState::Pending)),
                (
                    training.clone(),
                    entry("h1", Some(11), LedgerState::Confirmed),
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .ledger_get(&athlete, std::slice::from_ref(&training))
            .await
            .unwrap()[&training],
        entry("h1", Some(11), LedgerState::Confirmed)
    );

    let counts = store.ledger_counts(&athlete).await.unwrap();
    let expected: HashMap<String, u64> = [
        ("training", 1),
        ("activity", 1),
        ("sleep", 1),
        ("recharge", 0),
        ("cardio_load", 0),
        ("alertness", 0),
        ("daily_heart_rate", 0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(counts, expected);
    assert_eq!(store.ledger_counts(&other).await.unwrap()["recharge"], 1);
}

async fn ledger_keeps_the_optional_forms_records_apart<S: Store>(store: &S) {
    let athlete = uuid("optional-forms");
    let night_start = Utc.with_ymd_and_hms(2026, 10, 3, 21, 14, 5).unwrap();
    // A nap the next afternoon: its event has the same local date as the night's.
    let nap_start = Utc.with_ymd_and_hms(2026, 10, 4, 13, 2, 40).unwrap();
    let night = LedgerKey {
        kind: DataKind::Alertness,
        record: RecordKey::sleep_period(night_start),
    };
    let nap = LedgerKey {
        kind: DataKind::Alertness,
        record: RecordKey::sleep_period(nap_start),
    };
    let cardio = day_key(DataKind::CardioLoad, 3);
    let heart = day_key(DataKind::DailyHeartRate, 3);
    store
        .ledger_put(
            &athlete,
            &[
                (night.clone(), entry("n", Some(21), LedgerState::Confirmed)),
                (nap.clone(), entry("p", Some(22), LedgerState::Confirmed)),
                (cardio.clone(), entry("c", Some(23), LedgerState::Confirmed)),
                (heart.clone(), entry("h", None, LedgerState::Pending)),
            ],
        )
        .await
        .unwrap();
    let got = store
        .ledger_get(
            &athlete,
            &[night.clone(), nap.clone(), cardio.clone(), heart.clone()],
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[&night], entry("n", Some(21), LedgerState::Confirmed));
    assert_eq!(got[&nap], entry("p", Some(22), LedgerState::Confirmed));
    assert_eq!(got[&cardio], entry("c", Some(23), LedgerState::Confirmed));
    assert_eq!(got[&heart], entry("h", None, LedgerState::Pending));
    let counts = store.ledger_counts(&athlete).await.unwrap();
    assert_eq!(
        (
            counts["alertness"],
            counts["cardio_load"],
            counts["daily_heart_rate"],
            counts["sleep"]
        ),
        (2, 1, 1, 0)
    );
}

async fn ledger_handles_more_than_one_batch<S: Store>(store: &S) {
    // 130 entries: more than BatchWriteItem's 25 and BatchGetItem's 100 per call.
    let athlete = uuid("busy-athlete");
    let entries: Vec<(LedgerKey, LedgerEntry)> = (0..130)
        .map(|i| {
            let kind = if i % 2 == 0 {
                DataKind::Sleep
            } else {
                DataKind::Activity
            };
            (
                day_key(kind, i),
                entry(
                    &format!("h{i}"),
                    Some(i64::from(i) + 1),
                    LedgerState::Confirmed,
                ),
            )
        })
        .collect();
    store.ledger_put(&athlete, &entries).await.unwrap();
    let keys: Vec<LedgerKey> = entries.iter().map(|(k, _)| k.clone()).collect();
    let got = store.ledger_get(&athlete, &keys).await.unwrap();
    assert_eq!(got.len(), 130);
    for (key, value) in &entries {
        assert_eq!(&got[key], value);
    }
    let counts = store.ledger_counts(&athlete).await.unwrap();
    assert_eq!(
        (counts["sleep"], counts["activity"], counts["training"]),
        (65, 65, 0)
    );
}

async fn locks_exclude_until_released_or_lapsed<S: Store>(store: &S) {
    let id = uuid("locked");
    let now = t0();
    let until = now + Duration::minutes(3);
    let lock = |owner: &'static str| store.try_lock(&id, owner, now, until);
    assert_eq!(lock("worker-a").await.unwrap(), Locking::NoAthlete);
    let athlete = store.save_athlete(&Athlete::new(id.clone())).await.unwrap();

    // Taking the lock hands back the athlete as locked, and moves its version: a writer that read it
    // before cannot put it back unlocked.
    let Locking::Taken(locked) = lock("worker-a").await.unwrap() else {
        panic!("the lock was free");
    };
    let expected = Athlete {
        sync_lock: Some(SyncLock {
            owner: "worker-a".to_string(),
            until,
        }),
        locks_taken: athlete.locks_taken + 1,
        version: athlete.version + 1,
        ..athlete.clone()
    };
    assert_eq!(*locked, expected);
    assert_eq!(store.get_athlete(&id).await.unwrap(), Some(expected));
    assert!(matches!(
        store.save_athlete(&athlete).await,
        Err(StoreError::Conflict(_))
    ));

    assert_eq!(lock("worker-b").await.unwrap(), Locking::Busy);
    assert_eq!(
        lock("worker-a").await.unwrap(),
        Locking::Busy,
        "not re-entrant"
    );
    assert_eq!(
        store
            .try_lock(&id, "worker-b", until, until + Duration::minutes(3))
            .await
            .unwrap(),
        Locking::Busy,
        "held through its last second"
    );
    // Someone else's unlock releases nothing.
    store.unlock(&id, "worker-b", None).await.unwrap();
    assert_eq!(lock("worker-b").await.unwrap(), Locking::Busy);
    // The owner's does.
    store.unlock(&id, "worker-a", None).await.unwrap();
    let Locking::Taken(locked) = lock("worker-b").await.unwrap() else {
        panic!("released");
    };
    // So does the owner's save of the athlete without it.
    let released = store
        .save_athlete(&Athlete {
            sync_lock: None,
            ..*locked
        })
        .await
        .unwrap();
    assert_eq!(store.get_athlete(&id).await.unwrap(), Some(released));
    assert!(matches!(lock("worker-c").await.unwrap(), Locking::Taken(_)));

    // A crashed owner's lock lapses; its late unlock then leaves the new owner's lock alone.
    let later = until + Duration::seconds(1);
    assert!(matches!(
        store
            .try_lock(&id, "worker-d", later, later + Duration::minutes(3))
            .await
            .unwrap(),
        Locking::Taken(_)
    ));
    store.unlock(&id, "worker-c", None).await.unwrap();
    assert_eq!(
        store.try_lock(&id, "worker-e", later, later).await.unwrap(),
        Locking::Busy
    );
    // Locks are per athlete.
    let other = uuid("other");
    store
        .save_athlete(&Athlete::new(other.clone()))
        .await
        .unwrap();
    assert!(matches!(
        store
            .try_lock(&other, "worker-e", later, later)
            .await
            .unwrap(),
        Locking::Taken(_)
    ));
}

/// A full sync reads the athlete without the lock and takes it only once it has something to deliver,
/// at the version it read: any write since (another job's lock or its end, the scan, a re-link) refuses
/// it, and the job comes back later.
async fn a_lock_taken_at_the_version_read_is_refused_after_any_write<S: Store>(store: &S) {
    let id = uuid("read-first");
    let now = t0();
    let until = now + Duration::minutes(3);
    assert_eq!(
        store.lock_unchanged(&id, 1, "job-a", until).await.unwrap(),
        None,
        "no such athlete"
    );
    let read = store
        .save_athlete(&linked("read-first", Some(now)))
        .await
        .unwrap();

    // Another job's lock and its release come in between: the read is stale, and so is its version.
    let Locking::Taken(other) = store.try_lock(&id, "job-b", now, until).await.unwrap() else {
        panic!("the lock was free");
    };
    assert_eq!(
        store
            .lock_unchanged(&id, read.version, "job-a", until)
            .await
            .unwrap(),
        None,
        "held by job-b"
    );
    store.unlock(&id, "job-b", None).await.unwrap();
    assert_eq!(
        store
            .lock_unchanged(&id, other.version, "job-a", until)
            .await
            .unwrap(),
        None,
        "released since job-b locked it"
    );

    // Read again, nothing written since: the lock is the job's, with the athlete as it reads now.
    let fresh = store.get_athlete(&id).await.unwrap().unwrap();
    let Some(locked) = store
        .lock_unchanged(&id, fresh.version, "job-a", until)
        .await
        .unwrap()
    else {
        panic!("nothing was written since the read");
    };
    let expected = Athlete {
        sync_lock: Some(SyncLock {
            owner: "job-a".to_string(),
            until,
        }),
        locks_taken: fresh.locks_taken + 1,
        version: fresh.version + 1,
        ..fresh.clone()
    };
    assert_eq!(locked, expected);
    assert_eq!(store.get_athlete(&id).await.unwrap(), Some(expected));
    // It excludes like any lock, and a save from the read before it conflicts.
    assert_eq!(
        store.try_lock(&id, "job-c", now, until).await.unwrap(),
        Locking::Busy
    );
    assert!(matches!(
        store.save_athlete(&fresh).await,
        Err(StoreError::Conflict(_))
    ));
}

/// A job that stays on the queue (SQS retries it, or it comes back delayed) releases its lock and keeps
/// the fan-out from queueing a second job for the athlete in one write; a lock it no longer holds leaves
/// the athlete alone.
async fn a_job_that_stays_queued_unlocks_and_sets_the_marker_in_one_write<S: Store>(store: &S) {
    let id = uuid("parked");
    let now = t0();
    let mut athlete = Athlete::new(id.clone());
    athlete.set_status(AthleteStatus::Linked, now);
    let athlete = store.save_athlete(&athlete).await.unwrap();
    let Locking::Taken(locked) = store
        .try_lock(&id, "worker-a", now, now + Duration::minutes(3))
        .await
        .unwrap()
    else {
        panic!("the lock was free");
    };
    let queued_until = now + Duration::hours(2);
    // Not the owner: nothing changes.
    store
        .unlock(&id, "worker-b", Some(queued_until))
        .await
        .unwrap();
    assert_eq!(
        store.get_athlete(&id).await.unwrap(),
        Some((*locked).clone())
    );

    store
        .unlock(&id, "worker-a", Some(queued_until))
        .await
        .unwrap();
    let parked = store.get_athlete(&id).await.unwrap().unwrap();
    assert_eq!(parked.sync_lock, None);
    assert_eq!(parked.queued_until, Some(queued_until));
    assert_eq!(parked.version, locked.version + 1, "moves the version");
    assert_eq!(
        parked.locks_taken,
        athlete.locks_taken + 1,
        "a released lock still counts as taken"
    );
    assert_eq!(
        Athlete {
            queued_until: None,
            version: athlete.version,
            locks_taken: athlete.locks_taken,
            ..parked.clone()
        },
        athlete,
        "nothing else changes"
    );
    // The marker it set keeps the fan-out (and anyone asking to enqueue) away until it lapses.
    let later = now + Duration::hours(1);
    assert!(
        !store
            .mark_queued(&id, later + Duration::hours(2), later)
            .await
            .unwrap()
    );
    let lapsed = queued_until + Duration::seconds(1);
    assert!(
        store
            .mark_queued(&id, lapsed + Duration::hours(2), lapsed)
            .await
            .unwrap()
    );
}

async fn one_of_twenty_concurrent_locks_wins<S: Store>(store: &S) {
    let id = uuid("contended");
    store.save_athlete(&Athlete::new(id.clone())).await.unwrap();
    let owners: Vec<String> = (0..20).map(|i| format!("worker-{i}")).collect();
    let results = join_all(
        owners
            .iter()
            .map(|owner| store.try_lock(&id, owner, t0(), t0() + Duration::minutes(3))),
    )
    .await;
    let winners = results
        .into_iter()
        .map(Result::unwrap)
        .filter(|locking| matches!(locking, Locking::Taken(_)))
        .count();
    assert_eq!(winners, 1);
}

async fn budget_saves_check_the_version<S: Store>(store: &S) {
    assert_eq!(store.load_budget::<BudgetState>().await.unwrap(), None);
    let state = BudgetState::initial(LimitFormula::POLAR, 3);
    assert_eq!(store.save_budget(&state, 0).await.unwrap(), 1);
    assert!(matches!(
        store.save_budget(&state, 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.load_budget().await.unwrap(), Some((state, 1)));
    let spent = state.reserve(7, 0.9, t0()).unwrap().rate_limited(60, t0());
    assert_eq!(store.save_budget(&spent, 1).await.unwrap(), 2);
    assert!(matches!(
        store.save_budget(&state, 1).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.save_budget(&state, 5).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.load_budget().await.unwrap(), Some((spent, 2)));
}

async fn concurrent_budget_updates_lose_nothing<S: Store>(store: &S) {
    let spend_one = || async {
        for _ in 0..200 {
            let (state, version) = match store.load_budget().await.unwrap() {
                Some(found) => found,
                None => (BudgetState::initial(LimitFormula::POLAR, 0), 0),
            };
            let mut next = state;
            next.short.used += 1;
            match store.save_budget(&next, version).await {
                Ok(_) => return,
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("no progress under contention");
    };
    join_all((0..20).map(|_| spend_one())).await;
    let (state, version) = store.load_budget::<BudgetState>().await.unwrap().unwrap();
    assert_eq!((state.short.used, version), (20, 20));
}

async fn markers_are_claimed_once_until_they_lapse<S: Store>(store: &S) {
    let until = t0() + Duration::minutes(10);
    assert!(store.claim("webhook:abc", t0(), until).await.unwrap());
    assert!(
        !store
            .claim("webhook:abc", t0() + Duration::minutes(9), until)
            .await
            .unwrap()
    );
    assert!(!store.claim("webhook:abc", until, until).await.unwrap());
    assert!(store.claim("webhook:other", t0(), until).await.unwrap());
    let later = until + Duration::seconds(1);
    assert!(
        store
            .claim("webhook:abc", later, later + Duration::minutes(10))
            .await
            .unwrap()
    );
    let results = join_all((0..20).map(|_| store.claim("webhook:race", t0(), until))).await;
    assert_eq!(
        results
            .into_iter()
            .map(Result::unwrap)
            .filter(|c| *c)
            .count(),
        1
    );
}

async fn settings_round_trip<S: Store>(store: &S) {
    assert_eq!(store.get_setting("scan.cursor").await.unwrap(), None);
    store.put_setting("scan.cursor", "page-3").await.unwrap();
    store
        .put_setting("mapping", "{\"forms\": {}}")
        .await
        .unwrap();
    assert_eq!(
        store.get_setting("scan.cursor").await.unwrap().as_deref(),
        Some("page-3")
    );
    store.put_setting("scan.cursor", "").await.unwrap();
    assert_eq!(
        store.get_setting("scan.cursor").await.unwrap().as_deref(),
        Some("")
    );
    assert_eq!(
        store.get_setting("mapping").await.unwrap().as_deref(),
        Some("{\"forms\": {}}")
    );
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&shared::testing::MemoryStore::new()).await;
                }
            )*
        }

        mod dynamo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let moto = testkit::moto::shared().await;
                    let store = moto.new_store("contract").await.unwrap();
                    super::$name(&store).await;
                }
            )*
        }
    };
}

contract!(
    athlete_round_trips_with_optimistic_versions,
    a_long_last_error_is_stored_bounded,
    due_athletes_come_oldest_first_with_their_markers,
    listings_page_by_status_then_uuid,
    polar_user_finds_the_linked_athlete,
    queued_marker_guards_the_fanout,
    the_fanouts_marker_needs_the_athlete_still_due,
    tokens_are_replaced_and_deleted,
    pending_links_are_kept_per_token_listed_in_pages_and_deleted,
    auth_states_are_single_use_and_expire,
    one_of_twenty_concurrent_takes_wins,
    ledger_reads_writes_and_counts,
    ledger_keeps_the_optional_forms_records_apart,
    ledger_handles_more_than_one_batch,
    locks_exclude_until_released_or_lapsed,
    a_lock_taken_at_the_version_read_is_refused_after_any_write,
    a_job_that_stays_queued_unlocks_and_sets_the_marker_in_one_write,
    one_of_twenty_concurrent_locks_wins,
    budget_saves_check_the_version,
    concurrent_budget_updates_lose_nothing,
    markers_are_claimed_once_until_they_lapse,
    settings_round_trip,
);
