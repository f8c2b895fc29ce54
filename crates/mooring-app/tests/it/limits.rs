//! Body limits: JSON over 1 MiB and multipart over its configured limit are
//! 413 with `{"error"}`, whether or not the length was declared; a
//! multipart body is capped in raw bytes, parts and part names; a body that
//! is neither JSON, multipart nor form data is 415.

use mooring_testsupport::{TestDb, on_both_backends};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{ACCOUNT, assert_error, sender, spawn_app, spawn_app_with, status_and_json};

async fn json_over_one_mebibyte_is_413(db: TestDb) {
    let app = spawn_app(db).await;
    let mut body = sender("1");
    body["address"] = json!("x".repeat(1024 * 1024));
    assert_error(&app.put_customer(&body).await, 413);
    // Just under the limit is served (the value itself is too long: a REJECTED field).
    let mut body = sender("1");
    body["address"] = json!("x".repeat(1024 * 1024 - 400));
    let answer = app.put_customer(&body).await;
    assert_eq!(answer.0, 200);
    assert_eq!(answer.1["provided_fields"]["address"]["status"], "REJECTED");
}

async fn a_chunked_body_without_length_is_cut_at_the_limit(db: TestDb) {
    let app = spawn_app(db).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "PUT /customer HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b' '; 64 * 1024];
    // 1.25 MiB of whitespace in 64 KiB chunks; the server may answer and
    // close before all of it is sent.
    for _ in 0..20 {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"error\""), "{response}");
}

async fn multipart_over_its_limit_is_413(db: TestDb) {
    let app = spawn_app_with(db, &[("MOORING__SERVER__MULTIPART_LIMIT_BYTES", "65536")]).await;
    let form = |size: usize| {
        reqwest::multipart::Form::new()
            .text("account", ACCOUNT)
            .text("memo", "7")
            .part(
                "photo_id_front",
                reqwest::multipart::Part::bytes(vec![1u8; size]).file_name("id.jpg"),
            )
    };
    let response = app
        .client
        .put(app.url("/customer"))
        .multipart(form(70_000))
        .send()
        .await
        .expect("sent");
    assert_error(&status_and_json(response).await, 413);
    let response = app
        .client
        .put(app.url("/customer"))
        .multipart(form(60_000))
        .send()
        .await
        .expect("sent");
    assert_eq!(status_and_json(response).await.0, 200);
}

/// A chunked multipart body is cut at its raw size, even when it holds no
/// part content at all (a preamble of padding).
async fn a_chunked_multipart_body_is_cut_at_its_raw_size(db: TestDb) {
    let app = spawn_app_with(db, &[("MOORING__SERVER__MULTIPART_LIMIT_BYTES", "65536")]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "PUT /customer HTTP/1.1\r\nHost: {address}\r\nContent-Type: multipart/form-data; boundary=XyZ0\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b'p'; 32 * 1024];
    for _ in 0..40 {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"error\""), "{response}");
}

async fn multipart_parts_and_names_are_bounded(db: TestDb) {
    let app = spawn_app(db).await;
    let mut many = reqwest::multipart::Form::new().text("account", ACCOUNT);
    for i in 0..70 {
        many = many.text(format!("x{i}"), "v");
    }
    let response = app
        .client
        .put(app.url("/customer"))
        .multipart(many)
        .send()
        .await
        .expect("sent");
    let message = assert_error(&status_and_json(response).await, 400);
    assert!(message.contains("64 parts"), "{message}");
    let long = reqwest::multipart::Form::new()
        .text("account", ACCOUNT)
        .text("n".repeat(200), "v");
    let response = app
        .client
        .put(app.url("/customer"))
        .multipart(long)
        .send()
        .await
        .expect("sent");
    assert_error(&status_and_json(response).await, 400);
}

/// A body the multipart parser would panic on (found by the fuzzer) is a
/// 400, and the server goes on answering.
async fn a_multipart_boundary_too_short_to_parse_safely_is_400(db: TestDb) {
    let app = spawn_app(db).await;
    for boundary in ["b", "ab", "", &"x".repeat(71)] {
        let response = app
            .client
            .put(app.url("/customer"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body("-\n-b-b-\n\n-b-/--")
            .send()
            .await
            .expect("sent");
        let message = assert_error(&status_and_json(response).await, 400);
        assert!(message.contains("boundary"), "{message}");
    }
    let response = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
}

async fn bodies_are_parsed_by_their_content_type(db: TestDb) {
    let app = spawn_app(db).await;
    let body = serde_json::to_string(&sender("5")).expect("json");
    // JSON sent as text/plain: refused, not guessed at.
    let response = app
        .client
        .put(app.url("/customer"))
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    let message = assert_error(&status_and_json(response).await, 415);
    assert!(message.contains("application/json"), "{message}");
    // No content type: JSON.
    let response = app
        .client
        .put(app.url("/customer"))
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(status_and_json(response).await.0, 200);
    // Form data, as SEP-12 allows.
    let response = app
        .client
        .put(app.url("/customer"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "account={ACCOUNT}&memo=6&memo_type=id&type=sep31-sender&first_name=Ana&last_name=Lima&email_address=ana%40example.com"
        ))
        .send()
        .await
        .expect("sent");
    let (status, json) = status_and_json(response).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        json["provided_fields"]["first_name"]["status"], "ACCEPTED",
        "{json}"
    );
}

on_both_backends!(
    a_multipart_boundary_too_short_to_parse_safely_is_400,
    a_chunked_multipart_body_is_cut_at_its_raw_size,
    multipart_parts_and_names_are_bounded,
    bodies_are_parsed_by_their_content_type,
    json_over_one_mebibyte_is_413,
    a_chunked_body_without_length_is_cut_at_the_limit,
    multipart_over_its_limit_is_413
);
