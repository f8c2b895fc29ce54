//! The custodian of deposit addresses (`GET /unique_address`).

use std::time::Duration;

use mooring_domain::StellarAccount;
use mooring_domain::deposit::DepositMemoKind;

use super::{CustodianKind, Kind, MemoType, RawSettings, SettingsError, http_url};

/// Which custodian hands out deposit addresses.
pub enum CustodianSetting {
    /// None configured: `GET /unique_address` answers 503 saying so.
    None,
    /// The anchor itself: one account, a memo per transaction.
    SelfCustody {
        account: StellarAccount,
        memo: DepositMemoKind,
    },
    /// A custodian service.
    Http { url: String, timeout: Duration },
}

pub(super) fn custodian(raw: &RawSettings) -> Result<CustodianSetting, SettingsError> {
    let c = &raw.custodian;
    match c.kind {
        CustodianKind::SelfCustody => {
            let memo = match MemoType::from_name(&c.memo_type) {
                Some(MemoType::Id) => DepositMemoKind::Id,
                Some(MemoType::Hash) => DepositMemoKind::Hash,
                None => {
                    return Err(SettingsError(format!(
                        "custodian.memo_type: expected one of {}, not {:?}",
                        MemoType::NAMES.join(", "),
                        c.memo_type
                    )));
                }
            };
            match c.distribution_account.as_deref().filter(|a| !a.is_empty()) {
                None => Ok(CustodianSetting::None),
                Some(a) => {
                    let account = StellarAccount::parse(a)
                        .ok()
                        .filter(|a| !a.is_muxed())
                        .ok_or_else(|| {
                            SettingsError(
                                "custodian.distribution_account: must be a Stellar G... account"
                                    .into(),
                            )
                        })?;
                    Ok(CustodianSetting::SelfCustody { account, memo })
                }
            }
        }
        CustodianKind::Http => {
            let url = http_url(
                "custodian.http.url",
                c.http.url.as_deref(),
                " when custodian.type = \"http\"",
            )?;
            if c.http.timeout_ms == 0 {
                return Err(SettingsError(
                    "custodian.http.timeout_ms must be positive".into(),
                ));
            }
            Ok(CustodianSetting::Http {
                url,
                timeout: Duration::from_millis(c.http.timeout_ms),
            })
        }
    }
}
