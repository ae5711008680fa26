//! The library's value enums as flag values: one parser ([`of`]) for all of them, from
//! the names and doc comments the library declares ([`ValueText`]), so that `--help`,
//! usage errors ("possible values: …") and shell completions list the values, and a value
//! is read as `config.json` reads it (in any case). clap's derives stay here, in the binary.

use std::ffi::OsStr;
use std::marker::PhantomData;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::error::ErrorKind;
use resnet_cifar::text::{parse_value, ValueText};

/// The parser of a flag that takes a `T`: `#[arg(long, value_parser = values::of::<Arch>())]`.
pub fn of<T: ValueText>() -> Values<T> {
    Values(PhantomData)
}

/// See [`of`].
pub struct Values<T>(PhantomData<fn() -> T>);

impl<T> Clone for Values<T> {
    fn clone(&self) -> Self {
        Values(PhantomData)
    }
}

/// The values of `T` as clap offers them: the name, and the variant's doc comment as help
/// (on one line, without a closing period, as clap's derive writes it).
fn possible<T: ValueText>() -> impl Iterator<Item = PossibleValue> {
    T::VALUES.iter().map(|(_, name, doc)| {
        let help = resnet_cifar::error::one_line(doc);
        let help = help.strip_suffix('.').unwrap_or(&help);
        match help.is_empty() {
            true => PossibleValue::new(*name),
            false => PossibleValue::new(*name).help(help.to_string()),
        }
    })
}

impl<T: ValueText + Send + Sync> TypedValueParser for Values<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<T, clap::Error> {
        match parse_value::<T>(&value.to_string_lossy()) {
            Ok(v) => Ok(v),
            // Not a name in any case: clap's own error, which names the flag and lists the
            // values (its parser cannot accept what ours refused).
            Err(e) => PossibleValuesParser::new(possible::<T>())
                .parse_ref(cmd, arg, value)
                .and(Err(cmd.clone().error(ErrorKind::InvalidValue, e))),
        }
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(possible::<T>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use resnet_cifar::model::{Arch, BlockKind, Layout, Precision, Shortcut};

    /// The names every value enum had as a `clap::ValueEnum` (flags, config.json and
    /// checkpoints were written with them): they must not change.
    #[test]
    fn every_value_keeps_its_name() {
        fn names<T: ValueText>() -> Vec<&'static str> {
            T::names()
        }
        use resnet_cifar::{bench::BenchMode, data::DatasetName, data::Labels, normalize::Normalization};
        use resnet_cifar::{schedule::ScheduleKind, train::graph::CudaGraphs, viz::curves};
        let all = [
            names::<Arch>(),
            names::<BlockKind>(),
            names::<Shortcut>(),
            names::<Precision>(),
            names::<Layout>(),
            names::<Normalization>(),
            names::<CudaGraphs>(),
            names::<DatasetName>(),
            names::<Labels>(),
            names::<ScheduleKind>(),
            names::<curves::XAxis>(),
            names::<curves::Metric>(),
            names::<BenchMode>(),
        ];
        let want: [&[&str]; 13] = [
            &["resnet", "plain", "preact"],
            &["basic", "bottleneck"],
            &["A", "B"],
            &["fp32", "bf16"],
            &["nchw", "channels-last"],
            &["pixel-mean", "channel", "imagenet"],
            &["auto", "on", "off"],
            &["cifar10", "cifar100"],
            &["fine", "coarse"],
            &["scaled", "paper"],
            &["iterations", "epochs"],
            &["error", "loss"],
            &["train", "eval"],
        ];
        for (names, want) in all.iter().zip(want) {
            assert_eq!(names, want);
        }
    }

    #[derive(Debug, Parser)]
    struct Flags {
        #[arg(long, value_parser = of::<Shortcut>(), default_value_t = Shortcut::A)]
        shortcut: Shortcut,
        #[arg(long, value_parser = of::<Arch>(), value_delimiter = ',')]
        arch: Vec<Arch>,
        #[arg(long, value_parser = of::<Layout>())]
        layout: Option<Layout>,
    }

    #[test]
    fn a_flag_reads_names_in_any_case_and_refuses_others_with_the_list() {
        let f = Flags::try_parse_from(["x", "--shortcut", "b", "--arch", "Plain,resnet", "--layout=CHANNELS-LAST"])
            .unwrap();
        assert_eq!(
            (f.shortcut, f.arch, f.layout),
            (Shortcut::B, vec![Arch::Plain, Arch::Resnet], Some(Layout::ChannelsLast))
        );
        assert_eq!(Flags::try_parse_from(["x"]).unwrap().shortcut, Shortcut::A);
        let e = Flags::try_parse_from(["x", "--arch", "vgg"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        let text = e.to_string();
        assert!(text.contains("'vgg'") && text.contains("--arch") && text.contains("resnet, plain, preact"), "{text}");
    }

    #[test]
    fn help_lists_the_values_with_their_doc_comments() {
        let help = Flags::command().render_long_help().to_string();
        assert!(help.contains("channels-last: N×H×W×C strides"), "{help}");
        assert!(help.contains("[default: A]"), "{help}");
        let arch = Flags::command().get_arguments().find(|a| a.get_id() == "arch").unwrap().get_possible_values();
        let names: Vec<&str> = arch.iter().map(PossibleValue::get_name).collect();
        assert_eq!(names, ["resnet", "plain", "preact"]);
    }
}
