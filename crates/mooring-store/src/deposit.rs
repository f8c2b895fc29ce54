//! Deposit addresses: the anchor's own custodian (one distribution account,
//! a memo never given twice) and the record of every address given out.

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use mooring_domain::deposit::{DepositAddress, DepositMemoKind};
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::{Custodian, CustodianError, DepositAddressStore};

use crate::conn::{lock_key, write_tx};
use crate::error::Failure;
use crate::schema::{counters, deposit_addresses};
use crate::{AnyConnection, Store};

/// Serialises every assignment: they are rare (one per transaction) and must
/// never hand one memo out twice.
const ASSIGN_LOCK: &str = "mooring:deposit_addresses";
const MEMO_COUNTER: &str = "deposit_memo";

impl From<Failure> for CustodianError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Taken(m) => {
                Self::Unavailable(format!("the custodian gave an address in use: {m}"))
            }
            other => Self::Unknown(other.unknown()),
        }
    }
}

fn find(conn: &mut AnyConnection, transaction_id: &str) -> Result<Option<DepositAddress>, Failure> {
    let row: Option<(String, String, Option<String>)> = deposit_addresses::table
        .find(transaction_id)
        .select((
            deposit_addresses::account,
            deposit_addresses::memo,
            deposit_addresses::memo_type,
        ))
        .first(conn)
        .optional()?;
    let Some((account, memo, memo_type)) = row else {
        return Ok(None);
    };
    let corrupt = |reason: String| Failure::Corrupt {
        what: "deposit address of",
        id: transaction_id.to_owned(),
        reason,
    };
    let account = StellarAccount::parse(&account).map_err(|e| corrupt(e.to_string()))?;
    let memo = match memo.as_str() {
        "" => None,
        m => Some(Memo::parse(m, memo_type.as_deref()).map_err(|e| corrupt(e.to_string()))?),
    };
    Ok(Some(DepositAddress { account, memo }))
}

fn insert(
    conn: &mut AnyConnection,
    transaction_id: &str,
    address: &DepositAddress,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let inserted = conn.transaction(|c| {
        diesel::insert_into(deposit_addresses::table)
            .values((
                deposit_addresses::transaction_id.eq(transaction_id),
                deposit_addresses::account.eq(address.account.as_str()),
                deposit_addresses::memo.eq(address.memo.as_ref().map_or("", Memo::value)),
                deposit_addresses::memo_type
                    .eq(address.memo.as_ref().map(|m| m.memo_type().as_str())),
                deposit_addresses::created_at.eq(now.naive_utc()),
            ))
            .execute(c)
    });
    match inserted {
        Ok(_) => Ok(()),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            Err(Failure::Taken(address.account.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The next value of a counter, never given before.
fn next(conn: &mut AnyConnection, name: &str) -> Result<i64, Failure> {
    let value: i64 = counters::table
        .find(name)
        .select(counters::value)
        .first(conn)?;
    let next = value.checked_add(1).ok_or_else(|| Failure::Corrupt {
        what: "deposit address of",
        id: String::new(),
        reason: format!("counter {name} is exhausted"),
    })?;
    diesel::update(counters::table.find(name))
        .set(counters::value.eq(next))
        .execute(conn)?;
    Ok(next)
}

fn new_memo(conn: &mut AnyConnection, kind: DepositMemoKind) -> Result<Memo, Failure> {
    let memo = match kind {
        DepositMemoKind::Id => next(conn, MEMO_COUNTER)?.to_string(),
        // Two v4 UUIDs: 32 bytes, 244 of their bits random; the unique
        // index refuses the astronomically unlikely repeat.
        DepositMemoKind::Hash => {
            let mut bytes = Vec::with_capacity(32);
            bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            base64::engine::general_purpose::STANDARD.encode(bytes)
        }
    };
    Memo::parse(&memo, Some(kind.memo_type().as_str())).map_err(|e| Failure::Corrupt {
        what: "deposit address of",
        id: String::new(),
        reason: e.to_string(),
    })
}

/// The transaction's address: the one recorded, else `make`'s, recorded now
/// — under the assignment lock, in one write transaction.
fn assign(
    conn: &mut AnyConnection,
    transaction_id: &str,
    make: impl FnOnce(&mut AnyConnection) -> Result<DepositAddress, Failure>,
) -> Result<DepositAddress, Failure> {
    write_tx(conn, |c| {
        lock_key(c, ASSIGN_LOCK)?;
        if let Some(existing) = find(c, transaction_id)? {
            return Ok(existing);
        }
        let address = make(c)?;
        insert(c, transaction_id, &address, Utc::now())?;
        Ok(address)
    })
}

/// The anchor as its own custodian: every transaction pays the one
/// distribution account, told apart by a memo never given twice, across
/// replicas sharing the database.
#[derive(Clone)]
pub struct SelfCustodian {
    store: Store,
    account: StellarAccount,
    kind: DepositMemoKind,
}

impl SelfCustodian {
    pub fn new(store: Store, account: StellarAccount, kind: DepositMemoKind) -> Self {
        Self {
            store,
            account,
            kind,
        }
    }
}

#[async_trait]
impl Custodian for SelfCustodian {
    #[tracing::instrument(skip_all, fields(transaction.id = %transaction_id))]
    async fn deposit_address(
        &self,
        transaction_id: &str,
    ) -> Result<DepositAddress, CustodianError> {
        let (id, account, kind) = (transaction_id.to_owned(), self.account.clone(), self.kind);
        let address = self
            .store
            .run(move |conn| {
                assign(conn, &id, |c| {
                    Ok(DepositAddress {
                        account,
                        memo: Some(new_memo(c, kind)?),
                    })
                })
            })
            .await?;
        Ok(address)
    }
}

#[async_trait]
impl DepositAddressStore for Store {
    async fn deposit_address_of(
        &self,
        transaction_id: &str,
    ) -> Result<Option<DepositAddress>, CustodianError> {
        let id = transaction_id.to_owned();
        Ok(self.run(move |conn| find(conn, &id)).await?)
    }

    async fn keep_first_deposit_address(
        &self,
        transaction_id: &str,
        address: &DepositAddress,
    ) -> Result<DepositAddress, CustodianError> {
        let (id, address) = (transaction_id.to_owned(), address.clone());
        let kept = self
            .run(move |conn| assign(conn, &id, |_| Ok(address)))
            .await?;
        Ok(kept)
    }
}
