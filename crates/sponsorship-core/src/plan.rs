//! Plans, product tiers and the sponsored-plan catalogue (spec §2.2, §2.3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A product tier; decides who may sponsor and who may be sponsored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProductTier {
    /// Free and custom plans.
    Free,
    /// Families plans: the only tier that may be sponsored.
    Families,
    /// Teams plans (may generate a billing sync key, may not sponsor).
    Teams,
    /// Enterprise plans: the only tier whose members may sponsor.
    Enterprise,
    /// Teams Starter plans.
    TeamsStarter,
}

macro_rules! plan_types {
    ($( $(#[$doc:meta])* $variant:ident = $num:literal, $kebab:literal, $display:literal, $tier:ident; )*) => {
        /// A billing plan with the reference server's numeric values (`PlanType`, a byte enum).
        /// Serialized as its number, as the wire and license files carry it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum PlanType {
            $( $(#[$doc])* $variant = $num, )*
        }

        impl PlanType {
            /// Every plan type, in numeric order.
            pub const ALL: &'static [PlanType] = &[$(PlanType::$variant,)*];

            /// The numeric value used on the wire.
            pub const fn number(self) -> u8 {
                self as u8
            }

            /// The plan for a numeric value, if it is known.
            pub const fn from_number(n: u8) -> Option<Self> {
                match n {
                    $( $num => Some(PlanType::$variant), )*
                    _ => None,
                }
            }

            /// The kebab-case name used by the CLI, such as `enterprise-annually`.
            pub const fn kebab_name(self) -> &'static str {
                match self { $( PlanType::$variant => $kebab, )* }
            }

            /// The display name of the reference server.
            pub const fn display_name(self) -> &'static str {
                match self { $( PlanType::$variant => $display, )* }
            }

            /// The product tier this plan belongs to.
            pub const fn product_tier(self) -> ProductTier {
                match self { $( PlanType::$variant => ProductTier::$tier, )* }
            }
        }
    };
}

plan_types! {
    /// Free.
    Free = 0, "free", "Free", Free;
    /// Families 2019.
    FamiliesAnnually2019 = 1, "families-annually-2019", "Families 2019", Families;
    /// Teams (Monthly) 2019.
    TeamsMonthly2019 = 2, "teams-monthly-2019", "Teams (Monthly) 2019", Teams;
    /// Teams (Annually) 2019.
    TeamsAnnually2019 = 3, "teams-annually-2019", "Teams (Annually) 2019", Teams;
    /// Enterprise (Monthly) 2019.
    EnterpriseMonthly2019 = 4, "enterprise-monthly-2019", "Enterprise (Monthly) 2019", Enterprise;
    /// Enterprise (Annually) 2019.
    EnterpriseAnnually2019 = 5, "enterprise-annually-2019", "Enterprise (Annually) 2019", Enterprise;
    /// Custom.
    Custom = 6, "custom", "Custom", Free;
    /// Families 2025.
    FamiliesAnnually2025 = 7, "families-annually-2025", "Families 2025", Families;
    /// Teams (Monthly) 2020.
    TeamsMonthly2020 = 8, "teams-monthly-2020", "Teams (Monthly) 2020", Teams;
    /// Teams (Annually) 2020.
    TeamsAnnually2020 = 9, "teams-annually-2020", "Teams (Annually) 2020", Teams;
    /// Enterprise (Monthly) 2020.
    EnterpriseMonthly2020 = 10, "enterprise-monthly-2020", "Enterprise (Monthly) 2020", Enterprise;
    /// Enterprise (Annually) 2020.
    EnterpriseAnnually2020 = 11, "enterprise-annually-2020", "Enterprise (Annually) 2020", Enterprise;
    /// Teams (Monthly) 2023.
    TeamsMonthly2023 = 12, "teams-monthly-2023", "Teams (Monthly) 2023", Teams;
    /// Teams (Annually) 2023.
    TeamsAnnually2023 = 13, "teams-annually-2023", "Teams (Annually) 2023", Teams;
    /// Enterprise (Monthly) 2023.
    EnterpriseMonthly2023 = 14, "enterprise-monthly-2023", "Enterprise (Monthly) 2023", Enterprise;
    /// Enterprise (Annually) 2023.
    EnterpriseAnnually2023 = 15, "enterprise-annually-2023", "Enterprise (Annually) 2023", Enterprise;
    /// Teams Starter 2023.
    TeamsStarter2023 = 16, "teams-starter-2023", "Teams Starter 2023", TeamsStarter;
    /// Teams (Monthly).
    TeamsMonthly = 17, "teams-monthly", "Teams (Monthly)", Teams;
    /// Teams (Annually).
    TeamsAnnually = 18, "teams-annually", "Teams (Annually)", Teams;
    /// Enterprise (Monthly).
    EnterpriseMonthly = 19, "enterprise-monthly", "Enterprise (Monthly)", Enterprise;
    /// Enterprise (Annually).
    EnterpriseAnnually = 20, "enterprise-annually", "Enterprise (Annually)", Enterprise;
    /// Teams Starter.
    TeamsStarter = 21, "teams-starter", "Teams Starter", TeamsStarter;
    /// Families.
    FamiliesAnnually = 22, "families-annually", "Families", Families;
}

impl PlanType {
    /// Members of an organization on this plan may offer Families sponsorships.
    pub const fn can_sponsor(self) -> bool {
        matches!(self.product_tier(), ProductTier::Enterprise)
    }

    /// An organization on this plan may redeem a sponsorship.
    pub const fn can_be_sponsored(self) -> bool {
        matches!(self.product_tier(), ProductTier::Families)
    }

    /// An organization on this plan may generate a billing sync key in the cloud (§10.1).
    pub const fn can_generate_billing_sync_key(self) -> bool {
        matches!(
            self.product_tier(),
            ProductTier::Enterprise | ProductTier::Teams
        )
    }
}

impl fmt::Display for PlanType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kebab_name())
    }
}

/// A plan name or number that is not a known plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown plan {input:?}: use a plan name such as enterprise-annually or families-annually, or its number (0-22)"
)]
pub struct UnknownPlan {
    /// What was given.
    pub input: String,
}

impl FromStr for PlanType {
    type Err = UnknownPlan;

    /// Accepts the kebab-case name (`enterprise-annually`) or the number (`20`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let found = match t.parse::<u8>() {
            Ok(n) => PlanType::from_number(n),
            Err(_) => PlanType::ALL
                .iter()
                .copied()
                .find(|p| p.kebab_name().eq_ignore_ascii_case(t)),
        };
        found.ok_or_else(|| UnknownPlan {
            input: t.chars().take(64).collect(),
        })
    }
}

impl Serialize for PlanType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.number())
    }
}

impl<'de> Deserialize<'de> for PlanType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u8::deserialize(d)?;
        PlanType::from_number(n)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown plan type {n}")))
    }
}

/// The kind of sponsorship (`PlanSponsorshipType`). Only Families-for-Enterprise exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PlanSponsorshipType {
    /// Families for Enterprise (0).
    #[default]
    FamiliesForEnterprise = 0,
}

impl PlanSponsorshipType {
    /// The numeric wire value.
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// The type for a wire value, if known.
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            0 => Some(Self::FamiliesForEnterprise),
            _ => None,
        }
    }

    /// The catalogue entry of this sponsorship type.
    pub const fn sponsored_plan(self) -> SponsoredPlan {
        match self {
            Self::FamiliesForEnterprise => SponsoredPlan {
                sponsorship_type: Self::FamiliesForEnterprise,
                sponsoring_tier: ProductTier::Enterprise,
                sponsored_tier: ProductTier::Families,
                stripe_plan_id: "2021-family-for-enterprise-annually",
            },
        }
    }
}

impl Serialize for PlanSponsorshipType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.number())
    }
}

impl<'de> Deserialize<'de> for PlanSponsorshipType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u8::deserialize(d)?;
        Self::from_number(n)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown plan sponsorship type {n}")))
    }
}

/// One entry of the sponsored-plan catalogue (spec §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SponsoredPlan {
    /// The sponsorship type.
    pub sponsorship_type: PlanSponsorshipType,
    /// Tier the sponsoring organization must have.
    pub sponsoring_tier: ProductTier,
    /// Tier the sponsored organization must have.
    pub sponsored_tier: ProductTier,
    /// The Stripe price the sponsored subscription switches to.
    pub stripe_plan_id: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enterprise_plans_sponsor_and_families_plans_are_sponsored() {
        let sponsors: Vec<u8> = PlanType::ALL
            .iter()
            .filter(|p| p.can_sponsor())
            .map(|p| p.number())
            .collect();
        assert_eq!(sponsors, vec![4, 5, 10, 11, 14, 15, 19, 20]);
        let sponsored: Vec<u8> = PlanType::ALL
            .iter()
            .filter(|p| p.can_be_sponsored())
            .map(|p| p.number())
            .collect();
        assert_eq!(sponsored, vec![1, 7, 22]);
        assert_eq!(PlanType::Custom.product_tier(), ProductTier::Free);
        assert_eq!(
            PlanType::TeamsStarter2023.product_tier(),
            ProductTier::TeamsStarter
        );
        assert!(PlanType::TeamsAnnually.can_generate_billing_sync_key());
        assert!(!PlanType::FamiliesAnnually.can_generate_billing_sync_key());
    }

    #[test]
    fn plan_parses_from_name_or_number() {
        assert_eq!(
            "enterprise-annually".parse(),
            Ok(PlanType::EnterpriseAnnually)
        );
        assert_eq!(" 22 ".parse(), Ok(PlanType::FamiliesAnnually));
        assert_eq!("Families-Annually".parse(), Ok(PlanType::FamiliesAnnually));
        let err = "enterprize".parse::<PlanType>().unwrap_err();
        assert!(err.to_string().contains("enterprise-annually"));
        assert!("23".parse::<PlanType>().is_err());
    }

    #[test]
    fn numbers_round_trip_for_every_plan() {
        for p in PlanType::ALL {
            assert_eq!(PlanType::from_number(p.number()), Some(*p));
            assert_eq!(p.kebab_name().parse::<PlanType>(), Ok(*p));
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(json, p.number().to_string());
            assert_eq!(serde_json::from_str::<PlanType>(&json).unwrap(), *p);
        }
    }
}
