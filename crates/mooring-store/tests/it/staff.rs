//! The back office's tables on both backends: users, their sealed TOTP
//! secrets (kept through retention, re-wrapped by a key rotation), counted
//! failures and lock-outs, TOTP steps used once, sessions by hash, and
//! maker-checker requests decided once, by someone other than their maker,
//! however many replicas race.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use mooring_domain::staff::{PayoutRequest, RequestKind, RequestState, Role, StaffName};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{
    RequestBook, RequestError, Retention, StaffError, StaffSession, StaffStore, StaffUser,
};
use mooring_store::Store;
use mooring_store::schema::staff_users;
use mooring_testsupport::{TestDb, on_both_backends};

use mooring_ports::DataKey;

use crate::migrated_store;
use crate::pii::{connected, ring};

fn name(n: &str) -> StaffName {
    StaffName::parse(n).expect("name")
}

fn user(n: &str, role: Role) -> StaffUser {
    StaffUser {
        name: name(n),
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        disabled: false,
        failures: 0,
        locked_until: None,
        totp_enrolled: false,
        created_at: Utc::now(),
    }
}

fn request(id: &str, tx: &str, maker: &str) -> PayoutRequest {
    PayoutRequest {
        id: id.into(),
        transaction: TransactionId::parse(tx).expect("id"),
        kind: RequestKind::Refund {
            stellar_hash: "b".repeat(64),
        },
        attempt: 1,
        maker: name(maker),
        made_at: Utc::now(),
        state: RequestState::Pending,
        checker: None,
        decided_at: None,
        outcome: String::new(),
    }
}

async fn users_are_added_once_and_changed_by_name(db: TestDb) {
    let store = migrated_store(&db).await;
    store
        .add_user(&user("ana", Role::Reviewer))
        .await
        .expect("added");
    assert!(matches!(
        store.add_user(&user("ana", Role::Admin)).await,
        Err(StaffError::Exists)
    ));
    store
        .set_role(&name("ana"), Role::Operator)
        .await
        .expect("role");
    store
        .set_disabled(&name("ana"), true)
        .await
        .expect("disabled");
    let ana = store
        .user(&name("ana"))
        .await
        .expect("read")
        .expect("there");
    assert_eq!((ana.role, ana.disabled), (Role::Operator, true));
    assert!(matches!(
        store.set_role(&name("nobody"), Role::Admin).await,
        Err(StaffError::NotFound)
    ));
    assert_eq!(store.users().await.expect("list").len(), 1);
}

async fn failures_lock_out_at_the_limit_even_from_two_replicas(db: TestDb) {
    let store = migrated_store(&db).await;
    let other = migrated_store(&db).await;
    store
        .add_user(&user("bo", Role::Viewer))
        .await
        .expect("added");
    let until = Utc::now() + Duration::minutes(15);
    // Five failures, from two replicas at once: exactly one of them locks.
    let mut tries = tokio::task::JoinSet::new();
    for i in 0..5 {
        let s = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tries.spawn(async move {
            s.count_failure(&name("bo"), (5, until))
                .await
                .expect("counted")
        });
    }
    let locked = tries.join_all().await;
    assert_eq!(locked.iter().filter(|l| **l).count(), 1, "{locked:?}");
    let bo = store.user(&name("bo")).await.expect("read").expect("there");
    assert!(
        bo.locked_until
            .is_some_and(|u| (u - until).num_seconds().abs() <= 1)
    );
    assert_eq!(
        bo.failures, 0,
        "the count starts again for after the lock-out"
    );
    store.clear_failures(&name("bo")).await.expect("cleared");
    let bo = store.user(&name("bo")).await.expect("read").expect("there");
    assert_eq!(bo.locked_until, None);
}

async fn a_totp_secret_is_sealed_and_each_step_is_used_once(db: TestDb) {
    let store = migrated_store(&db).await;
    store
        .add_user(&user("cy", Role::Operator))
        .await
        .expect("added");
    let secret = b"0123456789abcdefghij";
    store
        .set_totp_secret(&name("cy"), Some(secret))
        .await
        .expect("stored");
    assert_eq!(
        store
            .totp_secret(&name("cy"))
            .await
            .expect("read")
            .as_deref(),
        Some(&secret[..])
    );
    // Sealed: the bytes at rest are not the secret.
    let sealed: Option<Vec<u8>> = store
        .with_connection(|c| {
            staff_users::table
                .find("cy")
                .select(staff_users::totp_sealed)
                .first(c)
        })
        .await
        .expect("row");
    let sealed = sealed.expect("a seal");
    assert!(!sealed.windows(secret.len()).any(|w| w == secret));
    // Each step once, and never an earlier one; the first use enrols.
    assert!(store.use_totp_step(&name("cy"), 100).await.expect("used"));
    assert!(!store.use_totp_step(&name("cy"), 100).await.expect("again"));
    assert!(!store.use_totp_step(&name("cy"), 99).await.expect("earlier"));
    assert!(store.use_totp_step(&name("cy"), 101).await.expect("later"));
    assert!(
        store
            .user(&name("cy"))
            .await
            .expect("read")
            .expect("there")
            .totp_enrolled
    );
    // Retention keeps a user's key (it has no customer), long after.
    let pruned = store
        .prune_orphan_keys(Utc::now() + Duration::days(3650), 100)
        .await
        .expect("pruned");
    assert_eq!(pruned, 0);
    assert!(
        store
            .totp_secret(&name("cy"))
            .await
            .expect("read")
            .is_some()
    );
    // A reset forgets the secret and the enrolment.
    store
        .set_totp_secret(&name("cy"), None)
        .await
        .expect("reset");
    let cy = store.user(&name("cy")).await.expect("read").expect("there");
    assert!(!cy.totp_enrolled);
    assert_eq!(store.totp_secret(&name("cy")).await.expect("read"), None);
    assert!(
        store
            .use_totp_step(&name("cy"), 5)
            .await
            .expect("a new start")
    );
}

async fn sessions_are_kept_by_hash_and_end_with_their_user(db: TestDb) {
    let store = migrated_store(&db).await;
    store
        .add_user(&user("di", Role::Admin))
        .await
        .expect("added");
    let now = Utc::now();
    for hash in ["h1", "h2"] {
        store
            .add_session(&StaffSession {
                token_hash: hash.into(),
                user: name("di"),
                verified: false,
                csrf: "c".into(),
                created_at: now,
                last_seen: now,
            })
            .await
            .expect("added");
    }
    store.verify_session("h1").await.expect("verified");
    let later = now + Duration::minutes(3);
    store.touch_session("h1", later).await.expect("touched");
    let s = store.session("h1").await.expect("read").expect("there");
    assert!(s.verified);
    assert_eq!(s.last_seen.timestamp(), later.timestamp());
    assert_eq!(store.end_sessions_of(&name("di")).await.expect("ended"), 2);
    assert_eq!(store.session("h2").await.expect("read"), None);
}

async fn a_request_is_decided_once_and_never_by_its_maker(db: TestDb) {
    let store = migrated_store(&db).await;
    let other = migrated_store(&db).await;
    store
        .add_request(&request("r1", "tx-1", "olga"))
        .await
        .expect("added");
    // One open request per payout.
    assert!(matches!(
        store.add_request(&request("r2", "tx-1", "otto")).await,
        Err(RequestError::Pending)
    ));
    let now = Utc::now();
    // The maker cannot approve or refuse, only withdraw.
    assert!(
        !store
            .decide("r1", &name("olga"), RequestState::Approving, false, now, "")
            .await
            .expect("tried")
    );
    // Two checkers on two replicas: one wins.
    let (otto, uma) = (name("otto"), name("uma"));
    let (a, b) = tokio::join!(
        store.decide("r1", &otto, RequestState::Refused, false, now, "refused"),
        other.decide("r1", &uma, RequestState::Refused, false, now, "refused"),
    );
    assert_eq!(
        [a.expect("a"), b.expect("b")]
            .iter()
            .filter(|w| **w)
            .count(),
        1
    );
    let r = store.request("r1").await.expect("read").expect("there");
    assert_eq!(r.state, RequestState::Refused);
    assert!(matches!(
        r.checker.as_ref().map(StaffName::as_str),
        Some("otto" | "uma")
    ));
    // Refused is final: no approval after it.
    assert!(
        !store
            .decide("r1", &name("vic"), RequestState::Approving, false, now, "")
            .await
            .expect("tried")
    );
    // Decided, the payout may have a new request. An approval is taken
    // once: a second checker cannot approve a request left `approving`
    // (a run cut short), only close it.
    store
        .add_request(&request("r3", "tx-1", "olga"))
        .await
        .expect("added");
    assert!(
        store
            .decide("r3", &name("otto"), RequestState::Approving, false, now, "")
            .await
            .expect("approving")
    );
    assert!(
        !store
            .decide("r3", &name("uma"), RequestState::Approving, false, now, "")
            .await
            .expect("again"),
        "never approved twice"
    );
    store
        .finish("r3", RequestState::Approved, "done")
        .await
        .expect("finished");
    assert!(matches!(
        store.finish("r3", RequestState::Failed, "late").await,
        Err(RequestError::NotFound)
    ));
    store
        .add_request(&request("r5", "tx-3", "olga"))
        .await
        .expect("added");
    assert!(
        store
            .decide("r5", &name("otto"), RequestState::Approving, false, now, "")
            .await
            .expect("approving")
    );
    assert!(
        store
            .decide(
                "r5",
                &name("uma"),
                RequestState::Refused,
                false,
                now,
                "cut short"
            )
            .await
            .expect("closed"),
        "a run cut short is closed by refusing it"
    );
    let open = store
        .requests(&[RequestState::Pending, RequestState::Approving], None, 10)
        .await
        .expect("list");
    assert!(open.is_empty(), "{open:?}");
    let all = store
        .requests(&[], Some(&TransactionId::parse("tx-1").expect("id")), 10)
        .await
        .expect("list");
    assert_eq!(all.len(), 2);
    // The maker withdraws their own pending request.
    store
        .add_request(&request("r4", "tx-2", "olga"))
        .await
        .expect("added");
    assert!(
        store
            .decide(
                "r4",
                &name("olga"),
                RequestState::Refused,
                true,
                now,
                "withdrawn"
            )
            .await
            .expect("withdrawn")
    );
}

async fn a_key_rotation_rewraps_a_users_key(db: TestDb) {
    let (old, new) = (DataKey::generate(), DataKey::generate());
    let (store, _) = connected(&db)
        .await
        .unlock(ring(&old, &[]))
        .await
        .expect("unlock");
    store
        .add_user(&user("eve", Role::Admin))
        .await
        .expect("added");
    store
        .set_totp_secret(&name("eve"), Some(b"the secret of eve!!!"))
        .await
        .expect("stored");
    let (rotating, _) = connected(&db)
        .await
        .unlock(ring(&new, &[&old]))
        .await
        .expect("unlock");
    let step = rotating.rotate_keys().await.expect("rotate");
    assert_eq!((step.rewrapped, step.left), (1, 0));
    let (after, _): (Store, _) = connected(&db)
        .await
        .unlock(ring(&new, &[]))
        .await
        .expect("new key");
    assert_eq!(
        after
            .totp_secret(&name("eve"))
            .await
            .expect("read")
            .as_deref(),
        Some(&b"the secret of eve!!!"[..])
    );
}

on_both_backends!(
    users_are_added_once_and_changed_by_name,
    failures_lock_out_at_the_limit_even_from_two_replicas,
    a_totp_secret_is_sealed_and_each_step_is_used_once,
    sessions_are_kept_by_hash_and_end_with_their_user,
    a_request_is_decided_once_and_never_by_its_maker,
    a_key_rotation_rewraps_a_users_key,
);
