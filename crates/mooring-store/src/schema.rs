//! The tables of both backends, as diesel sees them. A test compares this
//! file with the migrated databases (see tests/it/schema.rs); change both
//! together.

diesel::table! {
    customers (id) {
        id -> Text,
        account -> Text,
        memo -> Text,
        memo_type -> Nullable<Text>,
        customer_type -> Nullable<Text>,
        review -> Text,
        review_message -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    customer_fields (customer_id, name) {
        customer_id -> Text,
        name -> Text,
        legacy_value -> Text,
        updated_at -> Timestamp,
        sealed -> Nullable<Binary>,
        rejected -> Nullable<Text>,
    }
}

diesel::table! {
    customer_files (customer_id, name) {
        customer_id -> Text,
        name -> Text,
        legacy_content -> Binary,
        content_type -> Nullable<Text>,
        size_bytes -> BigInt,
        updated_at -> Timestamp,
        sealed -> Nullable<Binary>,
        rejected -> Nullable<Text>,
    }
}

diesel::table! {
    customer_transactions (customer_id, transaction_id) {
        customer_id -> Text,
        transaction_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    quotes (id) {
        id -> Text,
        sell_asset -> Text,
        buy_asset -> Text,
        price -> Text,
        sell_amount -> Text,
        buy_amount -> Text,
        fee_total -> Text,
        fee_asset -> Text,
        sell_delivery_method -> Nullable<Text>,
        buy_delivery_method -> Nullable<Text>,
        country_code -> Nullable<Text>,
        client_id -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_by -> Nullable<Text>,
        used_at -> Nullable<Timestamp>,
        in_holds -> Bool,
    }
}

diesel::table! {
    liquidity_holds (asset, ends_at) {
        asset -> Text,
        ends_at -> Timestamp,
        held -> Text,
    }
}

diesel::table! {
    quote_fee_details (quote_id, position) {
        quote_id -> Text,
        position -> Integer,
        name -> Text,
        description -> Nullable<Text>,
        amount -> Text,
    }
}

diesel::table! {
    deposit_addresses (transaction_id) {
        transaction_id -> Text,
        account -> Text,
        memo -> Text,
        memo_type -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    counters (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    payouts (transaction_id) {
        transaction_id -> Text,
        state -> Text,
        attempt -> Integer,
        quote_id -> Nullable<Text>,
        receiver_id -> Nullable<Text>,
        amount_in -> Nullable<Text>,
        amount_in_asset -> Nullable<Text>,
        amount_out -> Nullable<Text>,
        amount_out_asset -> Nullable<Text>,
        payout_id -> Nullable<Text>,
        told_pending -> Integer,
        reason -> Nullable<Text>,
        last_error -> Nullable<Text>,
        failures -> Integer,
        refund_reference -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        due_at -> Timestamp,
        claimed_by -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        claim_token -> BigInt,
        sender_id -> Nullable<Text>,
        legacy_order -> Nullable<Text>,
        submitted_at -> Nullable<Timestamp>,
        sealed_order -> Nullable<Binary>,
        changed_by -> Nullable<Text>,
    }
}

diesel::table! {
    data_keys (customer_id) {
        customer_id -> Text,
        kek_id -> Text,
        wrapped -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    key_checks (name) {
        name -> Text,
        kek_id -> Text,
        wrapped -> Binary,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    events (id) {
        id -> Text,
        kind -> Text,
        occurred_at -> Timestamp,
        received_at -> Timestamp,
        transaction_id -> Nullable<Text>,
        sighting -> Nullable<Text>,
        customer_id -> Nullable<Text>,
        body -> Text,
        processed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    poll_marks (name) {
        name -> Text,
        mark -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit (id) {
        id -> BigInt,
        at -> Timestamp,
        actor_kind -> Text,
        actor -> Text,
        origin -> Text,
        action -> Text,
        customer_id -> Nullable<Text>,
        transaction_id -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::table! {
    staff_users (name) {
        name -> Text,
        role -> Text,
        password_hash -> Text,
        disabled -> Bool,
        failures -> Integer,
        locked_until -> Nullable<Timestamp>,
        totp_sealed -> Nullable<Binary>,
        totp_enrolled -> Bool,
        totp_last_step -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    staff_sessions (token_hash) {
        token_hash -> Text,
        user_name -> Text,
        verified -> Bool,
        csrf -> Text,
        created_at -> Timestamp,
        last_seen -> Timestamp,
    }
}

diesel::table! {
    payout_requests (id) {
        id -> Text,
        transaction_id -> Text,
        kind -> Text,
        stellar_hash -> Nullable<Text>,
        attempt -> BigInt,
        maker -> Text,
        made_at -> Timestamp,
        state -> Text,
        checker -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        outcome -> Text,
    }
}

diesel::table! {
    payout_history (id) {
        id -> BigInt,
        transaction_id -> Text,
        at -> Timestamp,
        from_state -> Nullable<Text>,
        to_state -> Text,
        cause -> Text,
        reason -> Nullable<Text>,
        payout_id -> Nullable<Text>,
    }
}

diesel::joinable!(customer_fields -> customers (customer_id));
diesel::joinable!(quote_fee_details -> quotes (quote_id));
diesel::joinable!(customer_files -> customers (customer_id));
diesel::joinable!(customer_transactions -> customers (customer_id));
diesel::joinable!(staff_sessions -> staff_users (user_name));

diesel::allow_tables_to_appear_in_same_query!(
    liquidity_holds,
    customers,
    customer_fields,
    customer_files,
    customer_transactions,
    quotes,
    quote_fee_details,
    deposit_addresses,
    counters,
    payouts,
    events,
    poll_marks,
    data_keys,
    key_checks,
    audit,
    staff_users,
    staff_sessions,
    payout_requests,
    payout_history
);
