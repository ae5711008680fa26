//! The notation of the README's command table, read as a pattern that a concrete command
//! line matches: placeholders in capitals (`FILE`, `D`, `OUT.csv`: any word; with an
//! extension, a word with that extension), `NAME…` for one or more such words, `FLAGS` or
//! `TRAIN_FLAGS` for one or more words of any kind, `[optional parts]`, and `a|b` choices
//! (`FILE.png|svg` is `FILE.png` or `FILE.svg`). A match says which optional parts and
//! choices it took, so that a row's runs can be checked to take every one of them.

use std::collections::{BTreeMap, BTreeSet};

/// What a match can take: an optional part, or choice `k` of a word with choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Taken {
    Optional(usize),
    Choice(usize, usize),
}

/// One element of a shown command.
#[derive(Debug)]
enum Part {
    /// One word, one of `choices` (literals or placeholders).
    Word { choices: Vec<String>, id: usize },
    /// `NAME…`: one or more words, each matching the placeholder `NAME`.
    Many(String),
    /// `FLAGS`, `TRAIN_FLAGS`: one or more words of any kind.
    Flags,
    /// `[…]`.
    Optional { parts: Vec<Part>, id: usize },
}

/// A shown command, parsed.
#[derive(Debug)]
pub struct Pattern {
    parts: Vec<Part>,
    /// Every optional part and choice, as the README shows it.
    options: BTreeMap<Taken, String>,
}

impl Pattern {
    pub fn parse(shown: &str) -> Result<Pattern, String> {
        let spaced = shown.replace('[', " [ ").replace(']', " ] ");
        let tokens: Vec<&str> = spaced.split_whitespace().collect();
        let mut parser = Parser { tokens: &tokens, at: 0, next_id: 0, options: BTreeMap::new() };
        let parts = parser.sequence()?;
        if parser.at < tokens.len() {
            return Err(format!("`{shown}`: a `]` without its `[`"));
        }
        Ok(Pattern { parts, options: parser.options })
    }

    /// What a match of `words` took, or `None` when they do not match.
    pub fn matches(&self, words: &[&str]) -> Option<BTreeSet<Taken>> {
        let mut taken = Vec::new();
        walk(&self.parts.iter().collect::<Vec<_>>(), words, &mut taken).then(|| taken.into_iter().collect())
    }

    /// The optional parts and choices that `taken` lacks, as the README shows them.
    pub fn untaken(&self, taken: &BTreeSet<Taken>) -> Vec<String> {
        self.options.iter().filter(|(t, _)| !taken.contains(t)).map(|(_, shown)| shown.clone()).collect()
    }
}

struct Parser<'a> {
    tokens: &'a [&'a str],
    at: usize,
    next_id: usize,
    options: BTreeMap<Taken, String>,
}

impl Parser<'_> {
    fn id(&mut self) -> usize {
        self.next_id += 1;
        self.next_id
    }

    /// Parts up to a `]` or the end.
    fn sequence(&mut self) -> Result<Vec<Part>, String> {
        let mut parts = Vec::new();
        while let Some(&token) = self.tokens.get(self.at) {
            if token == "]" {
                break;
            }
            self.at += 1;
            parts.push(if token == "[" { self.optional()? } else { self.word(token)? });
        }
        Ok(parts)
    }

    fn optional(&mut self) -> Result<Part, String> {
        let start = self.at;
        let id = self.id();
        let parts = self.sequence()?;
        if self.tokens.get(self.at) != Some(&"]") || parts.is_empty() {
            return Err(format!("`[{}`: an empty or unclosed `[`", self.tokens[start..].join(" ")));
        }
        self.options.insert(Taken::Optional(id), format!("[{}]", self.tokens[start..self.at].join(" ")));
        self.at += 1;
        Ok(Part::Optional { parts, id })
    }

    fn word(&mut self, token: &str) -> Result<Part, String> {
        if token == "FLAGS" || token.ends_with("_FLAGS") {
            return Ok(Part::Flags);
        }
        if let Some(stem) = token.strip_suffix('…') {
            return match placeholder(stem) {
                true => Ok(Part::Many(stem.to_string())),
                false => Err(format!("`{token}`: only a placeholder (in capitals) repeats with `…`")),
            };
        }
        let mut choices: Vec<String> = token.split('|').map(String::from).collect();
        if choices.iter().any(String::is_empty) {
            return Err(format!("`{token}`: an empty choice"));
        }
        // `FILE.png|svg`: the later choices are extensions of the first's placeholder.
        if let Some((stem, _)) = choices[0].split_once('.').filter(|_| placeholder(&choices[0])) {
            let stem = stem.to_string();
            for c in choices.iter_mut().skip(1).filter(|c| !c.contains('.')) {
                *c = format!("{stem}.{c}");
            }
        }
        let id = self.id();
        if choices.len() > 1 {
            for (k, c) in choices.iter().enumerate() {
                self.options.insert(Taken::Choice(id, k), format!("{c} (of {token})"));
            }
        }
        Ok(Part::Word { choices, id })
    }
}

/// `FILE`, `D`, `RUN_DIR`, `OUT.csv`: capitals, digits and `_`, then an optional extension.
fn placeholder(s: &str) -> bool {
    let (stem, ext) = s.split_once('.').map_or((s, None), |(stem, ext)| (stem, Some(ext)));
    let mut chars = stem.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && ext.is_none_or(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
}

/// Whether `word` fills the literal or placeholder `choice`. A placeholder never stands for
/// a flag.
fn fills(choice: &str, word: &str) -> bool {
    if !placeholder(choice) {
        return choice == word;
    }
    let ext_ok = match choice.split_once('.') {
        Some((_, ext)) => word.strip_suffix(ext).is_some_and(|w| w.len() > 1 && w.ends_with('.')),
        None => true,
    };
    ext_ok && !word.starts_with('-')
}

/// Matches `parts` against all of `words`, backtracking, and records in `taken` what it took.
fn walk(parts: &[&Part], words: &[&str], taken: &mut Vec<Taken>) -> bool {
    let Some((first, rest)) = parts.split_first() else { return words.is_empty() };
    let mark = taken.len();
    let attempt = |taken: &mut Vec<Taken>, took: Option<Taken>, parts: &[&Part], words: &[&str]| {
        taken.truncate(mark);
        taken.extend(took);
        walk(parts, words, taken)
    };
    let found = match first {
        Part::Optional { parts: inner, id } => {
            let with: Vec<&Part> = inner.iter().chain(rest.iter().copied()).collect();
            attempt(taken, Some(Taken::Optional(*id)), &with, words) || attempt(taken, None, rest, words)
        }
        Part::Word { choices, id } => choices.iter().enumerate().any(|(k, c)| {
            let took = (choices.len() > 1).then_some(Taken::Choice(*id, k));
            words.first().is_some_and(|w| fills(c, w)) && attempt(taken, took, rest, &words[1..])
        }),
        Part::Many(stem) => (1..=words.len())
            .take_while(|&n| fills(stem, words[n - 1]))
            .any(|n| attempt(taken, None, rest, &words[n..])),
        Part::Flags => (1..=words.len()).any(|n| attempt(taken, None, rest, &words[n..])),
    };
    if !found {
        taken.truncate(mark);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    /// The `shown` of every option taken when `line` matches `shown`, or `None`.
    fn took(shown: &str, line: &str) -> Option<Vec<String>> {
        let p = Pattern::parse(shown).unwrap();
        let taken = p.matches(&words(line))?;
        Some(p.options.iter().filter(|(t, _)| taken.contains(t)).map(|(_, s)| s.clone()).collect())
    }

    #[test]
    fn placeholders_optional_parts_and_choices() {
        let eval = "resnet-cifar eval --weights FILE [--json] [--confusion FILE.png|svg]";
        assert_eq!(took(eval, "resnet-cifar eval --weights w.safetensors").unwrap(), Vec::<String>::new());
        assert_eq!(
            took(eval, "resnet-cifar eval --weights w --json --confusion c.svg").unwrap(),
            ["[--json]", "[--confusion FILE.png|svg]", "FILE.svg (of FILE.png|svg)"]
        );
        for wrong in [
            "resnet-cifar eval",                               // a required flag missing
            "resnet-cifar eval --weights --json",              // a placeholder is never a flag
            "resnet-cifar eval --weights w --confusion c.jpg", // not one of the extensions
            "resnet-cifar eval --weights w --confusion .png",  // an extension alone
            "resnet-cifar eval --weights w --json --json",     // an optional part once
            "resnet-cifar eval --json --weights w",            // in the order shown
            "resnet-cifar evaluate --weights w",               // a literal as written
        ] {
            assert!(took(eval, wrong).is_none(), "`{wrong}` matched `{eval}`");
        }
        let shells = "resnet-cifar completions bash|zsh|fish";
        assert_eq!(took(shells, "resnet-cifar completions zsh").unwrap(), ["zsh (of bash|zsh|fish)"]);
        assert!(took(shells, "resnet-cifar completions tcsh").is_none());
    }

    #[test]
    fn repeated_placeholders_and_any_flags() {
        let plot = "resnet-cifar plot RUN_DIR… -o FILE.png|svg";
        assert!(took(plot, "resnet-cifar plot a b c -o x.png").is_some());
        assert!(took(plot, "resnet-cifar plot -o x.png").is_none(), "`…` is one or more");
        let train = "resnet-cifar [train] [FLAGS]";
        assert_eq!(took(train, "resnet-cifar --epochs 1 --out runs/x").unwrap(), ["[FLAGS]"]);
        assert_eq!(took(train, "resnet-cifar train").unwrap(), ["[train]"]);
        assert!(took(train, "resnet-cifar").is_some());
        let make = "make tensorboard [LOGDIR=runs]";
        assert!(took(make, "make tensorboard LOGDIR=runs").is_some());
        assert!(took(make, "make tensorboard LOGDIR=elsewhere").is_none(), "`LOGDIR=runs` is a literal");
    }

    #[test]
    fn untaken_names_what_no_run_took() {
        let p = Pattern::parse("resnet-cifar landscape --weights A [--dims 1|2] -o OUT.csv").unwrap();
        let taken = p.matches(&words("resnet-cifar landscape --weights a --dims 2 -o o.csv")).unwrap();
        assert_eq!(p.untaken(&taken), ["1 (of 1|2)"]);
        assert_eq!(p.untaken(&BTreeSet::new()).len(), 3);
    }

    #[test]
    fn malformed_notation_is_refused() {
        for bad in ["a [b", "a b]", "a [] b", "a x… b", "a b|| c"] {
            assert!(Pattern::parse(bad).is_err(), "`{bad}` parsed");
        }
    }
}
