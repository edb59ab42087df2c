//! The integrations a notification is delivered through — webhook ([`webhook`], which also
//! holds the HTTP client, credentials and TLS settings the others share), Slack ([`slack`]),
//! PagerDuty ([`pagerduty`]) and email ([`email`]) — and forwarding alerts to external
//! Alertmanagers ([`forward`]).

pub mod email;
pub mod forward;
pub mod pagerduty;
pub mod slack;
pub mod webhook;
