// The tables of both backends. A test compares this file with the migrated
// databases (see tests/it/schema.rs); change both together.

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
        value -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    customer_files (customer_id, name) {
        customer_id -> Text,
        name -> Text,
        content -> Binary,
        content_type -> Nullable<Text>,
        size_bytes -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    customer_transactions (customer_id, transaction_id) {
        customer_id -> Text,
        transaction_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(customer_fields -> customers (customer_id));
diesel::joinable!(customer_files -> customers (customer_id));
diesel::joinable!(customer_transactions -> customers (customer_id));

diesel::allow_tables_to_appear_in_same_query!(
    customers,
    customer_fields,
    customer_files,
    customer_transactions
);
