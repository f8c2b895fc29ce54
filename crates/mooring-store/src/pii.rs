//! Customer data at rest: every KYC value and file, and every frozen payout
//! order, is sealed by its customer's data key (`mooring_ports::DataKey`);
//! each data key is kept in `data_keys`, wrapped by the key-encryption key
//! the store was unlocked with. Deleting a customer deletes the key, which
//! shreds every copy of what it sealed.
//!
//! Each seal binds its place as associated data (the customer and the
//! field, or the payout and its receiver), so a ciphertext moved to another
//! row or field fails to open. A store opened without a key
//! ([`Store::unlock`] not called) refuses every read and write of customer
//! data.
//!
//! Unwrapped data keys are kept in memory for a minute, by customer *and*
//! wrapped bytes: the cache only spares an unwrap of the row just read, so
//! a key whose row was rolled back, deleted or re-wrapped is never used
//! from it. A deletion also forgets its key at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use mooring_ports::{DataKey, KeyEncryptionKey, KeyError, WrappedKey};

use crate::conn::{lock_key, write_tx};
use crate::error::by_backend;
use crate::schema::{customer_fields, customer_files, data_keys, key_checks, payouts};
use crate::{AnyConnection, Store, StoreError};

const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 4096;
const CHECK_NAME: &str = "kek";
const CHECK_CONTEXT: &[u8] = b"mooring key check";
/// Rows sealed or re-wrapped per transaction by the data migration and the
/// rotation.
const BATCH: i64 = 200;
/// Files sealed per transaction by the data migration, each read alone (a
/// file may be as large as the multipart limit).
const FILE_BATCH: i64 = 16;

/// Where a sealed value lives: its associated data.
pub(crate) fn field_context(customer: &str, name: &str) -> Vec<u8> {
    [b"field\0", customer.as_bytes(), b"\0", name.as_bytes()].concat()
}

pub(crate) fn file_context(customer: &str, name: &str) -> Vec<u8> {
    [b"file\0", customer.as_bytes(), b"\0", name.as_bytes()].concat()
}

pub(crate) fn order_context(transaction: &str, receiver: &str) -> Vec<u8> {
    [
        b"order\0",
        transaction.as_bytes(),
        b"\0",
        receiver.as_bytes(),
    ]
    .concat()
}

fn key_context(customer: &str) -> Vec<u8> {
    [b"data-key\0", customer.as_bytes()].concat()
}

/// A customer's data key as unwrapped: the wrapped bytes it came from, the
/// key, and when.
type Remembered = (Vec<u8>, DataKey, Instant);

/// The key-encryption key and the data keys it recently unwrapped.
pub(crate) struct Pii {
    kek: Arc<dyn KeyEncryptionKey>,
    cache: Mutex<HashMap<String, Remembered>>,
}

impl Pii {
    /// Whether the key-encryption key is computation in this process
    /// ([`KeyEncryptionKey::is_local`]).
    pub(crate) fn kek_is_local(&self) -> bool {
        self.kek.is_local()
    }

    fn cached(&self, customer: &str, wrapped: &[u8]) -> Option<DataKey> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(customer)
            .filter(|(w, _, at)| w == wrapped && at.elapsed() < CACHE_TTL)
            .map(|(_, k, _)| k.clone())
    }

    fn remember(&self, customer: &str, wrapped: &[u8], key: &DataKey) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, _, at)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(
            customer.to_owned(),
            (wrapped.to_vec(), key.clone(), Instant::now()),
        );
    }

    /// Forgets a deleted customer's key.
    pub(crate) fn forget(&self, customer: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(customer);
    }

    /// The data key in a `data_keys` row of `customer`.
    pub(crate) fn unwrap_key(
        &self,
        customer: &str,
        kek_id: String,
        wrapped: Vec<u8>,
    ) -> Result<DataKey, StoreError> {
        if let Some(key) = self.cached(customer, &wrapped) {
            return Ok(key);
        }
        let wrapped = WrappedKey {
            kek_id,
            bytes: wrapped,
        };
        let key = self.kek.unwrap(&wrapped, &key_context(customer))?;
        self.remember(customer, &wrapped.bytes, &key);
        Ok(key)
    }

    /// `customer`'s data key, if they have one.
    pub(crate) fn key_of(
        &self,
        conn: &mut AnyConnection,
        customer: &str,
    ) -> Result<Option<DataKey>, StoreError> {
        let row: Option<(String, Vec<u8>)> = data_keys::table
            .find(customer)
            .select((data_keys::kek_id, data_keys::wrapped))
            .first(conn)
            .optional()?;
        row.map(|(kek_id, wrapped)| self.unwrap_key(customer, kek_id, wrapped))
            .transpose()
    }

    /// `customer`'s data key, created and stored when they have none. Call
    /// inside the write transaction that uses it.
    pub(crate) fn key_for_writing(
        &self,
        conn: &mut AnyConnection,
        customer: &str,
        now: NaiveDateTime,
    ) -> Result<DataKey, StoreError> {
        if let Some(key) = self.key_of(conn, customer)? {
            return Ok(key);
        }
        self.new_key(conn, customer, now)
    }

    /// A data key made for `customer`, who has none yet: a customer created
    /// in this transaction, so there is nothing to look up first (should a
    /// row exist after all, it is the one used).
    pub(crate) fn new_key(
        &self,
        conn: &mut AnyConnection,
        customer: &str,
        now: NaiveDateTime,
    ) -> Result<DataKey, StoreError> {
        let key = DataKey::generate();
        let wrapped = self.kek.wrap(&key, &key_context(customer))?;
        // Two writers making a key at once: one row is kept, and both use it.
        let insert = diesel::insert_into(data_keys::table)
            .values((
                data_keys::customer_id.eq(customer),
                data_keys::kek_id.eq(&wrapped.kek_id),
                data_keys::wrapped.eq(&wrapped.bytes),
                data_keys::created_at.eq(now),
            ))
            .on_conflict_do_nothing();
        let inserted = by_backend!(conn, |c| insert.execute(c))?;
        if inserted == 1 {
            return Ok(key);
        }
        self.key_of(conn, customer)?
            .ok_or_else(|| StoreError::Task("a data key vanished as it was made".into()))
    }
}

/// What [`Store::unlock`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unlocked {
    /// The key check was written by this start (a database without one).
    pub check_created: bool,
    /// Values, files and orders an earlier version wrote in plaintext,
    /// sealed now.
    pub sealed_fields: u64,
    pub sealed_files: u64,
    pub sealed_orders: u64,
}

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Data keys re-wrapped by this call.
    pub rewrapped: u64,
    /// Data keys still wrapped by another key.
    pub left: u64,
}

fn wrong_key(e: &KeyError) -> StoreError {
    StoreError::WrongKey(format!(
        "pii.key cannot open this database's customer data ({e}); start with the key it was \
         written with, or name that key in pii.previous_keys and run `mooring keys rotate`"
    ))
}

/// Checks that `kek` opens this database's key check, writing one when
/// there is none.
fn check_key(conn: &mut AnyConnection, kek: &dyn KeyEncryptionKey) -> Result<bool, StoreError> {
    let read = |conn: &mut AnyConnection| -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(key_checks::table
            .find(CHECK_NAME)
            .select((key_checks::kek_id, key_checks::wrapped))
            .first(conn)
            .optional()?)
    };
    let opens = |(kek_id, bytes): (String, Vec<u8>)| {
        kek.unwrap(&WrappedKey { kek_id, bytes }, CHECK_CONTEXT)
            .map(drop)
            .map_err(|e| wrong_key(&e))
    };
    if let Some(check) = read(conn)? {
        opens(check)?;
        return Ok(false);
    }
    // No check yet: any data key there must open too (a check lost, or
    // data keys copied in).
    let any: Option<(String, String, Vec<u8>)> = data_keys::table
        .select((
            data_keys::customer_id,
            data_keys::kek_id,
            data_keys::wrapped,
        ))
        .first(conn)
        .optional()?;
    if let Some((customer, kek_id, bytes)) = any {
        kek.unwrap(&WrappedKey { kek_id, bytes }, &key_context(&customer))
            .map_err(|e| wrong_key(&e))?;
    }
    let wrapped = kek.wrap(&DataKey::generate(), CHECK_CONTEXT)?;
    // Two replicas starting at once: one check is written, and both must
    // open it.
    let insert = diesel::insert_into(key_checks::table)
        .values((
            key_checks::name.eq(CHECK_NAME),
            key_checks::kek_id.eq(&wrapped.kek_id),
            key_checks::wrapped.eq(&wrapped.bytes),
            key_checks::updated_at.eq(Utc::now().naive_utc()),
        ))
        .on_conflict_do_nothing();
    by_backend!(conn, |c| insert.execute(c))?;
    let check = read(conn)?.ok_or_else(|| StoreError::Task("the key check vanished".into()))?;
    let created = check.0 == wrapped.kek_id && check.1 == wrapped.bytes;
    opens(check)?;
    Ok(created)
}

/// Seals one batch of the plaintext an earlier version left; returns how
/// many of each kind it sealed. One sealer at a time (a lock for the
/// transaction), and each row is written only if its plaintext is still the
/// one read: a value a server sealed meanwhile is never put back.
fn seal_legacy_batch(conn: &mut AnyConnection, pii: &Pii) -> Result<(u64, u64, u64), StoreError> {
    lock_key(conn, "mooring:pii-seal")?;
    let now = Utc::now().naive_utc();
    let fields: Vec<(String, String, String)> = customer_fields::table
        .filter(
            customer_fields::sealed
                .is_null()
                .or(customer_fields::legacy_value.ne("")),
        )
        .select((
            customer_fields::customer_id,
            customer_fields::name,
            customer_fields::legacy_value,
        ))
        .limit(BATCH)
        .load(conn)?;
    let mut sealed_fields = 0;
    for (customer, name, value) in &fields {
        let key = pii.key_for_writing(conn, customer, now)?;
        let sealed = key.seal(&field_context(customer, name), value.as_bytes());
        sealed_fields += diesel::update(
            customer_fields::table
                .find((customer, name))
                .filter(customer_fields::legacy_value.eq(value)),
        )
        .set((
            customer_fields::sealed.eq(Some(sealed)),
            customer_fields::legacy_value.eq(""),
        ))
        .execute(conn)? as u64;
    }
    let files: Vec<(String, String)> = customer_files::table
        .filter(
            customer_files::sealed
                .is_null()
                .or(customer_files::legacy_content.ne(Vec::<u8>::new())),
        )
        .select((customer_files::customer_id, customer_files::name))
        .limit(FILE_BATCH)
        .load(conn)?;
    let mut sealed_files = 0;
    for (customer, name) in &files {
        let content: Vec<u8> = customer_files::table
            .find((customer, name))
            .select(customer_files::legacy_content)
            .first(conn)?;
        let key = pii.key_for_writing(conn, customer, now)?;
        let sealed = key.seal(&file_context(customer, name), &content);
        sealed_files += diesel::update(
            customer_files::table
                .find((customer, name))
                .filter(customer_files::legacy_content.eq(&content)),
        )
        .set((
            customer_files::sealed.eq(Some(sealed)),
            customer_files::legacy_content.eq(Vec::<u8>::new()),
        ))
        .execute(conn)? as u64;
    }
    let orders: Vec<(String, Option<String>, String)> = payouts::table
        .filter(payouts::legacy_order.is_not_null())
        .select((
            payouts::transaction_id,
            payouts::receiver_id,
            payouts::legacy_order.assume_not_null(),
        ))
        .limit(BATCH)
        .load(conn)?;
    let mut sealed_orders = 0;
    for (transaction, receiver, order) in &orders {
        let receiver = receiver.as_deref().unwrap_or_default();
        let known: bool = diesel::select(diesel::dsl::exists(
            crate::schema::customers::table.find(receiver),
        ))
        .get_result(conn)?;
        // A receiver deleted before this version: their order is erased now
        // (an empty seal), as a deletion would erase it today; the entry is
        // held for a person, or followed by the rail's id.
        let sealed = if known {
            let key = pii.key_for_writing(conn, receiver, now)?;
            key.seal(&order_context(transaction, receiver), order.as_bytes())
        } else {
            Vec::new()
        };
        sealed_orders += diesel::update(
            payouts::table
                .find(transaction)
                .filter(payouts::legacy_order.eq(order)),
        )
        .set((
            payouts::sealed_order.eq(Some(sealed)),
            payouts::legacy_order.eq(None::<String>),
        ))
        .execute(conn)? as u64;
    }
    // Rows changed meanwhile were skipped, and are read again next batch.
    let read = (fields.len() + files.len() + orders.len()) as u64;
    if read > 0 && sealed_fields + sealed_files + sealed_orders == 0 {
        return Err(StoreError::Task(
            "sealing the plaintext of an earlier version made no progress".into(),
        ));
    }
    Ok((sealed_fields, sealed_files, sealed_orders))
}

/// Re-wraps one batch of data keys not under the current key.
fn rotate_batch(conn: &mut AnyConnection, kek: &dyn KeyEncryptionKey) -> Result<u64, StoreError> {
    let current = kek.current_id().to_owned();
    let rows: Vec<(String, String, Vec<u8>)> = data_keys::table
        .filter(data_keys::kek_id.ne(&current))
        .select((
            data_keys::customer_id,
            data_keys::kek_id,
            data_keys::wrapped,
        ))
        .order(data_keys::customer_id)
        .limit(BATCH)
        .load(conn)?;
    let mut n = 0;
    for (customer, kek_id, bytes) in rows {
        let context = key_context(&customer);
        let key = kek.unwrap(
            &WrappedKey {
                kek_id: kek_id.clone(),
                bytes: bytes.clone(),
            },
            &context,
        )?;
        let wrapped = kek.wrap(&key, &context)?;
        // Compare-and-set: a row deleted or re-wrapped meanwhile is left.
        n += diesel::update(
            data_keys::table
                .find(&customer)
                .filter(data_keys::kek_id.eq(&kek_id))
                .filter(data_keys::wrapped.eq(&bytes)),
        )
        .set((
            data_keys::kek_id.eq(&wrapped.kek_id),
            data_keys::wrapped.eq(&wrapped.bytes),
        ))
        .execute(conn)? as u64;
    }
    Ok(n)
}

fn left_to_rotate(conn: &mut AnyConnection, current: &str) -> Result<u64, StoreError> {
    let n: i64 = data_keys::table
        .filter(data_keys::kek_id.ne(current))
        .count()
        .get_result(conn)?;
    Ok(u64::try_from(n).unwrap_or_default())
}

impl Store {
    /// Opens the customer data with `kek`: checks that it is the key the
    /// data was written with (refusing, with nothing written, when it is
    /// not), then seals what an earlier version left in plaintext. Returns
    /// the store that reads and writes customer data.
    pub async fn unlock(
        mut self,
        kek: Arc<dyn KeyEncryptionKey>,
    ) -> Result<(Self, Unlocked), StoreError> {
        let pii = Arc::new(Pii {
            kek,
            cache: Mutex::default(),
        });
        let check_kek = pii.kek.clone();
        let check_created = self
            .run(move |conn| write_tx(conn, |c| check_key(c, check_kek.as_ref())))
            .await?;
        let mut report = Unlocked {
            check_created,
            ..Unlocked::default()
        };
        loop {
            let batch = pii.clone();
            let (fields, files, orders) = self
                .run(move |conn| write_tx(conn, |c| seal_legacy_batch(c, &batch)))
                .await?;
            report.sealed_fields += fields;
            report.sealed_files += files;
            report.sealed_orders += orders;
            if fields + files + orders == 0 {
                break;
            }
        }
        self.pii = Some(pii);
        Ok((self, report))
    }

    /// One batch of a key rotation: re-wraps up to 200 data keys (and the
    /// key check) under the current key, opening them with the previous
    /// ones. Safe beside running servers and resumable: call it until
    /// `left` is 0.
    pub async fn rotate_keys(&self) -> Result<Rotation, StoreError> {
        let kek = self.pii()?.kek.clone();
        self.run(move |conn| {
            write_tx(conn, |c| {
                let current = kek.current_id().to_owned();
                // The check first: from now on a start with only the old key
                // is refused, as it could not open re-wrapped keys.
                let check: Option<(String, Vec<u8>)> = key_checks::table
                    .find(CHECK_NAME)
                    .select((key_checks::kek_id, key_checks::wrapped))
                    .first(c)
                    .optional()?;
                if let Some((kek_id, bytes)) = check.filter(|(id, _)| *id != current) {
                    let key = kek
                        .unwrap(&WrappedKey { kek_id, bytes }, CHECK_CONTEXT)
                        .map_err(|e| wrong_key(&e))?;
                    let wrapped = kek.wrap(&key, CHECK_CONTEXT)?;
                    diesel::update(key_checks::table.find(CHECK_NAME))
                        .set((
                            key_checks::kek_id.eq(&wrapped.kek_id),
                            key_checks::wrapped.eq(&wrapped.bytes),
                            key_checks::updated_at.eq(Utc::now().naive_utc()),
                        ))
                        .execute(c)?;
                }
                let rewrapped = rotate_batch(c, kek.as_ref())?;
                let left = left_to_rotate(c, &current)?;
                Ok(Rotation { rewrapped, left })
            })
        })
        .await
    }

    /// The customer data's keys; an error when the store was not unlocked.
    pub(crate) fn pii(&self) -> Result<Arc<Pii>, StoreError> {
        self.pii.clone().ok_or(StoreError::Locked)
    }
}
