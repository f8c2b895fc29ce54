//! `cargo xtask up` and `cargo xtask down`: Mooring and the in-repo AP
//! simulator on loopback, in the background, with a demo flow that walks
//! one payment from KYC to `completed`, and the back office with a demo
//! admin whose password and TOTP secret it prints.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{USDC, USDC_ISSUER as DISTRIBUTION, build_stack, root};

const MOORING_PORT: u16 = 8081;
const SIM_PORT: u16 = 8085;
/// The back office's default port (`backoffice.bind`).
const BACKOFFICE_PORT: u16 = 8082;
/// The demo user's password (a throwaway database of this machine).
const DEMO_PASSWORD: &str = "demo-password-mooring";
const ACCOUNT: &str = "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47";

fn dir() -> PathBuf {
    root().join("target").join("xtask-up")
}

fn pid_file() -> PathBuf {
    dir().join("pids")
}

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn running_pids() -> Vec<u32> {
    fs::read_to_string(pid_file())
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| alive(*p))
        .collect()
}

/// Starts the simulator and Mooring in the background, then runs the demo.
pub fn up() -> Result<(), String> {
    if !running_pids().is_empty() {
        return Err("the stack is already up: `cargo xtask down` first".into());
    }
    for port in [MOORING_PORT, SIM_PORT, BACKOFFICE_PORT] {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Err(format!("port {port} is taken by another program"));
        }
    }
    build_stack()?;
    let dir = dir();
    // A fresh database each time: this is a demo stack.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let bin = root().join("target").join("debug");
    let log = |name: &str| {
        fs::File::create(dir.join(name)).map_err(|e| format!("cannot create a log file: {e}"))
    };

    let mut sim = Command::new(bin.join("ap-simulator"));
    sim.args([
        "--port",
        &SIM_PORT.to_string(),
        "--events-to",
        &format!("http://127.0.0.1:{MOORING_PORT}"),
    ]);
    let sim = background(sim, log("ap-simulator.log")?, "ap-simulator")?;
    let env = [
        ("MOORING__SERVER__HOST", "127.0.0.1".to_owned()),
        ("MOORING__SERVER__PORT", MOORING_PORT.to_string()),
        (
            "PLATFORM_API_BASE_URL",
            format!("http://127.0.0.1:{SIM_PORT}"),
        ),
        ("MOORING__PLATFORM__API", "rest".to_owned()),
        ("MOORING__PLATFORM__POLL_INTERVAL_MS", "250".to_owned()),
        ("MOORING__PAYOUT__RAIL", "http".to_owned()),
        (
            "MOORING__PAYOUT__HTTP__URL",
            format!("http://127.0.0.1:{SIM_PORT}/_rail/payouts"),
        ),
        (
            "MOORING__CUSTODIAN__DISTRIBUTION_ACCOUNT",
            DISTRIBUTION.to_owned(),
        ),
        ("MOORING__LOG__FORMAT", "json".to_owned()),
    ];
    let mooring_command = || {
        let mut c = Command::new(bin.join("mooring"));
        c.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("MOORING__DATABASE__DATA_DIR", dir.join("data"))
            .env_remove("DATABASE_URL");
        c
    };
    let demo_user = demo_user(mooring_command())?;
    let mooring = mooring_command();
    let mooring = background(mooring, log("mooring.log")?, "mooring")?;
    fs::write(pid_file(), format!("{sim} {mooring}\n"))
        .map_err(|e| format!("cannot write the pid file: {e}"))?;

    let ready = wait_until(Duration::from_secs(30), || {
        get(MOORING_PORT, "/ready").is_ok_and(|(s, _)| s == 200)
            && get(SIM_PORT, "/transactions?sep=31&page_size=1").is_ok_and(|(s, _)| s == 200)
    });
    if !ready {
        return Err(format!(
            "the stack did not become ready in 30 s; see the logs in {} (and `cargo xtask down`)",
            dir.display()
        ));
    }
    let demo = demo();
    eprintln!(
        "\nxtask: the stack is up (logs in {}):\n\
         \x20 mooring       http://127.0.0.1:{MOORING_PORT}  (/health /ready /metrics /openapi.json; SQLite in target/xtask-up/data)\n\
         \x20 back office   http://127.0.0.1:{BACKOFFICE_PORT}  (user demo, an admin; password {DEMO_PASSWORD}; TOTP secret {demo_user}:\n\
         \x20               add it to an authenticator app, or `oathtool --totp -b {demo_user}`)\n\
         \x20 AP simulator  http://127.0.0.1:{SIM_PORT}  (Platform API; /_sim/transactions to create payments)\n\
         xtask: `cargo xtask down` stops both.",
        dir.display()
    );
    demo
}

/// Adds the demo admin with its TOTP provisioned (`mooring users add
/// --with-totp`), before the server starts; returns the TOTP secret.
fn demo_user(mut mooring: Command) -> Result<String, String> {
    use std::io::Write as _;
    let mut add = mooring
        .args(["users", "add", "demo", "--role", "admin", "--with-totp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run mooring users add: {e}"))?;
    if let Some(mut stdin) = add.stdin.take() {
        writeln!(stdin, "{DEMO_PASSWORD}").map_err(|e| format!("cannot give the password: {e}"))?;
    }
    let out = add.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "mooring users add demo failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("totp secret: ").map(str::to_owned))
        .ok_or_else(|| "mooring users add printed no TOTP secret".into())
}

/// Stops what `up` started (SIGTERM, then waits for a clean exit).
pub fn down() -> Result<(), String> {
    let pids = running_pids();
    if pids.is_empty() {
        eprintln!("xtask: nothing is running");
        let _ = fs::remove_file(pid_file());
        return Ok(());
    }
    for pid in &pids {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let stopped = wait_until(Duration::from_secs(30), || pids.iter().all(|p| !alive(*p)));
    let _ = fs::remove_file(pid_file());
    if stopped {
        eprintln!("xtask: stopped mooring and the AP simulator");
        Ok(())
    } else {
        Err(format!("still running after 30 s: {pids:?}"))
    }
}

/// Spawns `command` in a process group of its own (Ctrl-C in this terminal
/// does not reach it), its output to `log`.
fn background(mut command: Command, log: fs::File, what: &str) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let err = log
        .try_clone()
        .map_err(|e| format!("cannot open a log file: {e}"))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    Ok(child.id())
}

fn wait_until(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// One HTTP/1.1 exchange on loopback: the status and the JSON body (null
/// when empty or not JSON).
fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {head:?}"))?;
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn get(port: u16, path: &str) -> Result<(u16, Value), String> {
    request(port, "GET", path, None)
}

/// A request that must answer 2xx.
fn call(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let (status, answer) = request(port, method, path, body)?;
    if (200..300).contains(&status) {
        Ok(answer)
    } else {
        Err(format!("{method} {path} answered {status}: {answer}"))
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> Result<&'a str, String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no {pointer} in {v}"))
}

/// A sender and a receiver, a firm quote, a transaction on it, its payment,
/// and the payout that completes it.
fn demo() -> Result<(), String> {
    eprintln!("\nxtask: demo: one SEP-31 payment, 100 USDC → BRL");
    let sender = call(
        MOORING_PORT,
        "PUT",
        "/customer",
        Some(
            &json!({"account": ACCOUNT, "memo": "1", "memo_type": "id", "type": "sep31-sender",
            "first_name": "John", "last_name": "Doe", "email_address": "john@example.com"}),
        ),
    )?;
    let receiver = call(
        MOORING_PORT,
        "PUT",
        "/customer",
        Some(
            &json!({"account": ACCOUNT, "memo": "2", "memo_type": "id", "type": "sep31-receiver",
            "first_name": "Maria", "last_name": "Silva", "email_address": "maria@example.com",
            "bank_account_number": "0001234567", "bank_account_type": "checking", "bank_number": "341"}),
        ),
    )?;
    let (sender_id, receiver_id) = (text(&sender, "/id")?, text(&receiver, "/id")?);
    eprintln!(
        "xtask:   1. PUT /customer: sender {sender_id} and receiver {receiver_id}, both {}",
        text(&receiver, "/status")?
    );

    let rate = call(
        MOORING_PORT,
        "GET",
        &format!(
            "/rate?type=firm&sell_asset={USDC}&buy_asset=iso4217:BRL&sell_amount=100&buy_delivery_method=PIX"
        ),
        None,
    )?;
    let quote_id = text(&rate, "/rate/id")?;
    let sell = text(&rate, "/rate/sell_amount")?;
    let buy = text(&rate, "/rate/buy_amount")?;
    let fee = text(&rate, "/rate/fee/total")?;
    eprintln!(
        "xtask:   2. GET /rate?type=firm: quote {quote_id}: {sell} USDC → {buy} BRL (fee {fee} USDC), expires {}",
        text(&rate, "/rate/expires_at")?
    );

    let created = call(
        SIM_PORT,
        "POST",
        "/_sim/transactions",
        Some(&json!({
            "quote_id": quote_id,
            "amount_expected": {"amount": sell, "asset": USDC},
            "amount_in": {"amount": sell, "asset": USDC},
            "amount_out": {"amount": buy, "asset": "iso4217:BRL"},
            "amount_fee": {"amount": fee, "asset": USDC},
            "customers": {"sender": {"id": sender_id}, "receiver": {"id": receiver_id}},
        })),
    )?;
    let id = text(&created, "/id")?.to_owned();
    eprintln!("xtask:   3. the AP created transaction {id} (pending_sender)");
    call(
        SIM_PORT,
        "POST",
        &format!("/_sim/transactions/{id}/receive"),
        None,
    )?;
    eprintln!("xtask:   4. the sender's {sell} USDC arrived on Stellar (pending_receiver)");

    let done = wait_until(Duration::from_secs(30), || {
        get(SIM_PORT, &format!("/transactions/{id}")).is_ok_and(|(_, t)| t["status"] == "completed")
    });
    let history = call(
        SIM_PORT,
        "GET",
        &format!("/_sim/transactions/{id}/history"),
        None,
    )?;
    let tx = call(SIM_PORT, "GET", &format!("/transactions/{id}"), None)?;
    if !done {
        return Err(format!(
            "the transaction did not complete in 30 s: {history} (logs in {})",
            dir().display()
        ));
    }
    eprintln!(
        "xtask:   5. Mooring paid {} {} out (payout {}) and told the AP: {}",
        text(&tx, "/amount_out/amount")?,
        text(&tx, "/amount_out/asset")?,
        tx["external_transaction_id"].as_str().unwrap_or("?"),
        history["statuses"]
            .as_array()
            .map(|h| h
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" → "))
            .unwrap_or_default()
    );
    Ok(())
}
