//! Alertmanager-format notification routing.
