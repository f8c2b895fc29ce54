//! GET/PUT/DELETE /customer through the real server, on both backends.

use mooring_testsupport::{TestDb, on_both_backends};
use serde_json::{Value, json};

use crate::helpers::{
    ACCOUNT, OTHER_ACCOUNT, assert_error, sender, spawn_app, spawn_app_with, status_and_json,
};

fn id_of(answer: &(u16, Value)) -> String {
    assert_eq!(answer.0, 200, "{answer:?}");
    answer.1["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {answer:?}"))
        .to_owned()
}

async fn put_then_get_by_id_and_by_account(db: TestDb) {
    let app = spawn_app(db).await;
    let put = app.put_customer(&sender("780284017")).await;
    let id = id_of(&put);
    // AP 3.x+ reads the full customer from the PUT answer; 2.x reads the id.
    assert_eq!(put.1["status"], "ACCEPTED");

    let by_id = app
        .get_customer(&[("id", &id), ("type", "sep31-sender")])
        .await;
    assert_eq!(by_id.0, 200);
    assert_eq!(by_id.1["id"], id.as_str());
    assert_eq!(by_id.1["status"], "ACCEPTED");
    assert_eq!(by_id.1["fields"], json!({}));
    assert_eq!(
        by_id.1["provided_fields"]["email_address"],
        json!({"type": "string", "description": "Email address", "optional": false, "status": "ACCEPTED"})
    );
    let by_account = app
        .get_customer(&[
            ("account", ACCOUNT),
            ("memo", "780284017"),
            ("memo_type", "id"),
            ("type", "sep31-sender"),
        ])
        .await;
    assert_eq!(by_account, by_id);
    // lang and transaction_id are accepted.
    let with_extras = app
        .get_customer(&[
            ("id", &id),
            ("type", "sep31-sender"),
            ("lang", "en"),
            ("transaction_id", "t-1"),
        ])
        .await;
    assert_eq!(with_extras, by_id);
}

async fn unknown_account_needs_info_without_id(db: TestDb) {
    let app = spawn_app(db).await;
    let answer = app
        .get_customer(&[
            ("account", ACCOUNT),
            ("memo", "1"),
            ("memo_type", "id"),
            ("type", "sep31-receiver"),
        ])
        .await;
    assert_eq!(answer.0, 200);
    assert!(
        answer.1.get("id").is_none(),
        "the AP's delete flow needs no id here: {answer:?}"
    );
    assert_eq!(answer.1["status"], "NEEDS_INFO");
    let fields = answer.1["fields"].as_object().expect("fields map");
    let mut names: Vec<_> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "bank_account_number",
            "bank_account_type",
            "bank_number",
            "email_address",
            "first_name",
            "last_name"
        ]
    );
    assert_eq!(
        fields["bank_account_type"]["choices"],
        json!(["checking", "savings"])
    );
    assert_eq!(fields["first_name"]["type"], "string");
    assert_eq!(fields["first_name"]["optional"], false);
    assert_eq!(answer.1["provided_fields"], json!({}));
}

async fn unknown_ids_are_404(db: TestDb) {
    let app = spawn_app(db).await;
    assert_error(
        &app.get_customer(&[("id", "8e4a7f0e-5a7c-4a8e-9a37-2f1c3c9d0b11")])
            .await,
        404,
    );
    assert_error(&app.get_customer(&[("id", "not-a-uuid")]).await, 404);
    let mut put = sender("1");
    put["id"] = json!("8e4a7f0e-5a7c-4a8e-9a37-2f1c3c9d0b11");
    assert_error(&app.put_customer(&put).await, 404);
    assert_error(
        &app.delete_customer("8e4a7f0e-5a7c-4a8e-9a37-2f1c3c9d0b11")
            .await,
        404,
    );
    assert_error(&app.delete_customer("nope").await, 404);
}

async fn an_id_sent_with_an_account_that_does_not_own_it_is_404(db: TestDb) {
    let app = spawn_app(db).await;
    let id = id_of(&app.put_customer(&sender("5")).await);
    assert_error(
        &app.get_customer(&[("id", &id), ("account", OTHER_ACCOUNT), ("memo", "5")])
            .await,
        404,
    );
    assert_error(
        &app.get_customer(&[("id", &id), ("account", ACCOUNT), ("memo", "6")])
            .await,
        404,
    );
    assert_error(
        &app.get_customer(&[("id", &id), ("account", ACCOUNT)]).await,
        404,
    );
    assert_error(&app.get_customer(&[("id", &id), ("memo", "6")]).await, 404);
    assert_error(
        &app.put_customer(&json!({"id": id, "memo": "6", "first_name": "Mallory"}))
            .await,
        404,
    );
    assert_eq!(app.get_customer(&[("id", &id), ("memo", "5")]).await.0, 200);
    let stolen = json!({"id": id, "account": OTHER_ACCOUNT, "first_name": "Mallory"});
    assert_error(&app.put_customer(&stolen).await, 404);
    let owner = app
        .get_customer(&[("id", &id), ("account", ACCOUNT), ("memo", "5")])
        .await;
    assert_eq!(owner.0, 200);
    assert_eq!(
        owner.1["provided_fields"]["first_name"]["status"],
        "ACCEPTED"
    );
}

async fn one_id_per_account_and_memo_whatever_the_type(db: TestDb) {
    let app = spawn_app(db).await;
    let first = id_of(&app.put_customer(&sender("42")).await);
    let receiver = json!({"account": ACCOUNT, "memo": "42", "memo_type": "text", "type": "sep31-receiver",
        "bank_account_number": "0001234", "bank_account_type": "checking", "bank_number": "341"});
    let second = app.put_customer(&receiver).await;
    assert_eq!(id_of(&second), first);
    assert_eq!(
        second.1["status"], "ACCEPTED",
        "the sender's fields count for the receiver type too"
    );
    // One memo, one customer, however it is spelled.
    assert_eq!(id_of(&app.put_customer(&sender("0042")).await), first);
    let by_other_spelling = app
        .get_customer(&[
            ("account", ACCOUNT),
            ("memo", "042"),
            ("type", "sep31-sender"),
        ])
        .await;
    assert_eq!(by_other_spelling.1["id"], first.as_str());
    let other_memo = id_of(&app.put_customer(&sender("43")).await);
    assert_ne!(other_memo, first);
    let mut no_memo = sender("x");
    no_memo.as_object_mut().expect("object").remove("memo");
    no_memo.as_object_mut().expect("object").remove("memo_type");
    let no_memo = id_of(&app.put_customer(&no_memo).await);
    assert_ne!(no_memo, first);
    // Concurrent first PUTs of one new (account, memo) still make one customer.
    let body = sender("77");
    let puts = (0..8).map(|_| app.put_customer(&body));
    let ids: Vec<String> = futures_util::future::join_all(puts)
        .await
        .iter()
        .map(id_of)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
}

async fn only_the_fields_sent_change(db: TestDb) {
    let app = spawn_app(db).await;
    let id = id_of(&app.put_customer(&sender("9")).await);
    let update = json!({"id": id, "last_name": "Roe", "address": "1 Main St\nSpringfield", "birth_date": "1980-05-17"});
    let answer = app.put_customer(&update).await;
    assert_eq!(id_of(&answer), id);
    let provided = answer.1["provided_fields"].as_object().expect("map");
    let mut names: Vec<_> = provided.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "address",
            "birth_date",
            "email_address",
            "first_name",
            "last_name"
        ]
    );
    // Fields the type does not ask for are listed too, as optional.
    assert_eq!(provided["address"]["optional"], true);
    assert_eq!(provided["birth_date"]["type"], "date");
    assert_eq!(provided["birth_date"]["status"], "ACCEPTED");
    // An empty value clears a field.
    let cleared = app.put_customer(&json!({"id": id, "first_name": ""})).await;
    assert_eq!(cleared.1["status"], "NEEDS_INFO");
    assert!(cleared.1["fields"].get("first_name").is_some());
}

async fn bad_values_are_rejected_fields(db: TestDb) {
    let app = spawn_app(db).await;
    let mut body = sender("11");
    body["email_address"] = json!("johndoe(at)example");
    body["birth_date"] = json!("17/05/1980");
    body["address_country_code"] = json!("XYZ");
    let answer = app.put_customer(&body).await;
    assert_eq!(answer.0, 200);
    assert_eq!(answer.1["status"], "NEEDS_INFO");
    for field in ["email_address", "birth_date", "address_country_code"] {
        let f = &answer.1["provided_fields"][field];
        assert_eq!(f["status"], "REJECTED", "{field}: {f}");
        assert!(
            f["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{field}: {f}"
        );
    }
    assert_eq!(
        answer.1["provided_fields"]["first_name"]["status"],
        "ACCEPTED"
    );
    let receiver = json!({"account": ACCOUNT, "memo": "11", "type": "sep31-receiver", "bank_account_type": "brokerage"});
    let answer = app.put_customer(&receiver).await;
    assert_eq!(
        answer.1["provided_fields"]["bank_account_type"]["status"],
        "REJECTED"
    );
    assert_eq!(
        answer.1["provided_fields"]["bank_account_type"]["error"],
        "must be one of: checking, savings"
    );
}

async fn malformed_requests_are_400(db: TestDb) {
    let app = spawn_app(db).await;
    let mut unknown_type = sender("1");
    unknown_type["type"] = json!("sep31-banker");
    assert!(assert_error(&app.put_customer(&unknown_type).await, 400).contains("sep31-banker"));
    assert_error(
        &app.get_customer(&[("account", ACCOUNT), ("type", "sep31-banker")])
            .await,
        400,
    );
    assert_error(&app.put_customer(&json!({"first_name": "A"})).await, 400);
    assert_error(&app.get_customer(&[("type", "sep31-sender")]).await, 400);
    let mut bad_account = sender("1");
    bad_account["account"] = json!("GABC");
    assert_error(&app.put_customer(&bad_account).await, 400);
    assert_error(
        &app.get_customer(&[("account", "not-an-account")]).await,
        400,
    );
    let mut bad_memo = sender("not-a-number");
    bad_memo["memo_type"] = json!("id");
    assert_error(&app.put_customer(&bad_memo).await, 400);
    assert_error(
        &app.get_customer(&[("account", ACCOUNT), ("memo", "1"), ("memo_type", "bogus")])
            .await,
        400,
    );
    let mut file_in_json = sender("1");
    file_in_json["photo_id_front"] = json!("AAAA");
    assert_error(&app.put_customer(&file_in_json).await, 400);
    for raw in ["{", "[]", "\"text\"", "{\"first_name\": {\"x\": 1}}", ""] {
        let response = app
            .client
            .put(app.url("/customer"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("sent");
        assert_error(&status_and_json(response).await, 400);
    }
    // What no store can keep is refused, not a 500.
    let mut nul = sender("1");
    nul["first_name"] = json!("Jo\u{0}hn");
    assert_error(&app.put_customer(&nul).await, 400);
    assert_error(
        &app.get_customer(&[
            ("account", ACCOUNT),
            ("memo", "a\u{0}b"),
            ("memo_type", "text"),
        ])
        .await,
        400,
    );
    let mut long_txn = sender("1");
    long_txn["transaction_id"] = json!("t".repeat(5000));
    assert_error(&app.put_customer(&long_txn).await, 400);
    // Unknown JSON fields are ignored.
    let mut extra = sender("1");
    extra["favourite_colour"] = json!("teal");
    extra["nested"] = json!({"x": [1, 2]});
    assert_eq!(app.put_customer(&extra).await.0, 200);
}

async fn multipart_puts_carry_files(db: TestDb) {
    let app = spawn_app(db).await;
    let form = reqwest::multipart::Form::new()
        .text("account", ACCOUNT)
        .text("memo", "31")
        .text("memo_type", "id")
        .text("type", "sep31-sender")
        .text("first_name", "Ana")
        .text("last_name", "Silva")
        .text("email_address", "ana@example.com")
        .part(
            "photo_id_front",
            reqwest::multipart::Part::bytes(vec![0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])
                .file_name("photo_id_front")
                .mime_str("image/jpeg")
                .expect("mime"),
        )
        .part(
            "proof_of_liveness",
            reqwest::multipart::Part::bytes(vec![9; 4096]).file_name("liveness.mp4"),
        );
    let response = app
        .client
        .put(app.url("/customer"))
        .multipart(form)
        .send()
        .await
        .expect("sent");
    let answer = status_and_json(response).await;
    let id = id_of(&answer);
    assert_eq!(answer.1["status"], "ACCEPTED");
    for file in ["photo_id_front", "proof_of_liveness"] {
        assert_eq!(answer.1["provided_fields"][file]["type"], "binary");
        assert_eq!(answer.1["provided_fields"][file]["status"], "ACCEPTED");
    }
    // JSON and multipart PUTs address the same customer.
    assert_eq!(id_of(&app.put_customer(&sender("31")).await), id);
    let empty_file = reqwest::multipart::Form::new().text("id", id.clone()).part(
        "photo_id_back",
        reqwest::multipart::Part::bytes(Vec::new()).file_name("x"),
    );
    let response = app
        .client
        .put(app.url("/customer"))
        .multipart(empty_file)
        .send()
        .await
        .expect("sent");
    let answer = status_and_json(response).await;
    assert!(answer.1["provided_fields"].get("photo_id_back").is_none());
    let garbage = app
        .client
        .put(app.url("/customer"))
        .header("content-type", "multipart/form-data; boundary=XYZ0")
        .body("this is not multipart")
        .send()
        .await
        .expect("sent");
    assert_error(&status_and_json(garbage).await, 400);
}

async fn delete_as_the_ap_does_it(db: TestDb) {
    let app = spawn_app(db).await;
    let id = id_of(&app.put_customer(&sender("55")).await);
    let other = id_of(&app.put_customer(&sender("56")).await);
    // SEP-12 DELETE: the AP looks the customer up for each type, then deletes each id.
    let mut ids = Vec::new();
    for t in ["sep31-sender", "sep31-receiver"] {
        let answer = app
            .get_customer(&[
                ("account", ACCOUNT),
                ("memo", "55"),
                ("memo_type", "id"),
                ("type", t),
            ])
            .await;
        if let Some(id) = answer.1.get("id").and_then(Value::as_str) {
            ids.push(id.to_owned());
        }
    }
    ids.dedup();
    assert_eq!(ids, std::slice::from_ref(&id));
    let deleted = app.delete_customer(&id).await;
    assert_eq!(deleted, (204, Value::Null));
    assert_error(&app.get_customer(&[("id", &id)]).await, 404);
    let after = app
        .get_customer(&[
            ("account", ACCOUNT),
            ("memo", "55"),
            ("type", "sep31-sender"),
        ])
        .await;
    assert!(after.1.get("id").is_none());
    assert_error(&app.delete_customer(&id).await, 404);
    assert_eq!(app.get_customer(&[("id", &other)]).await.0, 200);
}

async fn without_type_the_stored_type_answers(db: TestDb) {
    let app = spawn_app(db).await;
    let mut body = sender("60");
    body["type"] = json!("sep31-receiver");
    let id = id_of(&app.put_customer(&body).await);
    let answer = app.get_customer(&[("id", &id)]).await;
    assert_eq!(answer.1["status"], "NEEDS_INFO");
    assert!(answer.1["fields"].get("bank_account_number").is_some());
}

async fn transaction_id_is_accepted(db: TestDb) {
    let app = spawn_app(db).await;
    let mut body = sender("61");
    body["transaction_id"] = json!("82fhs729f63dh0v4");
    assert_eq!(app.put_customer(&body).await.0, 200);
}

async fn manual_review_holds_complete_customers_in_processing(db: TestDb) {
    let app = spawn_app_with(db, &[("MOORING__KYC__REVIEW", "manual")]).await;
    let answer = app.put_customer(&sender("70")).await;
    assert_eq!(answer.1["status"], "PROCESSING");
    assert_eq!(
        answer.1["provided_fields"]["first_name"]["status"],
        "PROCESSING"
    );
    let mut partial = sender("71");
    partial
        .as_object_mut()
        .expect("object")
        .remove("email_address");
    assert_eq!(app.put_customer(&partial).await.1["status"], "NEEDS_INFO");
}

async fn routes_and_methods(db: TestDb) {
    let app = spawn_app(db).await;
    let response = app.client.get(app.url("/nope")).send().await.expect("sent");
    assert_error(&status_and_json(response).await, 404);
    let response = app
        .client
        .post(app.url("/customer"))
        .send()
        .await
        .expect("sent");
    assert_error(&status_and_json(response).await, 405);
    let response = app
        .client
        .get(app.url("/customer/abc"))
        .send()
        .await
        .expect("sent");
    assert_error(&status_and_json(response).await, 405);
}

async fn types_come_from_the_ap_assets_file(db: TestDb) {
    let assets = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/ap-v2.1.0_4c793164dc_service-runner-assets.yaml"
    );
    let app = spawn_app_with(db, &[("ASSETS_TYPE", "file"), ("ASSETS_VALUE", assets)]).await;
    let mut body = sender("80");
    body["type"] = json!("sep31-large-sender");
    let answer = app.put_customer(&body).await;
    assert_eq!(answer.1["status"], "ACCEPTED", "{answer:?}");
    let mut receiver = sender("81");
    receiver["type"] = json!("sep31-receiver");
    assert_eq!(app.put_customer(&receiver).await.1["status"], "NEEDS_INFO");
}

on_both_backends!(
    put_then_get_by_id_and_by_account,
    unknown_account_needs_info_without_id,
    unknown_ids_are_404,
    an_id_sent_with_an_account_that_does_not_own_it_is_404,
    one_id_per_account_and_memo_whatever_the_type,
    only_the_fields_sent_change,
    bad_values_are_rejected_fields,
    malformed_requests_are_400,
    multipart_puts_carry_files,
    delete_as_the_ap_does_it,
    without_type_the_stored_type_answers,
    transaction_id_is_accepted,
    manual_review_holds_complete_customers_in_processing,
    routes_and_methods,
    types_come_from_the_ap_assets_file,
);
