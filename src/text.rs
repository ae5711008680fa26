//! Text for the value enums (architecture, shortcut, precision, layout, normalisation,
//! schedule): `Display`, `FromStr` and serde all spell a value by the name clap knows it
//! by, so flags, `config.json` and checkpoint metadata read alike; parsing ignores case
//! and an unknown value is an error that lists the known ones.

macro_rules! value_enum_text {
    ($t:ty, $what:literal) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(clap::ValueEnum::to_possible_value(self).expect("no variant is skipped").get_name())
            }
        }

        impl std::str::FromStr for $t {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                <$t as clap::ValueEnum>::from_str(s, true).map_err(|_| {
                    let names: Vec<String> =
                        <$t as clap::ValueEnum>::value_variants().iter().map(ToString::to_string).collect();
                    $crate::error::Error::Config(format!("unknown {} `{s}`: use {}", $what, names.join(" or ")))
                })
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

pub(crate) use value_enum_text;

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
