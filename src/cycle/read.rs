//! What the cycle keeps of a `subscriptions` read: one entry per subscription (a duplicate
//! listed with different data is set aside as malformed), and of each only the public fields,
//! cleaned ([`SeenSubscription`]). Pure functions.

use std::collections::{HashMap, HashSet};

use crate::api::{MalformedEntry, Subscription, SubscriptionList};
use crate::store::SeenSubscription;
use crate::values::SubscriptionId;
use crate::values::text::{REDACTED, clean_text};

/// A subscription the provider lists more than once is not acted on: identical copies are one
/// subscription, differing copies (two expiries for one id) are set aside as malformed, since
/// each would look like a period of its own to the ledger.
pub(super) fn without_duplicates(mut list: SubscriptionList) -> SubscriptionList {
    let mut seen: HashMap<&SubscriptionId, usize> = HashMap::with_capacity(list.subscriptions.len());
    for s in &list.subscriptions {
        *seen.entry(&s.subscription_id).or_default() += 1;
    }
    if seen.len() == list.subscriptions.len() {
        // No id listed twice (the usual case): the list as it is, not copied.
        return list;
    }
    let seen: HashMap<SubscriptionId, usize> = seen.into_iter().map(|(id, n)| (id.clone(), n)).collect();
    let mut kept: Vec<Subscription> = Vec::new();
    let mut conflicting: HashSet<SubscriptionId> = HashSet::new();
    for s in std::mem::take(&mut list.subscriptions) {
        if seen[&s.subscription_id] == 1 {
            kept.push(s);
            continue;
        }
        match kept.iter().find(|k| k.subscription_id == s.subscription_id) {
            Some(k) if k.active_until == s.active_until && k.status == s.status => {}
            Some(_) => {
                conflicting.insert(s.subscription_id.clone());
            }
            None if !conflicting.contains(&s.subscription_id) => kept.push(s),
            None => {}
        }
    }
    for id in &conflicting {
        kept.retain(|k| &k.subscription_id != id);
        list.malformed.push(MalformedEntry {
            index: 0,
            subscription_id: Some(id.clone()),
            reason: format!("listed {} times with different activeUntil or status; not acted on", seen[id]),
        });
    }
    list.subscriptions = kept;
    list
}

/// What the cycle keeps of a subscription it read: the public fields, cleaned of escapes and
/// login-like words; credentials, protocol URLs and rotation are left behind.
pub fn seen(s: &Subscription) -> SeenSubscription {
    use secrecy::ExposeSecret;
    // The subscription's own login, should the provider put it in a label or note.
    let own: Vec<&str> = s
        .credentials
        .iter()
        .flat_map(|c| [c.username.expose_secret(), c.password.expose_secret()])
        .filter(|x| x.len() >= 4)
        .collect();
    let text = |t: &Option<String>| {
        t.as_deref().map(|t| own.iter().fold(clean_text(t), |acc, secret| acc.replace(secret, REDACTED)))
    };
    SeenSubscription {
        subscription_id: s.subscription_id.clone(),
        status: clean_text(&s.status),
        active_until: s.active_until,
        label: text(&s.label),
        network_label: text(&s.network_label),
        user_note: text(&s.user_note),
    }
}
