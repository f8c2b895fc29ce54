//! The back office through its own listener (port 0), as a browser without
//! JavaScript uses it: sign-in with a password and TOTP, lock-out, the idle
//! timeout, roles on every action, CSRF, the audit of every view of a
//! value, files served so that they never run, and maker-checker on a
//! refund, on SQLite and PostgreSQL.

use std::time::Duration;

use mooring_app::Settings;
use mooring_app::startup::{open_store, staff_service};
use mooring_apsim::{SimAuth, Simulator, spawn};
use mooring_domain::audit::{Actor, AuditAction};
use mooring_domain::staff::Role;
use mooring_ports::AuditQuery;
use mooring_testsupport::{TestDb, on_both_backends};
use mooring_usecases::staff::{totp_code, totp_step};
use serde_json::json;

use crate::engine::{USDC, assert_paid_once, receiver, start, transaction, wait_for};
use crate::helpers::{ACCOUNT, TestApp, base_env, spawn_app_with, status_and_json};

const PASSWORD: &str = "correct horse battery";

/// A browser: a cookie jar of one cookie, no redirects followed.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

/// What a page answered.
struct Page {
    status: u16,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    /// The value of the first hidden CSRF field.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a CSRF field") + marker.len();
        let end = self.body[start..].find('"').expect("closed") + start;
        self.body[start..end].to_owned()
    }

    /// The value of the first hidden field of this name.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("type=\"hidden\" name=\"{name}\" value=\"");
        let start = self.body.find(&marker).expect("the hidden field") + marker.len();
        let end = self.body[start..].find('"').expect("closed") + start;
        self.body[start..end].to_owned()
    }

    fn text_of(&self, id: &str) -> String {
        let marker = format!("id=\"{id}\">");
        let start = self.body.find(&marker).expect("element") + marker.len();
        let end = self.body[start..].find('<').expect("closed") + start;
        self.body[start..end].to_owned()
    }
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: app.backoffice_address.clone().expect("back office on"),
            cookie: None,
        }
    }

    async fn read(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().expect("ascii");
            let pair = text.split(';').next().unwrap_or_default();
            self.cookie = pair
                .split_once('=')
                .map(|(_, v)| v.to_owned())
                .filter(|v| !v.is_empty())
                .map(|v| format!("mooring_session={v}"));
        }
        Page {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .map(|l| l.to_str().expect("ascii").to_owned()),
            headers: response.headers().clone(),
            body: response.text().await.expect("body"),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            request = request.header("cookie", c);
        }
        let response = request.send().await.expect("sent");
        self.read(response).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(form).expect("a form");
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = &self.cookie {
            request = request.header("cookie", c);
        }
        let response = request.send().await.expect("sent");
        self.read(response).await
    }
}

/// RFC 4648 base32, as the enrolment page shows the secret.
fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.chars() {
        let v = u32::try_from(ALPHABET.find(c).expect("base32")).expect("small");
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).expect("byte"));
        }
    }
    out
}

/// The code an authenticator shows now, or `ahead` steps later (a second
/// sign-in of one user in the same 30 s needs a later step: each works once).
fn code_now(secret: &[u8], ahead: u64) -> String {
    totp_code(secret, totp_step(chrono::Utc::now()) + ahead)
}

/// Adds a user as the CLI does.
async fn add_user(app: &TestApp, name: &str, role: Role) {
    let settings = Settings::load(&base_env(&app.db)).expect("settings");
    let store = open_store(&settings, false).await.expect("store");
    staff_service(&settings, store)
        .add_user(name, role, PASSWORD, &Actor::operator("tester", "cli@test"))
        .await
        .expect("user added");
}

/// Signs a user in through the pages, enrolling TOTP when the role needs
/// it; returns the browser and the user's TOTP secret with the step used.
async fn signed_in(app: &TestApp, name: &str, role: Role) -> (Browser, (Vec<u8>, u64)) {
    add_user(app, name, role).await;
    let mut b = Browser::new(app);
    let page = b
        .post("/signin", &[("name", name), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    if !role.needs_second_factor() {
        assert_eq!(page.location.as_deref(), Some("/"));
        return (b, (Vec::new(), 0));
    }
    assert_eq!(page.location.as_deref(), Some("/signin/enrol"));
    // Nothing but the enrolment is open before the code.
    let early = b.get("/").await;
    assert_eq!(early.location.as_deref(), Some("/signin/code"));
    let enrol = b.get("/signin/enrol").await;
    assert_eq!(enrol.status, 200);
    assert!(enrol.body.contains("<svg"), "a QR code");
    let secret = base32_decode(&enrol.text_of("totp-secret"));
    let step = totp_step(chrono::Utc::now());
    let done = b
        .post(
            "/signin/code",
            &[("csrf", &enrol.csrf()), ("code", &totp_code(&secret, step))],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/"), "{}", done.body);
    (b, (secret, step))
}

async fn audit_of(app: &TestApp, action: AuditAction, actor: &str) -> Vec<String> {
    let settings = Settings::load(&base_env(&app.db)).expect("settings");
    let store = open_store(&settings, false).await.expect("store");
    mooring_app::startup::audit_trail(store)
        .list(AuditQuery {
            action: Some(action),
            actor: Some(actor.to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .expect("audit")
        .into_iter()
        .map(|r| r.entry.detail)
        .collect()
}

async fn a_new_customer(app: &TestApp, memo: &str) -> String {
    let form = reqwest::multipart::Form::new()
        .text("account", ACCOUNT)
        .text("memo", memo.to_owned())
        .text("memo_type", "id")
        .text("type", "sep31-sender")
        .text("first_name", "Ana")
        .text("last_name", "Silva")
        .text("email_address", "ana@example.com")
        .part(
            "photo_id_front",
            reqwest::multipart::Part::bytes(b"\x89PNG\r\n\x1a\n-not-really".to_vec())
                .file_name("photo_id_front")
                .mime_str("image/png")
                .expect("mime"),
        )
        .part(
            "photo_id_back",
            reqwest::multipart::Part::bytes(b"<html><script>alert(1)</script>".to_vec())
                .file_name("photo_id_back")
                .mime_str("text/html")
                .expect("mime"),
        );
    let response = app
        .client
        .put(app.url("/customer"))
        .multipart(form)
        .send()
        .await
        .expect("sent");
    let (status, answer) = status_and_json(response).await;
    assert_eq!(status, 200, "{answer}");
    answer["id"].as_str().expect("id").to_owned()
}

async fn signing_in_refuses_wrong_passwords_and_codes_and_locks_out(db: TestDb) {
    let app = spawn_app_with(db, &[("MOORING__KYC__REVIEW", "manual")]).await;
    add_user(&app, "vera", Role::Viewer).await;
    let mut b = Browser::new(&app);
    let form = b.get("/signin").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("<label for=\"password\">"));
    // Not signed in: every page sends to the sign-in page.
    assert_eq!(
        b.get("/customers").await.location.as_deref(),
        Some("/signin")
    );
    // A wrong password and an unknown name answer alike.
    let wrong = b
        .post(
            "/signin",
            &[("name", "vera"), ("password", "not the password")],
        )
        .await;
    let unknown = b
        .post("/signin", &[("name", "nobody"), ("password", PASSWORD)])
        .await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert!(wrong.body.contains("name, password or code is wrong"));
    assert!(unknown.body.contains("name, password or code is wrong"));
    assert!(b.cookie.is_none());
    // The limit (5 by default): four more failures lock vera out; then
    // even the right password is refused, saying until when.
    for _ in 0..4 {
        b.post("/signin", &[("name", "vera"), ("password", "wrong again")])
            .await;
    }
    let locked = b
        .post("/signin", &[("name", "vera"), ("password", PASSWORD)])
        .await;
    assert_eq!(locked.status, 401);
    assert!(
        locked.body.contains("too many failed sign-ins"),
        "{}",
        locked.body
    );
    let failures = audit_of(&app, AuditAction::SignInFailed, "vera").await;
    assert_eq!(
        failures.iter().filter(|d| d.as_str() == "password").count(),
        4
    );
    assert_eq!(
        failures
            .iter()
            .filter(|d| d.as_str() == "password; locked out")
            .count(),
        1
    );
    assert!(failures.iter().any(|d| d == "locked out"), "{failures:?}");
    assert!(
        audit_of(&app, AuditAction::SignedIn, "vera")
            .await
            .is_empty()
    );

    // A wrong TOTP code counts as a failure too; the right one signs in,
    // once: the same code cannot sign in again.
    let (mut rita, (secret, used)) = signed_in(&app, "rita", Role::Reviewer).await;
    assert_eq!(rita.get("/").await.status, 200);
    let signout = rita.get("/").await.csrf();
    assert_eq!(
        rita.post("/signout", &[("csrf", &signout)])
            .await
            .location
            .as_deref(),
        Some("/signin")
    );
    assert_eq!(rita.get("/").await.location.as_deref(), Some("/signin"));
    let mut again = Browser::new(&app);
    let step = again
        .post("/signin", &[("name", "rita"), ("password", PASSWORD)])
        .await;
    assert_eq!(step.location.as_deref(), Some("/signin/code"));
    let page = again.get("/signin/code").await;
    let bad = again
        .post(
            "/signin/code",
            &[("csrf", &page.csrf()), ("code", "000000")],
        )
        .await;
    let reused = again
        .post(
            "/signin/code",
            &[("csrf", &page.csrf()), ("code", &totp_code(&secret, used))],
        )
        .await;
    // "000000" is the current code about once in a million runs.
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert_eq!(reused.status, 401, "a code works once");
    let good = again
        .post(
            "/signin/code",
            &[("csrf", &page.csrf()), ("code", &code_now(&secret, 1))],
        )
        .await;
    assert_eq!(good.location.as_deref(), Some("/"), "{}", good.body);
    let failed = audit_of(&app, AuditAction::SignInFailed, "rita").await;
    // The reused code is refused as used, or as too old once its step
    // has left the window: a failure either way.
    assert_eq!(
        failed.iter().filter(|d| d.starts_with("TOTP code")).count(),
        2,
        "{failed:?}"
    );
    assert_eq!(
        audit_of(&app, AuditAction::TotpEnrolled, "rita")
            .await
            .len(),
        1
    );
    assert_eq!(audit_of(&app, AuditAction::SignedIn, "rita").await.len(), 2);
    assert_eq!(
        audit_of(&app, AuditAction::SignedOut, "rita").await.len(),
        1
    );
}

async fn a_provisioned_authenticator_signs_in_without_enrolment(db: TestDb) {
    let app = spawn_app_with(db, &[]).await;
    add_user(&app, "dana", Role::Admin).await;
    let settings = Settings::load(&base_env(&app.db)).expect("settings");
    let store = open_store(&settings, false).await.expect("store");
    let enrolment = staff_service(&settings, store)
        .provision_totp("dana", &Actor::operator("tester", "cli@test"))
        .await
        .expect("provisioned");
    assert!(
        enrolment
            .uri
            .starts_with("otpauth://totp/Mooring%3Adana?secret=")
    );
    let secret = base32_decode(&enrolment.secret_base32);
    let mut b = Browser::new(&app);
    let step = b
        .post("/signin", &[("name", "dana"), ("password", PASSWORD)])
        .await;
    assert_eq!(
        step.location.as_deref(),
        Some("/signin/code"),
        "no enrolment"
    );
    let page = b.get("/signin/code").await;
    let done = b
        .post(
            "/signin/code",
            &[("csrf", &page.csrf()), ("code", &code_now(&secret, 0))],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/"), "{}", done.body);
    assert_eq!(b.get("/users").await.status, 200);
}

async fn an_idle_session_ends(db: TestDb) {
    let app = spawn_app_with(db, &[("MOORING__BACKOFFICE__IDLE_TIMEOUT_SECONDS", "1")]).await;
    let (mut b, _) = signed_in(&app, "ivy", Role::Viewer).await;
    assert_eq!(b.get("/").await.status, 200);
    // The timeout is the condition: a second with no request ends it.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let over = b.get("/").await;
    assert_eq!(over.location.as_deref(), Some("/signin"));
    // Ended, not only refused once: the cookie is worth nothing now.
    assert_eq!(b.get("/").await.location.as_deref(), Some("/signin"));
}

async fn every_page_carries_the_security_headers_and_cookies_are_strict(db: TestDb) {
    let app = spawn_app_with(db, &[]).await;
    add_user(&app, "hana", Role::Viewer).await;
    let mut b = Browser::new(&app);
    let signin = b
        .post("/signin", &[("name", "hana"), ("password", PASSWORD)])
        .await;
    let cookie = signin.headers["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    // Bound to loopback: not Secure unless configured.
    assert!(!cookie.contains("Secure"), "{cookie}");
    for path in [
        "/",
        "/signin",
        "/customers",
        "/nowhere",
        "/static/backoffice.css",
    ] {
        let page = b.get(path).await;
        let csp = page.headers["content-security-policy"]
            .to_str()
            .expect("ascii");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(page.headers["x-frame-options"], "DENY");
        assert_eq!(page.headers["referrer-policy"], "no-referrer");
        assert!(!page.body.contains("<script>"), "{path}: an inline script");
    }
    let js = b.get("/static/backoffice.js").await;
    assert_eq!(js.status, 200);
    assert!(
        js.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/javascript")
    );
}

async fn roles_are_checked_on_the_server_and_every_view_of_a_value_is_audited(db: TestDb) {
    let app = spawn_app_with(db, &[("MOORING__KYC__REVIEW", "manual")]).await;
    let id = a_new_customer(&app, "71").await;
    let (mut viewer, _) = signed_in(&app, "victor", Role::Viewer).await;
    let page = viewer.get(&format!("/customers/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("PROCESSING"));
    assert!(page.body.contains("first_name"), "field names are shown");
    assert!(!page.body.contains("Silva"), "a viewer sees no value");
    assert!(
        !page.body.contains("/approve"),
        "a viewer finds no approve button"
    );
    // A viewer who posts an approval by hand is refused, and it is logged.
    let csrf = page.csrf();
    let posted = viewer
        .post(&format!("/customers/{id}/approve"), &[("csrf", &csrf)])
        .await;
    assert_eq!(posted.status, 403);
    assert!(posted.body.contains("review customers"), "{}", posted.body);
    let refused = audit_of(&app, AuditAction::AccessRefused, "victor").await;
    assert_eq!(refused, ["review customers"]);
    assert_eq!(
        viewer
            .get(&format!("/customers/{id}/files/photo_id_front"))
            .await
            .status,
        403
    );
    for admin_only in ["/users", "/audit", "/audit.csv"] {
        assert_eq!(viewer.get(admin_only).await.status, 403, "{admin_only}");
    }
    assert!(
        audit_of(&app, AuditAction::PiiRead, "victor")
            .await
            .is_empty()
    );

    // A reviewer sees the values and the photo, each view audited.
    let (mut reviewer, _) = signed_in(&app, "rosa", Role::Reviewer).await;
    let page = reviewer.get(&format!("/customers/{id}")).await;
    assert!(page.body.contains("Silva") && page.body.contains("ana@example.com"));
    assert!(page.body.contains(&format!(
        "<img src=\"/customers/{id}/files/photo_id_front\""
    )));
    let photo = reviewer
        .get(&format!("/customers/{id}/files/photo_id_front"))
        .await;
    assert_eq!(photo.status, 200);
    assert_eq!(photo.headers["content-type"], "image/png");
    assert!(
        photo.headers["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("sandbox")
    );
    // HTML uploaded as a file is downloaded as bytes, never rendered.
    let html = reviewer
        .get(&format!("/customers/{id}/files/photo_id_back"))
        .await;
    assert_eq!(html.headers["content-type"], "application/octet-stream");
    assert!(
        html.headers["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment")
    );
    let reads = audit_of(&app, AuditAction::PiiRead, "rosa").await;
    assert_eq!(reads.len(), 3, "{reads:?}");
    assert!(reads.contains(&"file: photo_id_front".to_owned()));
    assert!(reads.contains(&"file: photo_id_back".to_owned()));
    assert!(
        reads
            .iter()
            .any(|d| d.starts_with("values: ") && d.contains("first_name"))
    );
    // Reviewers approve; operators' and admins' pages stay closed to them.
    assert_eq!(reviewer.get("/users").await.status, 403);
    let approved = reviewer
        .post(
            &format!("/customers/{id}/approve"),
            &[("csrf", &page.csrf()), ("seen", &page.hidden("seen"))],
        )
        .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    let (_, view) = app.get_customer(&[("id", &id)]).await;
    assert_eq!(view["status"], "ACCEPTED");
    let asked = reviewer
        .post(
            "/payouts/tx-1/requests",
            &[("csrf", &page.csrf()), ("kind", "retry_new_attempt")],
        )
        .await;
    assert_eq!(asked.status, 403);

    // An admin reads the audit trail and exports it.
    let (mut admin, _) = signed_in(&app, "ada", Role::Admin).await;
    let trail = admin.get("/audit?actor=rosa").await;
    assert_eq!(trail.status, 200);
    assert!(trail.body.contains("customer.pii_read") && trail.body.contains("customer.approved"));
    let csv = admin
        .get("/audit.csv?action=staff.access_refused&actor=victor")
        .await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    // The approval, the file and the three admin pages, with the header.
    assert_eq!(csv.body.lines().count(), 6, "{}", csv.body);
    assert!(csv.body.lines().skip(1).all(|l| l.contains("\"victor\"")));
    let users = admin.get("/users").await;
    assert!(users.body.contains("victor") && users.body.contains("rosa"));
    // No secret is ever on a page.
    for page in [&trail, &users] {
        assert!(!page.body.contains(mooring_testsupport::TEST_PII_KEY));
    }
}

async fn a_reviewer_rejects_one_field_and_the_customer_is_asked_for_it_again(db: TestDb) {
    let app = spawn_app_with(db, &[("MOORING__KYC__REVIEW", "manual")]).await;
    let id = a_new_customer(&app, "73").await;
    let field_status = |view: &serde_json::Value, name: &str| {
        let f = &view["provided_fields"][name];
        (
            f["status"].as_str().map(str::to_owned),
            f["error"].as_str().map(str::to_owned),
        )
    };
    let (mut reviewer, _) = signed_in(&app, "rita", Role::Reviewer).await;
    let page = reviewer.get(&format!("/customers/{id}")).await;
    assert!(
        page.body
            .contains(&format!("/customers/{id}/fields/last_name/reject"))
    );
    let (csrf, seen) = (page.csrf(), page.hidden("seen"));

    // A viewer who posts one by hand is refused.
    let (mut viewer, _) = signed_in(&app, "vera", Role::Viewer).await;
    let own = viewer.get(&format!("/customers/{id}")).await;
    assert!(
        !own.body.contains("/fields/"),
        "a viewer finds no reject button"
    );
    let refused = viewer
        .post(
            &format!("/customers/{id}/fields/last_name/reject"),
            &[("csrf", &own.csrf()), ("seen", &seen), ("reason", "x")],
        )
        .await;
    assert_eq!(refused.status, 403);

    // Refused with a 4xx: no reason, a field not provided, not a field.
    for (field, reason, status) in [
        ("last_name", " ", 400),
        ("birth_date", "unreadable", 400),
        ("no_such_field", "unreadable", 400),
    ] {
        let answer = reviewer
            .post(
                &format!("/customers/{id}/fields/{field}/reject"),
                &[("csrf", &csrf), ("seen", &seen), ("reason", reason)],
            )
            .await;
        assert_eq!(answer.status, status, "{field}: {}", answer.body);
    }
    let rejected = reviewer
        .post(
            &format!("/customers/{id}/fields/last_name/reject"),
            &[
                ("csrf", &csrf),
                ("seen", &seen),
                ("reason", "does not match the passport"),
            ],
        )
        .await;
    assert_eq!(rejected.status, 303, "{}", rejected.body);

    // The AP's GET /customer now asks for it again.
    let (_, view) = app.get_customer(&[("id", &id)]).await;
    assert_eq!(view["status"], "NEEDS_INFO", "{view}");
    assert_eq!(
        field_status(&view, "last_name"),
        (
            Some("REJECTED".into()),
            Some("does not match the passport".into())
        )
    );
    assert_eq!(
        field_status(&view, "first_name").0.as_deref(),
        Some("PROCESSING")
    );
    let shown = reviewer.get(&format!("/customers/{id}")).await;
    assert!(shown.body.contains("does not match the passport"));
    assert_eq!(
        audit_of(&app, AuditAction::FieldRejected, "rita").await,
        ["field: last_name"]
    );

    // The page the reviewer decided on is stale now: an approval from it is
    // refused, and nothing changes.
    let stale = reviewer
        .post(
            &format!("/customers/{id}/approve"),
            &[("csrf", &csrf), ("seen", &seen)],
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(stale.body.contains("look again"), "{}", stale.body);
    let without = reviewer
        .post(&format!("/customers/{id}/approve"), &[("csrf", &csrf)])
        .await;
    assert_eq!(without.status, 400);
    assert_eq!(
        app.get_customer(&[("id", &id)]).await.1["status"],
        "NEEDS_INFO"
    );

    // The sender sends a new last name: under review again.
    let (status, _) = app
        .put_customer(&serde_json::json!({ "id": id, "last_name": "Silva Santos" }))
        .await;
    assert_eq!(status, 200);
    let (_, view) = app.get_customer(&[("id", &id)]).await;
    assert_eq!(view["status"], "PROCESSING", "{view}");
    assert_eq!(
        field_status(&view, "last_name"),
        (Some("PROCESSING".into()), None)
    );
}

async fn a_form_without_this_sessions_csrf_token_changes_nothing(db: TestDb) {
    let app = spawn_app_with(db, &[("MOORING__KYC__REVIEW", "manual")]).await;
    let id = a_new_customer(&app, "72").await;
    let (mut reviewer, _) = signed_in(&app, "remy", Role::Reviewer).await;
    let wrong = reviewer
        .post(&format!("/customers/{id}/approve"), &[("csrf", "forged")])
        .await;
    assert_eq!(wrong.status, 403);
    assert!(wrong.body.contains("CSRF"), "{}", wrong.body);
    let missing = reviewer
        .post(&format!("/customers/{id}/approve"), &[])
        .await;
    assert_eq!(missing.status, 400);
    let (_, view) = app.get_customer(&[("id", &id)]).await;
    assert_eq!(view["status"], "PROCESSING");
    // Another session's token is not this one's.
    let (other, _) = signed_in(&app, "rhea", Role::Reviewer).await;
    drop(other);
    let (mut third, _) = signed_in(&app, "ruth", Role::Reviewer).await;
    let theirs = third.get("/").await.csrf();
    let crossed = reviewer
        .post(&format!("/customers/{id}/approve"), &[("csrf", &theirs)])
        .await;
    assert_eq!(crossed.status, 403);
}

async fn a_rejected_payout_is_checked_again_by_one_operator_and_paid_once(db: TestDb) {
    let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    let app = start(db, &sim, "rpc", &[]).await;
    let parties = receiver(&app, "74", true).await;
    let (mut otto, _) = signed_in(&app, "otto", Role::Operator).await;
    let decide = async |b: &mut Browser, action: &str, reason: &str| {
        let page = b.get(&format!("/customers/{}", parties.receiver)).await;
        let done = b
            .post(
                &format!("/customers/{}/{action}", parties.receiver),
                &[
                    ("csrf", &page.csrf()),
                    ("seen", &page.hidden("seen")),
                    ("reason", reason),
                ],
            )
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
    };
    decide(&mut otto, "reject", "on a sanctions list").await;
    let tx = sim.sim.create(transaction(&parties));
    assert!(sim.sim.receive(&tx, None));
    wait_for(
        &sim.sim,
        std::slice::from_ref(&tx),
        "error",
        Duration::from_secs(20),
    )
    .await;
    // The rejection was a mistake: the receiver is approved, and one
    // operator has the payout checked again. No payout was ever made, so no
    // second operator is needed; none under a new key is possible here.
    decide(&mut otto, "approve", "").await;
    let page = otto.get(&format!("/payouts/{tx}")).await;
    assert!(page.body.contains("Check again"), "{}", page.body);
    let (mut vera, _) = signed_in(&app, "vera", Role::Viewer).await;
    let seen = vera.get(&format!("/payouts/{tx}")).await;
    assert!(
        !seen.body.contains("Check again"),
        "a viewer finds no retry"
    );
    let refused = vera
        .post(&format!("/payouts/{tx}/retry"), &[("csrf", &seen.csrf())])
        .await;
    assert_eq!(refused.status, 403);
    let retried = otto
        .post(&format!("/payouts/{tx}/retry"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(retried.status, 303, "{}", retried.body);
    wait_for(
        &sim.sim,
        std::slice::from_ref(&tx),
        "completed",
        Duration::from_secs(20),
    )
    .await;
    assert_paid_once(&sim.sim, std::slice::from_ref(&tx), "99");
    assert_eq!(
        audit_of(&app, AuditAction::PayoutRetried, "otto").await,
        ["mode=same_key from=rejected to=recovering attempt=1"]
    );
    // Completed: nothing to retry, and a retry posted anyway changes nothing.
    let after = otto.get(&format!("/payouts/{tx}")).await;
    assert!(!after.body.contains("/retry\""), "{}", after.body);
    let again = otto
        .post(&format!("/payouts/{tx}/retry"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_paid_once(&sim.sim, std::slice::from_ref(&tx), "99");
}

async fn a_refund_takes_two_operators(db: TestDb) {
    let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    let app = start(db, &sim, "rpc", &[]).await;
    let parties = receiver(&app, "73", true).await;
    let short = sim.sim.create(transaction(&parties));
    assert!(
        sim.sim
            .receive(&short, Some(json!({"amount": "90", "asset": USDC})))
    );
    wait_for(
        &sim.sim,
        std::slice::from_ref(&short),
        "error",
        Duration::from_secs(20),
    )
    .await;

    let (mut olga, _) = signed_in(&app, "olga", Role::Operator).await;
    let page = olga.get(&format!("/payouts/{short}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("rejected"), "{}", page.body);
    let hash = "a".repeat(64);
    let asked = olga
        .post(
            &format!("/payouts/{short}/requests"),
            &[
                ("csrf", &page.csrf()),
                ("kind", "refund"),
                ("stellar_hash", &hash),
            ],
        )
        .await;
    assert_eq!(asked.status, 303, "{}", asked.body);
    // One open request per payout.
    let twice = olga
        .post(
            &format!("/payouts/{short}/requests"),
            &[
                ("csrf", &page.csrf()),
                ("kind", "refund"),
                ("stellar_hash", &hash),
            ],
        )
        .await;
    assert_eq!(twice.status, 409);
    let desk = olga.get("/requests").await;
    let request = desk
        .body
        .split("action=\"/requests/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(str::to_owned);
    // The maker finds no approve button, only withdraw; posting one is refused.
    assert!(!desk.body.contains("/approve\""), "{}", desk.body);
    assert!(desk.body.contains("Withdraw"));
    let request = request.expect("a request on the desk");
    let own = olga
        .post(
            &format!("/requests/{request}/approve"),
            &[("csrf", &desk.csrf())],
        )
        .await;
    assert_eq!(own.status, 409);
    assert!(own.body.contains("cannot also approve it"), "{}", own.body);
    assert_eq!(status_of(&sim.sim, &short), "error");

    let (mut otto, _) = signed_in(&app, "otto", Role::Operator).await;
    let desk = otto.get("/requests").await;
    assert!(desk.body.contains(&format!("/requests/{request}/approve")));
    let approved = otto
        .post(
            &format!("/requests/{request}/approve"),
            &[("csrf", &desk.csrf())],
        )
        .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    wait_for(
        &sim.sim,
        std::slice::from_ref(&short),
        "refunded",
        Duration::from_secs(20),
    )
    .await;
    // Decided once: approving again is refused.
    let again = otto
        .post(
            &format!("/requests/{request}/approve"),
            &[("csrf", &desk.csrf())],
        )
        .await;
    assert_eq!(again.status, 409);
    let decided = audit_of(&app, AuditAction::PayoutRequestDecided, "otto").await;
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert!(decided[0].contains("asked by olga"), "{decided:?}");
    assert_eq!(
        audit_of(&app, AuditAction::PayoutRefunded, "otto")
            .await
            .len(),
        1
    );
    assert_eq!(
        audit_of(&app, AuditAction::PayoutRequested, "olga")
            .await
            .len(),
        1
    );
    assert!(sim.sim.payouts().is_empty(), "no payout was ever made");
}

async fn a_payout_over_the_approval_limit_waits_for_an_operator_and_is_paid_once(db: TestDb) {
    let sim = spawn(Simulator::new(false), SimAuth::None).expect("simulator");
    // Every test transaction pays 99 USDC out; the limit is 50.
    let file =
        crate::helpers::config_file(&format!("[payout.approval_above]\n\"{USDC}\" = \"50\"\n"));
    let path = file.path().to_str().expect("utf-8").to_owned();
    let app = start(db, &sim, "rpc", &[("MOORING_CONFIG", &path)]).await;
    let parties = receiver(&app, "74", true).await;
    let id = sim.sim.create(transaction(&parties));
    assert!(sim.sim.receive(&id, None));
    let (mut olga, _) = signed_in(&app, "olga", Role::Operator).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let page = loop {
        let page = olga.get(&format!("/payouts/{id}")).await;
        if page.body.contains("awaiting_approval") {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{}", page.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(page.body.contains("Release to the rail"));
    // Held: nothing at the rail, the AP not moved on.
    assert!(sim.sim.payouts().is_empty());
    assert_eq!(status_of(&sim.sim, &id), "pending_receiver");
    let dashboard = olga.get("/").await;
    assert!(dashboard.body.contains("payouts awaiting approval"));
    // A viewer sees no button and is refused.
    let (mut vera, _) = signed_in(&app, "vera", Role::Viewer).await;
    let viewed = vera.get(&format!("/payouts/{id}")).await;
    assert!(!viewed.body.contains("Release to the rail"));
    let refused = vera
        .post(
            &format!("/payouts/{id}/release"),
            &[("csrf", &viewed.csrf()), ("seen", "1")],
        )
        .await;
    assert_eq!(refused.status, 403);
    // The operator releases it: paid once, completed.
    let seen = {
        let marker = "name=\"seen\" value=\"";
        let start = page.body.find(marker).expect("the version shown") + marker.len();
        let end = page.body[start..].find('"').expect("closed") + start;
        page.body[start..end].to_owned()
    };
    // A stale page releases nothing.
    let stale = olga
        .post(
            &format!("/payouts/{id}/release"),
            &[("csrf", &page.csrf()), ("seen", "1")],
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(sim.sim.payouts().is_empty());
    let released = olga
        .post(
            &format!("/payouts/{id}/release"),
            &[("csrf", &page.csrf()), ("seen", &seen)],
        )
        .await;
    assert_eq!(released.status, 303, "{}", released.body);
    wait_for(
        &sim.sim,
        std::slice::from_ref(&id),
        "completed",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(sim.sim.payouts().len(), 1, "paid once");
    let twice = olga
        .post(
            &format!("/payouts/{id}/release"),
            &[("csrf", &page.csrf()), ("seen", &seen)],
        )
        .await;
    assert_eq!(twice.status, 409, "released once");
    assert_eq!(sim.sim.payouts().len(), 1);
    assert_eq!(
        audit_of(&app, AuditAction::PayoutReleased, "olga")
            .await
            .len(),
        1
    );
    // The timeline shows each change with its cause: the person's release
    // among the engine's steps.
    let detail = olga.get(&format!("/payouts/{id}")).await;
    let timeline = detail
        .body
        .split("<h2>Timeline</h2>")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .expect("a timeline")
        .to_owned();
    for part in [
        "awaiting_approval",
        "<td>person</td>",
        "<td>engine</td>",
        "completed",
    ] {
        assert!(timeline.contains(part), "{part}: {timeline}");
    }
}

async fn firm_quotes_and_reserved_liquidity_are_listed(db: TestDb) {
    let app = spawn_app_with(db, &[]).await;
    let firm = app
        .client
        .get(app.url("/rate"))
        .query(&[
            ("type", "firm"),
            ("sell_asset", USDC),
            ("buy_asset", "iso4217:MXN"),
            ("buy_amount", "1000"),
            ("client_id", ACCOUNT),
        ])
        .send()
        .await
        .expect("sent");
    let (status, firm) = status_and_json(firm).await;
    assert_eq!(status, 200, "{firm}");
    let id = firm["rate"]["id"].as_str().expect("id").to_owned();
    let (mut vera, _) = signed_in(&app, "vesna", Role::Viewer).await;
    let page = vera.get("/quotes").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&id) && page.body.contains("reserving"),
        "{}",
        page.body
    );
    assert!(page.body.contains("iso4217:MXN"));
    let mine = vera
        .get(&format!("/quotes?client={ACCOUNT}&state=reserving"))
        .await;
    assert!(mine.body.contains(&id));
    let used = vera.get("/quotes?state=used").await;
    assert!(!used.body.contains(&id));
    let other = vera.get("/quotes?client=GOTHER").await;
    assert!(!other.body.contains(&id));
    assert_eq!(vera.get("/quotes?state=sold").await.status, 400);
}

fn status_of(sim: &Simulator, id: &str) -> String {
    sim.transaction(id)
        .and_then(|t| t["status"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

on_both_backends!(
    signing_in_refuses_wrong_passwords_and_codes_and_locks_out,
    an_idle_session_ends,
    a_provisioned_authenticator_signs_in_without_enrolment,
    every_page_carries_the_security_headers_and_cookies_are_strict,
    roles_are_checked_on_the_server_and_every_view_of_a_value_is_audited,
    a_form_without_this_sessions_csrf_token_changes_nothing,
    a_reviewer_rejects_one_field_and_the_customer_is_asked_for_it_again,
    a_rejected_payout_is_checked_again_by_one_operator_and_paid_once,
    a_refund_takes_two_operators,
    a_payout_over_the_approval_limit_waits_for_an_operator_and_is_paid_once,
    firm_quotes_and_reserved_liquidity_are_listed,
);
