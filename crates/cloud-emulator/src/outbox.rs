//! The mail queue. As in the real cloud, a sync request only enqueues its offer e-mails; the
//! mails are rendered (offer token and link) later, when someone reads the outbox or before the
//! state is saved. Rendering later gives the same mail: the token is a deterministic function
//! of the signer key and the claims, and what depends on the moment of sending (the time,
//! whether the recipient had an account) is recorded when the mail is queued.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sponsorship_core::cloud::{OfferClaims, OfferToSend};
use url::Url;

use crate::state::{OFFER_SUBJECT, SentEmail};
use crate::tokens::Signer;

/// An offer e-mail recorded by a sync request and not rendered yet.
#[derive(Debug, Clone)]
struct QueuedOffer {
    offer: OfferToSend,
    sent_at: DateTime<Utc>,
    /// The recipient had an account when the mail was sent (the link then has no
    /// `register=true`).
    registered: bool,
}

/// Every e-mail sent, oldest first: the rendered ones, then the queued ones (always newer).
///
/// Persisted as the list of rendered mails (the data file's `outbox` array); serializing with
/// queued mails fails instead of dropping them, so callers render first ([`Outbox::render`]).
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    sent: Vec<SentEmail>,
    queued: Vec<QueuedOffer>,
}

impl Outbox {
    /// Records an offer e-mail sent at `sent_at`. Cheap: no token, no link.
    pub(crate) fn enqueue(&mut self, offer: OfferToSend, sent_at: DateTime<Utc>, registered: bool) {
        self.queued.push(QueuedOffer {
            offer,
            sent_at,
            registered,
        });
    }

    /// Renders every queued mail (token and link under `base_url`), in order.
    pub(crate) fn render(&mut self, signer: &Signer, base_url: &Url) {
        if self.queued.is_empty() {
            return;
        }
        let redeem = base_url.join("redeem").unwrap_or_else(|_| base_url.clone());
        self.sent.reserve(self.queued.len());
        for q in self.queued.drain(..) {
            self.sent.push(render_one(signer, &redeem, q));
        }
    }

    /// The rendered mails, oldest first ([`Outbox::render`] first to see every mail).
    pub(crate) fn rendered(&self) -> &[SentEmail] {
        &self.sent
    }

    /// Number of mails, rendered or not.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sent.len() + self.queued.len()
    }
}

fn render_one(signer: &Signer, redeem: &Url, q: QueuedOffer) -> SentEmail {
    let token = signer.offer_token(&OfferClaims::for_offer(&q.offer));
    let mut link = redeem.clone();
    {
        let mut pairs = link.query_pairs_mut();
        pairs.append_pair("token", &token);
        pairs.append_pair("email", &q.offer.email);
        if !q.registered {
            pairs.append_pair("register", "true");
        }
    }
    SentEmail {
        to: q.offer.email,
        subject: OFFER_SUBJECT.to_owned(),
        link: link.into(),
        sent_at: q.sent_at,
        sponsorship_id: q.offer.sponsorship_id,
    }
}

impl Serialize for Outbox {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !self.queued.is_empty() {
            return Err(serde::ser::Error::custom(
                "the outbox has queued mails that are not rendered yet",
            ));
        }
        self.sent.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Outbox {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self {
            sent: Vec::deserialize(deserializer)?,
            queued: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sponsorship_core::ids::SponsorshipId;
    use sponsorship_core::plan::PlanSponsorshipType;

    fn offer(email: &str) -> OfferToSend {
        OfferToSend {
            sponsorship_id: SponsorshipId::new_random(),
            email: email.to_owned(),
            plan_sponsorship_type: PlanSponsorshipType::FamiliesForEnterprise,
        }
    }

    #[test]
    fn rendering_later_gives_the_mail_of_the_moment_it_was_sent() {
        let signer = Signer::new(b"server secret");
        let base = Url::parse("http://127.0.0.1:4000/").unwrap();
        let sent_at = DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::days(20_000);
        let new = offer("new+kid@home.example");
        let known = offer("known@home.example");
        let mut outbox = Outbox::default();
        outbox.enqueue(new.clone(), sent_at, false);
        outbox.enqueue(known.clone(), sent_at, true);
        assert_eq!(outbox.len(), 2);
        assert!(
            outbox.rendered().is_empty(),
            "nothing rendered in the request"
        );

        outbox.render(&signer, &base);
        let mails = outbox.rendered();
        assert_eq!(mails.len(), 2);
        assert_eq!(mails[0].to, new.email);
        assert_eq!(mails[0].subject, OFFER_SUBJECT);
        assert_eq!(mails[0].sent_at, sent_at);
        assert_eq!(mails[0].sponsorship_id, new.sponsorship_id);
        let link = Url::parse(&mails[0].link).unwrap();
        assert_eq!(link.path(), "/redeem");
        let q: Vec<(String, String)> = link.query_pairs().into_owned().collect();
        let token = &q[0].1;
        assert_eq!(q[0].0, "token");
        assert_eq!(
            token,
            &signer.offer_token(&OfferClaims::for_offer(&new)),
            "same token as rendering at once"
        );
        assert_eq!(
            signer.verify_offer(token),
            Some(OfferClaims::for_offer(&new))
        );
        assert_eq!(q[1], ("email".to_owned(), new.email.clone()));
        assert_eq!(q[2], ("register".to_owned(), "true".to_owned()));
        let known_link = Url::parse(&mails[1].link).unwrap();
        assert!(
            known_link.query_pairs().all(|(k, _)| k != "register"),
            "a registered recipient signs in"
        );

        // Rendering again changes nothing; new mails come after the old ones.
        outbox.render(&signer, &base);
        assert_eq!(outbox.rendered().len(), 2);
        let third = offer("third@home.example");
        outbox.enqueue(third.clone(), sent_at, false);
        outbox.render(&signer, &base);
        assert_eq!(outbox.rendered()[2].sponsorship_id, third.sponsorship_id);
    }

    #[test]
    fn persists_as_the_list_of_rendered_mails_and_never_drops_queued_ones() {
        let signer = Signer::new(b"k");
        let base = Url::parse("http://127.0.0.1:4000/").unwrap();
        let mut outbox = Outbox::default();
        outbox.enqueue(offer("a@home.example"), Utc::now(), false);
        assert!(
            serde_json::to_string(&outbox).is_err(),
            "queued mails are not silently lost"
        );
        outbox.render(&signer, &base);
        let json = serde_json::to_value(&outbox).unwrap();
        assert_eq!(json, serde_json::to_value(outbox.rendered()).unwrap());
        let back: Outbox = serde_json::from_value(json).unwrap();
        assert_eq!(back.rendered(), outbox.rendered());
        assert_eq!(back.len(), 1);
    }
}
