//! The data string a legacy license signature covers (bitwarden/server
//! `OrganizationLicense.GetDataBytes`): `license:organization|Name:value|…` over the license's
//! properties that exist in its file version, in the server's (culture-aware) name order.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::{LicenseError, OrganizationLicense, SUPPORTED_LICENSE_VERSIONS};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Guid,
    Number,
    Date,
    Plan,
    /// A `bool`; missing is `false`.
    Flag,
    /// A `bool` whose property defaults to `true`.
    FlagDefaultTrue,
}

/// Every signed property: name, kind, the file version that added it, and whether the hash form
/// leaves it out. In the order the real server sorts them (culture-aware: `UsersGetPremium` sits
/// between `UseResetPassword` and `UseScim`).
const PROPERTIES: &[(&str, Kind, u32, bool)] = &[
    (
        "AllowAdminAccessToAllCollectionItems",
        Kind::FlagDefaultTrue,
        15,
        false,
    ),
    ("BillingEmail", Kind::Text, 1, false),
    ("BusinessName", Kind::Text, 1, false),
    ("Enabled", Kind::Flag, 1, false),
    ("ExpirationWithoutGracePeriod", Kind::Date, 12, false),
    ("Expires", Kind::Date, 1, false),
    ("Hash", Kind::Text, 1, true),
    ("Id", Kind::Guid, 1, false),
    ("InstallationId", Kind::Guid, 1, false),
    ("Issued", Kind::Date, 1, true),
    ("LicenseKey", Kind::Text, 1, false),
    (
        "LimitCollectionCreationDeletion",
        Kind::FlagDefaultTrue,
        14,
        false,
    ),
    ("MaxCollections", Kind::Number, 1, false),
    ("MaxStorageGb", Kind::Number, 1, false),
    ("Name", Kind::Text, 1, false),
    ("Plan", Kind::Text, 1, false),
    ("PlanType", Kind::Plan, 1, false),
    ("Refresh", Kind::Date, 1, true),
    ("Seats", Kind::Number, 1, false),
    ("SelfHost", Kind::Flag, 1, false),
    ("SmSeats", Kind::Number, 13, false),
    ("SmServiceAccounts", Kind::Number, 13, false),
    ("Trial", Kind::Flag, 1, false),
    ("Use2fa", Kind::Flag, 4, false),
    ("UseApi", Kind::Flag, 5, false),
    ("UseCustomPermissions", Kind::Flag, 11, false),
    ("UseDirectory", Kind::Flag, 1, false),
    ("UseEvents", Kind::Flag, 3, false),
    ("UseGroups", Kind::Flag, 1, false),
    ("UseKeyConnector", Kind::Flag, 9, false),
    ("UsePasswordManager", Kind::Flag, 13, false),
    ("UsePolicies", Kind::Flag, 6, false),
    ("UseResetPassword", Kind::Flag, 8, false),
    ("UsersGetPremium", Kind::Flag, 2, false),
    ("UseScim", Kind::Flag, 10, false),
    ("UseSecretsManager", Kind::Flag, 13, false),
    ("UseSso", Kind::Flag, 7, false),
    ("UseTotp", Kind::Flag, 1, false),
    ("Version", Kind::Number, 1, false),
];

/// The names of plan types 0–6 in signatures (their names before the plans were renamed).
const LEGACY_PLAN_NAMES: [&str; 7] = [
    "Free",
    "FamiliesAnnually",
    "TeamsMonthly",
    "TeamsAnnually",
    "EnterpriseMonthly",
    "EnterpriseAnnually",
    "Custom",
];

/// The string the legacy `Signature` (or, with `for_hash`, the `Hash`) of `license` covers.
///
/// # Errors
///
/// [`LicenseError::UnsupportedVersion`] for a file version outside the supported range.
pub fn legacy_signature_data(
    license: &OrganizationLicense,
    for_hash: bool,
) -> Result<String, LicenseError> {
    if !SUPPORTED_LICENSE_VERSIONS.contains(&license.version) {
        return Err(LicenseError::UnsupportedVersion {
            version: license.version,
        });
    }
    let mut out = String::from("license:organization");
    for &(name, kind, since, unhashed) in PROPERTIES {
        if since > license.version || (for_hash && unhashed) {
            continue;
        }
        out.push('|');
        out.push_str(name);
        out.push(':');
        out.push_str(&value(license, name, kind));
    }
    Ok(out)
}

/// Epoch seconds, rounded half to even as .NET's `Math.Round`.
fn epoch(t: DateTime<Utc>) -> String {
    #[allow(clippy::cast_precision_loss)]
    let seconds = t.timestamp_millis() as f64 / 1000.0;
    format!("{}", seconds.round_ties_even())
}

fn value(license: &OrganizationLicense, name: &str, kind: Kind) -> String {
    let known = match name {
        "Id" => Some(Value::String(license.id.to_string())),
        "Name" => Some(Value::String(license.name.clone())),
        "PlanType" => Some(Value::from(license.plan_type.number())),
        "Version" => Some(Value::from(license.version)),
        "LicenseKey" => Some(Value::String(
            license.license_key.expose_secret().to_owned(),
        )),
        "InstallationId" => license
            .installation_id
            .map(|i| Value::String(i.to_string())),
        "Enabled" => Some(Value::Bool(license.enabled)),
        "SelfHost" => Some(Value::Bool(license.self_host)),
        "Issued" => license.issued.map(|t| Value::String(t.to_rfc3339())),
        "Expires" => license.expires.map(|t| Value::String(t.to_rfc3339())),
        _ => None,
    };
    let raw = known.or_else(|| {
        license
            .other
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    });
    match (kind, raw) {
        (Kind::Flag, None | Some(Value::Null)) => "false".to_owned(),
        (Kind::FlagDefaultTrue, None | Some(Value::Null)) => "true".to_owned(),
        (_, None | Some(Value::Null)) => String::new(),
        (Kind::Flag | Kind::FlagDefaultTrue, Some(Value::Bool(b))) => b.to_string(),
        (Kind::Date, Some(Value::String(s))) => crate::wire::time::parse(&s).map_or(s, epoch),
        (Kind::Plan, Some(Value::Number(n))) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| LEGACY_PLAN_NAMES.get(n).map(|s| (*s).to_owned()))
            .unwrap_or_else(|| n.to_string()),
        (Kind::Guid, Some(Value::String(s))) => s.to_ascii_lowercase(),
        (_, Some(Value::String(s))) => s,
        (_, Some(other)) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn license(version: u32) -> OrganizationLicense {
        OrganizationLicense::parse(&format!(
            r#"{{"LicenseKey":"myLicenseKey","InstallationId":"78900000-0000-0000-0000-000000000123",
                "Id":"12300000-0000-0000-0000-000000000456","Name":"myOrg","BillingEmail":"myBillingEmail",
                "BusinessName":null,"Enabled":true,"Plan":"myPlan","PlanType":11,"Seats":10,
                "MaxCollections":2,"UsePolicies":true,"UseSso":true,"UseKeyConnector":true,"UseScim":true,
                "UseGroups":true,"UseEvents":true,"UseDirectory":true,"UseTotp":true,"Use2fa":true,
                "UseApi":true,"UseResetPassword":true,"MaxStorageGb":100,"SelfHost":true,
                "UsersGetPremium":true,"UseCustomPermissions":true,"Version":{version},
                "Issued":"2025-01-01T00:00:00Z","Refresh":"2025-02-01T00:00:00Z",
                "Expires":"2025-03-01T00:00:00Z","ExpirationWithoutGracePeriod":null,
                "UsePasswordManager":true,"UseSecretsManager":true,"SmSeats":5,"SmServiceAccounts":8,
                "Trial":false,"UseAdminSponsoredFamilies":true}}"#
        ))
        .unwrap()
    }

    /// The v15 hash form, field by field as the real server writes it: every property but
    /// Hash, Issued and Refresh, culture-ordered, dates as epoch seconds, plan 11 as a number.
    #[test]
    fn the_v15_hash_data_has_the_real_servers_shape() {
        assert_eq!(
            legacy_signature_data(&license(15), true).unwrap(),
            "license:organization|AllowAdminAccessToAllCollectionItems:true|BillingEmail:myBillingEmail\
             |BusinessName:|Enabled:true|ExpirationWithoutGracePeriod:|Expires:1740787200\
             |Id:12300000-0000-0000-0000-000000000456|InstallationId:78900000-0000-0000-0000-000000000123\
             |LicenseKey:myLicenseKey|LimitCollectionCreationDeletion:true|MaxCollections:2\
             |MaxStorageGb:100|Name:myOrg|Plan:myPlan|PlanType:11|Seats:10|SelfHost:true|SmSeats:5\
             |SmServiceAccounts:8|Trial:false|Use2fa:true|UseApi:true|UseCustomPermissions:true\
             |UseDirectory:true|UseEvents:true|UseGroups:true|UseKeyConnector:true\
             |UsePasswordManager:true|UsePolicies:true|UseResetPassword:true|UsersGetPremium:true\
             |UseScim:true|UseSecretsManager:true|UseSso:true|UseTotp:true|Version:15"
        );
    }

    #[test]
    fn older_versions_sign_fewer_fields_and_unknown_versions_are_refused() {
        let v1 = legacy_signature_data(&license(1), false).unwrap();
        assert!(v1.contains("|Issued:1735689600|") && v1.contains("|Refresh:1738368000|"));
        assert!(!v1.contains("UsersGetPremium") && !v1.contains("UseSso"));
        let v16 = legacy_signature_data(&license(16), false).unwrap();
        let v15 = legacy_signature_data(&license(15), false).unwrap();
        assert_eq!(v16.replace("Version:16", "Version:15"), v15);
        assert_eq!(
            legacy_signature_data(&license(17), false),
            Err(LicenseError::UnsupportedVersion { version: 17 })
        );
        let mut enterprise = license(15);
        enterprise.plan_type = crate::plan::PlanType::from_number(5).unwrap();
        assert!(
            legacy_signature_data(&enterprise, true)
                .unwrap()
                .contains("|PlanType:EnterpriseAnnually|")
        );
    }
}
