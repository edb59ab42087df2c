//! Finds the line and column of a config path (`receivers[5] "x".email_configs[0].subject`)
//! in the YAML text, so validation errors can name the line like parse errors do.
//!
//! It re-reads the text with a probe that walks to the node at the path and fails there;
//! serde_yaml_ng attaches the position of the node being read to that failure. No second
//! YAML parser is needed.

use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::Scalar;

const PROBE: &str = "vigil-locate-probe";

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Splits a validation path into steps. A Go-quoted name after an index
/// (`receivers[5] "email-finance"`) is a label for people and is skipped.
fn parse_path(path: &str) -> Option<Vec<Seg>> {
    let mut segs = Vec::new();
    let mut chars = path.chars().peekable();
    let mut key = String::new();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !key.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut key)));
                }
            }
            '[' => {
                if !key.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut key)));
                }
                let mut n = String::new();
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    n.push(d);
                }
                segs.push(Seg::Index(n.parse().ok()?));
            }
            ' ' => {
                // ` "quoted name"`: skip to the closing quote.
                if chars.next() != Some('"') {
                    return None;
                }
                let mut escaped = false;
                for d in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        break;
                    }
                }
            }
            c => key.push(c),
        }
    }
    if !key.is_empty() {
        segs.push(Seg::Key(key));
    }
    Some(segs)
}

struct Probe<'a>(&'a [Seg]);

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.0.split_first() else {
            return Err(A::Error::custom(PROBE));
        };
        while let Some(k) = map.next_key::<Scalar>()? {
            if matches!(first, Seg::Key(want) if *want == k.0) {
                return map.next_value_seed(Probe(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.0.split_first() else {
            return Err(A::Error::custom(PROBE));
        };
        let Seg::Index(want) = first else {
            return Ok(());
        };
        let mut i = 0;
        loop {
            if i == *want {
                return seq.next_element_seed(Probe(rest)).map(|_| ());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
}

impl Probe<'_> {
    fn leaf<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.0.is_empty() {
            Err(E::custom(PROBE))
        } else {
            Ok(())
        }
    }
}

/// The 1-based line and column of the node at `path`, if the path exists in `text`.
pub(crate) fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let segs = parse_path(path)?;
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match Probe(&segs).deserialize(de) {
        Ok(()) => None,
        Err(e) if e.to_string().contains(PROBE) => e.location().map(|l| (l.line(), l.column())),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "route:
  receiver: a
  routes:
    - matchers: ['x=y']
      group_wait: 1.5s
receivers:
  - name: a
  - {name: b, webhook_configs: [{url: 'nope'}]}
";

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path("receivers[5] \"a.b[1]\\\"\".email_configs[0].subject"),
            Some(vec![
                Seg::Key("receivers".into()),
                Seg::Index(5),
                Seg::Key("email_configs".into()),
                Seg::Index(0),
                Seg::Key("subject".into()),
            ])
        );
    }

    #[test]
    fn finds_block_and_flow_nodes() {
        assert_eq!(
            locate(TEXT, "route.routes[0].group_wait").map(|l| l.0),
            Some(5)
        );
        assert_eq!(
            locate(TEXT, "route.routes[0].matchers[0]").map(|l| l.0),
            Some(4)
        );
        assert_eq!(
            locate(TEXT, "receivers[1] \"b\".webhook_configs[0].url").map(|l| l.0),
            Some(8)
        );
        assert_eq!(locate(TEXT, "receivers[0]").map(|l| l.0), Some(7));
        assert_eq!(locate(TEXT, "route.routes[3]"), None);
        assert_eq!(locate(TEXT, "global"), None);
    }
}
