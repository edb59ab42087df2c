//! Alertmanager-format notification routing: loading `alertmanager.yml` ([`config`]), the
//! label matchers it uses ([`matcher`]), the routing tree and group keys ([`route`]), and
//! inhibition ([`inhibit`]). `routes_test` prints what `amtool config routes test` prints.

pub mod config;
pub mod inhibit;
pub mod matcher;
pub mod route;

pub use config::{Config, ConfigError, ValidationError};
pub use inhibit::{is_inhibited, InhibitRule};
pub use matcher::{parse_matcher, parse_matchers, MatchType, Matcher, MatcherError, Matchers};
pub use route::{parse_label_arg, routes_show, routes_test, routes_test_tree, Route, RouteOpts};
