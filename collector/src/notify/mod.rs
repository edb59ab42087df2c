//! Alertmanager-format notification routing: loading `alertmanager.yml` ([`config`]), the
//! label matchers it uses ([`matcher`]), the routing tree and group keys ([`route`]), and
//! inhibition ([`inhibit`]), silences ([`silence`], shared with the HTTP API together with
//! the dispatcher's alerts in [`alert_store`]), and the notification pipeline ([`dispatch`]:
//! aggregation groups, timers, dedup, retries) with its integrations — webhook ([`webhook`]),
//! Slack ([`slack`]), PagerDuty ([`pagerduty`]), email ([`email`]) — rendered with
//! Alertmanager's notification templates ([`templates`]), and the persistent notification
//! log ([`nflog`]). Alerts can also be forwarded to external Alertmanagers ([`forward`]).
//! `routes_test` prints what `amtool config routes test` prints.
//!
//! Sub-folders group the parts: `config/` (raw YAML shapes, resolution, validation),
//! [`routing`] (matchers, routing tree, inhibition) and [`receivers`] (the integrations and
//! forwarding). Their modules are re-exported here under their old names, so callers write
//! `notify::webhook` or `notify::matcher` and need not know the layout.

pub mod alert;
pub mod alert_store;
pub mod config;
pub mod dispatch;
pub mod nflog;
pub mod receivers;
pub mod routing;
pub mod silence;
pub mod templates;

// The receivers and routing modules keep their old paths (`notify::webhook`, ...).
pub use receivers::{email, forward, pagerduty, slack, webhook};
pub use routing::{inhibit, matcher, route};

pub use alert::Alert;
pub use alert_store::AlertStore;
pub use config::{Config, ConfigError, ValidationError};
pub use dispatch::{
    dispatcher, DispatchError, DispatchOptions, DispatchStats, Dispatcher, DispatcherHandle,
};
pub use inhibit::{is_inhibited, InhibitRule};
pub use matcher::{parse_matcher, parse_matchers, MatchType, Matcher, MatcherError, Matchers};
pub use route::{
    parse_label_arg, routes_show, routes_test, routes_test_command, routes_test_tree,
    verify_receivers, Route, RouteOpts, RoutesTestError,
};
pub use silence::{Silence, SilenceError, SilenceMatcher, SilenceState, Silences};
