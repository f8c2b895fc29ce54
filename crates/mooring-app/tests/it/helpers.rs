use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::dev::ServerHandle;
use mooring_app::settings::LogFormat;
use mooring_app::{Application, Settings, telemetry};
use mooring_testsupport::TestDb;
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

pub const ACCOUNT: &str = "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47";
pub const OTHER_ACCOUNT: &str = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";
pub const JWT_SECRET: &str = "a-callback-secret-of-at-least-32-bytes!";

/// Everything every test server logged, as JSON lines, at the most verbose
/// level Mooring's own crates have.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().expect("log lock")).into_owned()
}

/// The log lines of one request: those logged inside the span of the
/// request whose `x-request-id` was `request_id`. The buffer is shared by
/// every test of the binary; a request id unique to the test keeps its
/// assertions on its own lines.
pub fn logs_of_request(request_id: &str) -> Vec<Value> {
    captured_logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|line| {
            line["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|s| s["request_id"] == request_id))
        })
        .collect()
}

/// A request id no other test uses.
pub fn unique_request_id() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = SharedWriter(buffer.clone());
        let filter = EnvFilter::new(
            "info,mooring_app=trace,mooring_http=trace,mooring_usecases=trace,mooring_store=trace",
        );
        let subscriber = telemetry::subscriber(LogFormat::Json, filter, move || writer.clone());
        tracing::subscriber::set_global_default(subscriber)
            .expect("one global subscriber per test binary");
        buffer
    })
}

#[derive(Clone)]
struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A callback token as the AP signs it: HS256 over the secret's bytes, with
/// `iat` and `exp` relative to now.
pub fn jwt(secret: &str, iat_offset: i64, exp_offset: i64, alg: jsonwebtoken::Algorithm) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iat": now + iat_offset, "exp": now + exp_offset});
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &key).expect("signed")
}

/// A TOML file for `MOORING_CONFIG`, deleted when dropped.
pub fn config_file(content: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    file.write_all(content.as_bytes()).expect("written");
    file
}

/// A loopback port free at the time of the call (nothing listens on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// The `mooring` binary, run as operators run it: a process of its own, so
/// its logs and metrics are its alone (a test server in this process shares
/// them with every other test). Killed when dropped.
pub struct MooringProcess {
    pub child: std::process::Child,
    pub port: u16,
    pub base: String,
}

impl MooringProcess {
    /// Starts it on a free port with `env` (and no `RUST_LOG`), its stderr
    /// to `stderr`, and waits for `/health`, with a deadline.
    pub async fn start(
        mut env: HashMap<String, String>,
        stderr: std::process::Stdio,
    ) -> MooringProcess {
        let port = free_port();
        env.insert("MOORING__SERVER__PORT".into(), port.to_string());
        env.entry("MOORING__BACKOFFICE__BIND".into())
            .or_insert_with(|| "127.0.0.1:0".into());
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_mooring"))
            .envs(env)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("mooring starts");
        let process = MooringProcess {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while client
            .get(format!("{}/health", process.base))
            .send()
            .await
            .map_or(true, |r| !r.status().is_success())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "mooring did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        process
    }
}

impl Drop for MooringProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct TestApp {
    pub address: String,
    /// `/metrics`' own listener, when `metrics.bind` is set.
    pub metrics_address: Option<String>,
    /// The back office's listener, when it is enabled.
    pub backoffice_address: Option<String>,
    pub client: reqwest::Client,
    pub db: TestDb,
    handle: ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command now; the returned future only waits for it.
        drop(self.handle.stop(false));
    }
}

/// The environment a test server starts with, before the test's own.
pub fn base_env(db: &TestDb) -> HashMap<String, String> {
    let mut env = HashMap::from([
        ("DATABASE_URL".to_owned(), db.url().to_owned()),
        ("MOORING__SERVER__HOST".to_owned(), "127.0.0.1".to_owned()),
        ("MOORING__SERVER__PORT".to_owned(), "0".to_owned()),
        (
            "MOORING__BACKOFFICE__BIND".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
        ("MOORING__SERVER__WORKERS".to_owned(), "2".to_owned()),
        ("MOORING__DATABASE__POOL_SIZE".to_owned(), "4".to_owned()),
        // The engine is on only in the tests that give it an AP.
        ("MOORING__PLATFORM__ENABLED".to_owned(), "false".to_owned()),
    ]);
    env.extend(db.pii_env());
    env
}

pub async fn spawn_app(db: TestDb) -> TestApp {
    spawn_app_with(db, &[]).await
}

pub async fn spawn_app_with(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
    log_buffer();
    let mut env = base_env(&db);
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let settings = Settings::load(&env).expect("test settings");
    let app = Application::build(settings).await.expect("server starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    let backoffice_address = app
        .backoffice_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        metrics_address,
        backoffice_address,
        client: reqwest::Client::new(),
        db,
        handle,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get_customer(&self, query: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .client
            .get(self.url("/customer"))
            .query(query)
            .send()
            .await
            .expect("request sent");
        status_and_json(response).await
    }

    pub async fn put_customer(&self, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .put(self.url("/customer"))
            .json(body)
            .send()
            .await
            .expect("request sent");
        status_and_json(response).await
    }

    pub async fn delete_customer(&self, id: &str) -> (u16, Value) {
        let response = self
            .client
            .delete(self.url(&format!("/customer/{id}")))
            .send()
            .await
            .expect("request sent");
        status_and_json(response).await
    }
}

/// The status and the JSON body (`null` for an empty body). A body that is
/// not JSON fails the test: every answer of Mooring's is JSON or empty.
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body read");
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{status}: body is not JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, body)
}

/// Asserts an error answer: the status and a non-empty `error` string.
pub fn assert_error(answer: &(u16, Value), status: u16) -> String {
    assert_eq!(answer.0, status, "unexpected answer {answer:?}");
    let message = answer
        .1
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no error in {answer:?}"));
    assert!(!message.is_empty());
    message.to_owned()
}

pub fn sender(memo: &str) -> Value {
    json!({
        "account": ACCOUNT, "memo": memo, "memo_type": "id", "type": "sep31-sender",
        "first_name": "John", "last_name": "Doe", "email_address": "johndoe@example.com"
    })
}
