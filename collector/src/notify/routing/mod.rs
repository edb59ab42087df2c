//! Which alerts go where: Alertmanager's label matchers ([`matcher`]), the routing tree and
//! its group keys ([`route`]), and inhibition between alerts ([`inhibit`]).

pub mod inhibit;
pub mod matcher;
pub mod route;
