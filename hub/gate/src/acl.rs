//! Who may publish and subscribe where on the bus: the rules of `docs/mqtt-api.md`, "Who may do
//! what", in code. The front door asks these for every PUBLISH, SUBSCRIBE and last will; rumqttd
//! itself authorizes nothing.
//!
//! Rules are MQTT topic filters with the login's bank and kiosk ids filled in (as Mosquitto's and
//! EMQX's `%u`/`%c` patterns are). A subscription is allowed only when every topic it could ever
//! match is readable, so `#`, `lockerhub/#` or `lockerhub/v1/bank/+/+` are refused for everyone
//! but the hub, however they are spelled.

use locker_bus::{BankTopics, ALERTS, ROOT};

/// Topics of the hub's end-to-end health probe (publish and read by the probe login only).
pub const PROBE_PREFIX: &str = "lockerhub/v1/hub/probe";

/// What a login is for. Every client of the front door has exactly one. (The hub's own client
/// logs in at rumqttd's internal listener and has every right.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// A bank's controller, or the hub's in-process driver of a bank: its own bank's controller
    /// topics only.
    Bank { bank: String },
    /// A kiosk of one bank: that bank's kiosk requests, and its own replies.
    Kiosk { bank: String, kiosk: String },
    /// A read-only staff tool, and anonymous clients where the site allows them: bank state,
    /// status, door observations, sensor readings and alerts. Never a kiosk request or a reply.
    Observer,
    /// The hub's own end-to-end probe through a public listener.
    Probe,
}

impl Role {
    /// Short name for logs and `/healthz`.
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Bank { .. } => "bank",
            Role::Kiosk { .. } => "kiosk",
            Role::Observer => "observer",
            Role::Probe => "probe",
        }
    }

    /// Filters this role may publish to (the topic must match one).
    pub fn publish_rules(&self) -> Vec<String> {
        match self {
            Role::Bank { bank } => {
                let t = BankTopics::new(bank);
                vec![
                    t.status(),
                    format!("{ROOT}/bank/{bank}/door/+"),
                    t.ack(),
                    format!("{ROOT}/bank/{bank}/unit/+/sensor/+"),
                ]
            }
            Role::Kiosk { bank, .. } => vec![BankTopics::new(bank).kiosk_request()],
            Role::Observer => Vec::new(),
            Role::Probe => vec![format!("{PROBE_PREFIX}/#")],
        }
    }

    /// Filters this role may subscribe within (a subscription must lie inside one).
    pub fn subscribe_rules(&self) -> Vec<String> {
        match self {
            Role::Bank { bank } => {
                let t = BankTopics::new(bank);
                vec![t.command(), t.state()]
            }
            Role::Kiosk { bank, kiosk } => {
                let t = BankTopics::new(bank);
                vec![
                    self::kiosk_replies(bank, kiosk),
                    t.kiosk_update(),
                    t.state(),
                ]
            }
            Role::Observer => vec![
                format!("{ROOT}/bank/+/state"),
                format!("{ROOT}/bank/+/status"),
                format!("{ROOT}/bank/+/door/+"),
                format!("{ROOT}/bank/+/unit/+/sensor/+"),
                ALERTS.to_owned(),
            ],
            Role::Probe => vec![format!("{PROBE_PREFIX}/#")],
        }
    }

    /// This role's rules, made once per connection (the front door checks every packet).
    pub fn rights(&self) -> Rights {
        Rights {
            publish: self.publish_rules(),
            subscribe: self.subscribe_rules(),
            replies: match self {
                Role::Kiosk { bank, kiosk } => Some(kiosk_replies(bank, kiosk)),
                _ => None,
            },
        }
    }
}

/// A role's rules as topic filters.
#[derive(Debug, Clone)]
pub struct Rights {
    publish: Vec<String>,
    subscribe: Vec<String>,
    /// A kiosk's own reply topics.
    replies: Option<String>,
}

impl Rights {
    /// May this login publish to `topic` (a topic name, no wildcards)?
    pub fn may_publish(&self, topic: &str) -> bool {
        valid_topic(topic) && self.publish.iter().any(|r| covers(r, topic))
    }

    /// May this login subscribe to `filter`?
    pub fn may_subscribe(&self, filter: &str) -> bool {
        valid_filter(filter) && self.subscribe.iter().any(|r| covers(r, filter))
    }

    /// Does this login send requests to the hub (a kiosk)? Its requests then name only its own
    /// reply topics and are rate-limited.
    pub fn sends_requests(&self) -> bool {
        self.replies.is_some()
    }

    /// May a request of this login ask for its reply on `topic` (`reply_to` or the MQTT 5
    /// Response Topic)? Only a kiosk sends requests, and only to its own reply topics.
    pub fn may_be_replied_at(&self, topic: &str) -> bool {
        self.replies
            .as_ref()
            .is_some_and(|r| valid_topic(topic) && covers(r, topic))
    }
}

/// The reply topics of one kiosk: `…/bank/{bank}/kiosk/reply/{kiosk}` and below it.
fn kiosk_replies(bank: &str, kiosk: &str) -> String {
    format!("{}{kiosk}/#", BankTopics::new(bank).kiosk_reply_prefix())
}

/// A topic name a client may publish to: non-empty, no wildcards, no NUL, not a `$` topic.
pub fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && !topic.starts_with('$')
        && !topic.contains(['+', '#', '\0'])
        && topic.len() <= 1024
}

/// A well-formed subscription filter (MQTT 4.7.1): `#` only last and alone in its level, `+`
/// alone in its level; no `$` topics and no shared subscriptions.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.starts_with('$') || filter.contains('\0') || filter.len() > 1024
    {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, level)| match *level {
        "#" => i == levels.len() - 1,
        "+" => true,
        l => !l.contains(['+', '#']),
    })
}

/// Does `rule` match every topic that `filter` matches? (`filter` may be a plain topic.) Both
/// must be well-formed filters.
pub fn covers(rule: &str, filter: &str) -> bool {
    let mut r = rule.split('/');
    let mut f = filter.split('/');
    loop {
        match (r.next(), f.next()) {
            // `a/#` matches `a` itself and everything below it.
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) => {
                if level == "#" {
                    return false;
                }
            }
            (Some(want), Some(level)) => {
                if level == "+" || level == "#" || want != level {
                    return false;
                }
            }
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank(b: &str) -> Role {
        Role::Bank { bank: b.into() }
    }

    #[test]
    fn covers_is_filter_inclusion() {
        assert!(covers("a/+/c", "a/b/c"));
        assert!(covers("a/+/c", "a/+/c"));
        assert!(!covers("a/+/c", "a/#"));
        assert!(!covers("a/+/c", "a/b/c/d"));
        assert!(!covers("a/+/c", "a/b"));
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/b/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(!covers("a/b", "#"));
        assert!(!covers("a/b", "+/b"));
    }

    #[test]
    fn a_bank_touches_only_its_own_controller_topics() {
        let a = bank("A").rights();
        assert!(a.may_publish("lockerhub/v1/bank/A/status"));
        assert!(a.may_publish("lockerhub/v1/bank/A/door/7"));
        assert!(a.may_publish("lockerhub/v1/bank/A/ack"));
        assert!(a.may_publish("lockerhub/v1/bank/A/unit/fridge/sensor/t1"));
        for topic in [
            "lockerhub/v1/bank/B/status",
            "lockerhub/v1/bank/B/door/7",
            "lockerhub/v1/bank/B/cmd",
            "lockerhub/v1/bank/A/cmd",
            "lockerhub/v1/bank/A/state",
            "lockerhub/v1/bank/A/kiosk/request",
            "lockerhub/v1/site/alerts",
            "lockerhub/v1/bank/A/door/+",
            "lockerhub/v1/bank/A/door/#",
            "$SYS/x",
        ] {
            assert!(!a.may_publish(topic), "{topic}");
        }
        assert!(a.may_subscribe("lockerhub/v1/bank/A/cmd"));
        assert!(a.may_subscribe("lockerhub/v1/bank/A/state"));
        for filter in [
            "#",
            "lockerhub/#",
            "lockerhub/v1/bank/+/cmd",
            "lockerhub/v1/bank/A/#",
            "lockerhub/v1/bank/A/+",
            "lockerhub/v1/bank/A/kiosk/request",
            "lockerhub/v1/bank/B/cmd",
            "$share/g/lockerhub/v1/bank/A/cmd",
            "lockerhub/v1/bank/A/cmd/#",
        ] {
            assert!(!a.may_subscribe(filter), "{filter}");
        }
    }

    #[test]
    fn a_kiosk_reads_only_its_own_replies_and_never_requests() {
        let k = Role::Kiosk {
            bank: "A".into(),
            kiosk: "k1".into(),
        }
        .rights();
        assert!(k.may_publish("lockerhub/v1/bank/A/kiosk/request"));
        assert!(!k.may_publish("lockerhub/v1/bank/B/kiosk/request"));
        assert!(!k.may_publish("lockerhub/v1/bank/A/cmd"));
        assert!(!k.may_publish("lockerhub/v1/bank/A/door/1"));
        assert!(k.may_subscribe("lockerhub/v1/bank/A/kiosk/reply/k1"));
        assert!(k.may_subscribe("lockerhub/v1/bank/A/kiosk/reply/k1/#"));
        assert!(k.may_subscribe("lockerhub/v1/bank/A/kiosk/update"));
        assert!(!k.may_subscribe("lockerhub/v1/bank/A/kiosk/reply/k2"));
        assert!(!k.may_subscribe("lockerhub/v1/bank/A/kiosk/reply/+"));
        assert!(!k.may_subscribe("lockerhub/v1/bank/A/kiosk/request"));
        assert!(!k.may_subscribe("lockerhub/v1/bank/A/kiosk/#"));
        assert!(k.may_be_replied_at("lockerhub/v1/bank/A/kiosk/reply/k1"));
        assert!(!k.may_be_replied_at("lockerhub/v1/bank/A/kiosk/reply/k2"));
        assert!(!k.may_be_replied_at("lockerhub/v1/bank/A/cmd"));
        assert!(!k.may_be_replied_at("elsewhere/reply"));
    }

    #[test]
    fn observers_read_state_and_alerts_but_no_secrets_and_write_nothing() {
        let o = Role::Observer.rights();
        for filter in [
            "lockerhub/v1/bank/+/state",
            "lockerhub/v1/bank/A/state",
            "lockerhub/v1/site/alerts",
            "lockerhub/v1/bank/+/door/+",
        ] {
            assert!(o.may_subscribe(filter), "{filter}");
        }
        for filter in [
            "#",
            "+/#",
            "lockerhub/#",
            "lockerhub/v1/#",
            "lockerhub/v1/bank/+/kiosk/request",
            "lockerhub/v1/bank/+/kiosk/#",
            "lockerhub/v1/bank/+/+",
            "lockerhub/v1/bank/A/kiosk/reply/k1",
            "lockerhub/v1/bank/+/cmd",
        ] {
            assert!(!o.may_subscribe(filter), "{filter}");
        }
        assert!(!o.may_publish("lockerhub/v1/bank/A/status"));
        assert!(!o.may_publish("lockerhub/v1/bank/A/kiosk/request"));
    }

    #[test]
    fn malformed_filters_are_refused() {
        for filter in ["", "a/#/b", "a/b#", "a/+b", "$SYS/#", "$share/g/a", "a\0b"] {
            assert!(!valid_filter(filter), "{filter:?}");
            assert!(!Role::Observer.rights().may_subscribe(filter), "{filter:?}");
        }
    }
}
