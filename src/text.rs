//! Text for the value enums (architecture, shortcut, precision, layout, normalisation,
//! schedule, …): `value_enum!` declares each with the name of every variant beside it,
//! and `Display`, `FromStr` and serde all spell a variant by that name, so flags,
//! `config.json` and checkpoint metadata read alike; parsing ignores case and an unknown
//! value is an error that lists the known ones. [`ValueText`] lists the variants with
//! their names and documentation, for whoever offers the choice (the binary's flags, their
//! help and shell completions).

use crate::error::{Error, Result};

/// A value enum's variants with their names.
pub trait ValueText: Copy + 'static {
    /// What a value is, for errors: "architecture".
    const WHAT: &'static str;
    /// Every variant, its name and its doc comment (empty where it has none), in the order
    /// they are offered.
    const VALUES: &'static [(Self, &'static str, &'static str)];

    /// The names, in the order of [`Self::VALUES`].
    fn names() -> Vec<&'static str> {
        Self::VALUES.iter().map(|(_, name, _)| *name).collect()
    }
}

/// The variant of `T` named `s`, in any case.
pub fn parse_value<T: ValueText>(s: &str) -> Result<T> {
    T::VALUES
        .iter()
        .find(|(_, name, _)| name.eq_ignore_ascii_case(s))
        .map(|(v, _, _)| *v)
        .ok_or_else(|| Error::UnknownValue { what: T::WHAT, given: s.to_string(), known: T::names() })
}

/// The doc comments among the attributes given, one line each.
macro_rules! doc_text {
    () => { "" };
    (#[doc = $line:literal] $($rest:tt)*) => { concat!($line, "\n", $crate::text::doc_text!($($rest)*)) };
    (#[$($other:tt)*] $($rest:tt)*) => { $crate::text::doc_text!($($rest)*) };
}

/// Declares a value enum with each variant's name, `Variant => "name"`, and what a value
/// is (for errors), after the enum's name:
///
/// ```text
/// value_enum! {
///     /// Residual network or the same stack without shortcuts.
///     #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
///     pub enum Arch: "architecture" {
///         #[default]
///         Resnet => "resnet",
///         Plain => "plain",
///     }
/// }
/// ```
///
/// and implements [`ValueText`], `Display`, `FromStr` and serde by those names.
macro_rules! value_enum {
    (
        $(#[$($enum_attr:tt)*])*
        $vis:vis enum $t:ident: $what:literal {
            $($(#[$($attr:tt)*])* $v:ident => $name:literal),+ $(,)?
        }
    ) => {
        $(#[$($enum_attr)*])*
        $vis enum $t {
            $($(#[$($attr)*])* $v),+
        }

        impl $crate::text::ValueText for $t {
            const WHAT: &'static str = $what;
            const VALUES: &'static [(Self, &'static str, &'static str)] =
                &[$(($t::$v, $name, $crate::text::doc_text!($(#[$($attr)*])*))),+];
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self {
                    $($t::$v => $name),+
                })
            }
        }

        impl std::str::FromStr for $t {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                $crate::text::parse_value(s)
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use {doc_text, value_enum};

/// A text cell of a CSV file that a spreadsheet would read as a formula (it starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return: a model named after a file
/// `=HYPERLINK(…).safetensors`, say) gets a leading `'`, so that it stays text; any other
/// cell is written as it is. For names only: numbers are written by their own formatting.
pub fn csv_text(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::ValueText;

    super::value_enum! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Side: "side" {
            Left => "L",
            /// N×H×W×C strides
            /// ("channels last").
            ChannelsLast => "channels-last",
        }
    }

    #[test]
    fn a_value_is_written_by_its_name_and_read_in_any_case() {
        assert_eq!(Side::names(), ["L", "channels-last"]);
        assert_eq!(Side::VALUES[0].2, "");
        assert_eq!(Side::VALUES[1].2, " N×H×W×C strides\n (\"channels last\").\n");
        assert_eq!((Side::Left.to_string(), Side::ChannelsLast.to_string()), ("L".into(), "channels-last".into()));
        for (text, want) in [("L", Side::Left), ("l", Side::Left), ("Channels-Last", Side::ChannelsLast)] {
            assert_eq!(text.parse::<Side>().unwrap(), want);
        }
        assert_eq!(serde_json::to_string(&Side::ChannelsLast).unwrap(), "\"channels-last\"");
        assert_eq!(serde_json::from_str::<Side>("\"l\"").unwrap(), Side::Left);
        let e = "channels_last".parse::<Side>().unwrap_err();
        assert!(matches!(&e, crate::error::Error::UnknownValue { what: "side", .. }), "{e:?}");
        assert_eq!(e.to_string(), "unknown side `channels_last`: use L or channels-last");
    }

    #[test]
    fn a_name_a_spreadsheet_would_compute_stays_text() {
        for bad in ["=1+2", "+1", "-2+3", "@SUM(A1)", "=HYPERLINK(\"http://x\")", "\t=1"] {
            assert_eq!(super::csv_text(bad), format!("'{bad}"));
        }
        for fine in ["resnet-20", "best", "/runs/a=b", "1e-3", ""] {
            assert_eq!(super::csv_text(fine), fine);
        }
    }
}
