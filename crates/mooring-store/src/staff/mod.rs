//! The back office's tables: users, sessions and maker-checker requests
//! (`mooring_ports::StaffStore`, `RequestBook`).
//!
//! Every counter and decision is one statement, so two replicas cannot both
//! win: a failure is counted by `failures = failures + 1`, a TOTP step is
//! used by an UPDATE that wants a lower last step, and a request is decided
//! by an UPDATE that wants it still open. A TOTP secret is sealed by the
//! user's own data key, a `data_keys` row named `staff:<name>`, so a key
//! rotation re-wraps it with the customers' keys.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use mooring_domain::staff::{Role, StaffName};
use mooring_ports::{RequestError, StaffError, StaffSession, StaffStore, StaffUser};

use crate::Store;
use crate::conn::write_tx;
use crate::error::{During, Failure};
use crate::schema::{staff_sessions, staff_users};

mod requests;

/// The prefix of a back-office user's data key in `data_keys`.
pub(crate) const KEY_PREFIX: &str = "staff:";

fn key_owner(name: &StaffName) -> String {
    format!("{KEY_PREFIX}{name}")
}

fn totp_context(name: &StaffName) -> Vec<u8> {
    [b"totp\0", name.as_str().as_bytes()].concat()
}

impl From<Failure> for StaffError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::NotFound => Self::NotFound,
            other => Self::Unknown(other.unknown()),
        }
    }
}

impl From<Failure> for RequestError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::NotFound => Self::NotFound,
            other => Self::Unknown(other.unknown()),
        }
    }
}

pub(super) fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = staff_users)]
struct UserRow {
    name: String,
    role: String,
    password_hash: String,
    disabled: bool,
    failures: i32,
    locked_until: Option<NaiveDateTime>,
    totp_enrolled: bool,
    created_at: NaiveDateTime,
}

impl UserRow {
    fn into_user(self) -> Result<StaffUser, Failure> {
        let corrupt = |reason: String| Failure::Corrupt {
            what: "back-office user",
            id: self.name.clone(),
            reason,
        };
        let name = StaffName::parse(&self.name).map_err(|e| corrupt(e.to_string()))?;
        let role =
            Role::parse(&self.role).ok_or_else(|| corrupt(format!("role {:?}", self.role)))?;
        Ok(StaffUser {
            name,
            role,
            password_hash: self.password_hash,
            disabled: self.disabled,
            failures: u32::try_from(self.failures).unwrap_or(0),
            locked_until: self.locked_until.map(|t| t.and_utc()),
            totp_enrolled: self.totp_enrolled,
            created_at: self.created_at.and_utc(),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = staff_sessions)]
struct SessionRow {
    token_hash: String,
    user_name: String,
    verified: bool,
    csrf: String,
    created_at: NaiveDateTime,
    last_seen: NaiveDateTime,
}

/// One changed row, or the user is not there.
pub(super) fn one_row(n: usize) -> Result<(), Failure> {
    if n == 0 {
        Err(Failure::NotFound)
    } else {
        Ok(())
    }
}

#[async_trait]
impl StaffStore for Store {
    async fn add_user(&self, user: &StaffUser) -> Result<(), StaffError> {
        let user = user.clone();
        let inserted = self
            .run_write(move |conn| {
                let insert = diesel::insert_into(staff_users::table)
                    .values((
                        staff_users::name.eq(user.name.as_str()),
                        staff_users::role.eq(user.role.as_str()),
                        staff_users::password_hash.eq(&user.password_hash),
                        staff_users::disabled.eq(user.disabled),
                        staff_users::failures.eq(0),
                        staff_users::totp_enrolled.eq(false),
                        staff_users::created_at.eq(user.created_at.naive_utc()),
                    ))
                    .execute(conn);
                match insert {
                    Ok(_) => Ok(true),
                    Err(e) if is_unique_violation(&e) => Ok(false),
                    Err(e) => Err(Failure::from(e).during("adding user", &user.name)),
                }
            })
            .await?;
        if inserted {
            Ok(())
        } else {
            Err(StaffError::Exists)
        }
    }

    async fn user(&self, name: &StaffName) -> Result<Option<StaffUser>, StaffError> {
        let name = name.clone();
        Ok(self
            .run(move |conn| {
                staff_users::table
                    .find(name.as_str())
                    .select(UserRow::as_select())
                    .first(conn)
                    .optional()
                    .during("reading user", &name)?
                    .map(UserRow::into_user)
                    .transpose()
            })
            .await?)
    }

    async fn users(&self) -> Result<Vec<StaffUser>, StaffError> {
        Ok(self
            .run(move |conn| {
                let rows: Vec<UserRow> = staff_users::table
                    .order(staff_users::name)
                    .select(UserRow::as_select())
                    .load(conn)
                    .during("listing users", "all")?;
                rows.into_iter().map(UserRow::into_user).collect()
            })
            .await?)
    }

    async fn set_disabled(&self, name: &StaffName, disabled: bool) -> Result<(), StaffError> {
        let name = name.clone();
        Ok(self
            .run_write(move |conn| {
                let n = diesel::update(staff_users::table.find(name.as_str()))
                    .set(staff_users::disabled.eq(disabled))
                    .execute(conn)
                    .during("disabling user", &name)?;
                one_row(n)
            })
            .await?)
    }

    async fn set_role(&self, name: &StaffName, role: Role) -> Result<(), StaffError> {
        let name = name.clone();
        Ok(self
            .run_write(move |conn| {
                let n = diesel::update(staff_users::table.find(name.as_str()))
                    .set(staff_users::role.eq(role.as_str()))
                    .execute(conn)
                    .during("changing role of user", &name)?;
                one_row(n)
            })
            .await?)
    }

    async fn set_password(&self, name: &StaffName, hash: &str) -> Result<(), StaffError> {
        let (name, hash) = (name.clone(), hash.to_owned());
        Ok(self
            .run_write(move |conn| {
                let n = diesel::update(staff_users::table.find(name.as_str()))
                    .set(staff_users::password_hash.eq(hash))
                    .execute(conn)
                    .during("changing password of user", &name)?;
                one_row(n)
            })
            .await?)
    }

    async fn count_failure(
        &self,
        name: &StaffName,
        (limit, lock_until): (u32, DateTime<Utc>),
    ) -> Result<bool, StaffError> {
        let name = name.clone();
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        Ok(self
            .run(move |conn| {
                write_tx(conn, |c| {
                    let n = diesel::update(staff_users::table.find(name.as_str()))
                        .set(staff_users::failures.eq(staff_users::failures + 1))
                        .execute(c)?;
                    one_row(n)?;
                    // At the limit: locked out, and the count starts again
                    // for when the lock-out ends.
                    let locked = diesel::update(
                        staff_users::table
                            .find(name.as_str())
                            .filter(staff_users::failures.ge(limit)),
                    )
                    .set((
                        staff_users::locked_until.eq(lock_until.naive_utc()),
                        staff_users::failures.eq(0),
                    ))
                    .execute(c)?;
                    Ok::<_, Failure>(locked == 1)
                })
                .during("counting a failed sign-in of", &name)
            })
            .await?)
    }

    async fn clear_failures(&self, name: &StaffName) -> Result<(), StaffError> {
        let name = name.clone();
        Ok(self
            .run_write(move |conn| {
                let n = diesel::update(staff_users::table.find(name.as_str()))
                    .set((
                        staff_users::failures.eq(0),
                        staff_users::locked_until.eq(None::<NaiveDateTime>),
                    ))
                    .execute(conn)
                    .during("clearing failed sign-ins of", &name)?;
                one_row(n)
            })
            .await?)
    }

    async fn set_totp_secret(
        &self,
        name: &StaffName,
        secret: Option<&[u8]>,
    ) -> Result<(), StaffError> {
        let name = name.clone();
        let secret = secret.map(<[u8]>::to_vec);
        let pii = self.pii().map_err(|e| Failure::from(e).unknown())?;
        Ok(self
            .run(move |conn| {
                write_tx(conn, |c| {
                    let sealed = match &secret {
                        Some(secret) => {
                            let key =
                                pii.key_for_writing(c, &key_owner(&name), Utc::now().naive_utc())?;
                            Some(key.seal(&totp_context(&name), secret))
                        }
                        None => None,
                    };
                    let n = diesel::update(staff_users::table.find(name.as_str()))
                        .set((
                            staff_users::totp_sealed.eq(sealed),
                            staff_users::totp_enrolled.eq(false),
                            staff_users::totp_last_step.eq(None::<i64>),
                        ))
                        .execute(c)?;
                    one_row(n)
                })
                .during("storing the TOTP secret of", &name)
            })
            .await?)
    }

    async fn totp_secret(&self, name: &StaffName) -> Result<Option<Vec<u8>>, StaffError> {
        let name = name.clone();
        let pii = self.pii().map_err(|e| Failure::from(e).unknown())?;
        Ok(self
            .run(move |conn| {
                let sealed: Option<Option<Vec<u8>>> = staff_users::table
                    .find(name.as_str())
                    .select(staff_users::totp_sealed)
                    .first(conn)
                    .optional()
                    .during("reading the TOTP secret of", &name)?;
                let Some(sealed) = sealed.flatten() else {
                    return Ok(None);
                };
                let key = pii
                    .key_of(conn, &key_owner(&name))
                    .during("reading the data key of", &name)?
                    .ok_or_else(|| Failure::Corrupt {
                        what: "back-office user",
                        id: name.to_string(),
                        reason: "a TOTP secret without its data key".into(),
                    })?;
                key.open(&totp_context(&name), &sealed)
                    .map(Some)
                    .map_err(|e| Failure::Corrupt {
                        what: "back-office user",
                        id: name.to_string(),
                        reason: format!("TOTP secret: {e}"),
                    })
            })
            .await?)
    }

    async fn use_totp_step(&self, name: &StaffName, step: u64) -> Result<bool, StaffError> {
        let name = name.clone();
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        Ok(self
            .run_write(move |conn| {
                let n = diesel::update(
                    staff_users::table.find(name.as_str()).filter(
                        staff_users::totp_last_step
                            .is_null()
                            .or(staff_users::totp_last_step.lt(step)),
                    ),
                )
                .set((
                    staff_users::totp_last_step.eq(step),
                    staff_users::totp_enrolled.eq(true),
                ))
                .execute(conn)
                .during("using a TOTP step of", &name)?;
                Ok::<_, Failure>(n == 1)
            })
            .await?)
    }

    async fn add_session(&self, session: &StaffSession) -> Result<(), StaffError> {
        let s = session.clone();
        Ok(self
            .run_write(move |conn| {
                diesel::insert_into(staff_sessions::table)
                    .values((
                        staff_sessions::token_hash.eq(&s.token_hash),
                        staff_sessions::user_name.eq(s.user.as_str()),
                        staff_sessions::verified.eq(s.verified),
                        staff_sessions::csrf.eq(&s.csrf),
                        staff_sessions::created_at.eq(s.created_at.naive_utc()),
                        staff_sessions::last_seen.eq(s.last_seen.naive_utc()),
                    ))
                    .execute(conn)
                    .during("starting a session of", &s.user)?;
                Ok::<_, Failure>(())
            })
            .await?)
    }

    async fn session(&self, token_hash: &str) -> Result<Option<StaffSession>, StaffError> {
        let token_hash = token_hash.to_owned();
        Ok(self
            .run(move |conn| {
                let row: Option<SessionRow> = staff_sessions::table
                    .find(&token_hash)
                    .select(SessionRow::as_select())
                    .first(conn)
                    .optional()
                    .during("reading a session", "by token")?;
                row.map(|r| {
                    Ok::<_, Failure>(StaffSession {
                        user: StaffName::parse(&r.user_name).map_err(|e| Failure::Corrupt {
                            what: "session",
                            id: "by token".into(),
                            reason: e.to_string(),
                        })?,
                        token_hash: r.token_hash,
                        verified: r.verified,
                        csrf: r.csrf,
                        created_at: r.created_at.and_utc(),
                        last_seen: r.last_seen.and_utc(),
                    })
                })
                .transpose()
            })
            .await?)
    }

    async fn touch_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<(), StaffError> {
        let token_hash = token_hash.to_owned();
        Ok(self
            .run_write(move |conn| {
                diesel::update(staff_sessions::table.find(&token_hash))
                    .set(staff_sessions::last_seen.eq(now.naive_utc()))
                    .execute(conn)
                    .during("marking a session used", "by token")?;
                Ok::<_, Failure>(())
            })
            .await?)
    }

    async fn verify_session(&self, token_hash: &str) -> Result<(), StaffError> {
        let token_hash = token_hash.to_owned();
        Ok(self
            .run_write(move |conn| {
                let n = diesel::update(staff_sessions::table.find(&token_hash))
                    .set(staff_sessions::verified.eq(true))
                    .execute(conn)
                    .during("verifying a session", "by token")?;
                one_row(n)
            })
            .await?)
    }

    async fn end_session(&self, token_hash: &str) -> Result<(), StaffError> {
        let token_hash = token_hash.to_owned();
        Ok(self
            .run_write(move |conn| {
                diesel::delete(staff_sessions::table.find(&token_hash))
                    .execute(conn)
                    .during("ending a session", "by token")?;
                Ok::<_, Failure>(())
            })
            .await?)
    }

    async fn end_sessions_of(&self, name: &StaffName) -> Result<u64, StaffError> {
        let name = name.clone();
        Ok(self
            .run_write(move |conn| {
                let n = diesel::delete(
                    staff_sessions::table.filter(staff_sessions::user_name.eq(name.as_str())),
                )
                .execute(conn)
                .during("ending the sessions of", &name)?;
                Ok::<_, Failure>(n as u64)
            })
            .await?)
    }
}
