//! Flag parsing shared by every binary: `--name value`, `--name=value`, and
//! bare `--flag`. Tiny on purpose (no clap: the dependency list is fixed).
//!
//! `--help` prints the usage to stdout and exits 0. A bad flag prints one
//! line saying what was wrong and one line pointing at `--help` (not the
//! whole usage, which would scroll the error away) to stderr, and exits 2.

use std::collections::HashMap;
use std::process;
use std::str::FromStr;
use std::time::Duration;

/// One accepted flag: its name (without `--`), whether it takes a value and
/// its default (shown in usage; `""` = none, or derived as the help says),
/// and a one-line description.
pub struct Flag {
    pub name: &'static str,
    pub value: Option<String>,
    pub help: String,
}

/// A flag with a value and its default.
pub fn opt(name: &'static str, default: impl Into<String>, help: impl Into<String>) -> Flag {
    Flag {
        name,
        value: Some(default.into()),
        help: help.into(),
    }
}

/// The flags of `flags` named in `names` (in `flags`' order): a command
/// that takes some of a node's flags shows that node's defaults and help.
pub fn only(flags: Vec<Flag>, names: &[&str]) -> Vec<Flag> {
    flags
        .into_iter()
        .filter(|f| names.contains(&f.name))
        .collect()
}

/// A flag without a value.
pub fn switch(name: &'static str, help: impl Into<String>) -> Flag {
    Flag {
        name,
        value: None,
        help: help.into(),
    }
}

/// The value of `--name` in `argv` (as `--name V` or `--name=V`), before
/// any parsing: nodes whose defaults derive from one flag (a company's
/// `--listen` from `--name`) read it first, so `--help` shows the real
/// default.
pub fn peek(argv: &[String], name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if *a == flag {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(&flag).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}

pub struct Args {
    program: String,
    usage: String,
    values: HashMap<String, String>,
    switches: Vec<String>,
    /// Arguments that are not flags, in order.
    pub positional: Vec<String>,
}

impl Args {
    /// Parse `std::env::args()` against `flags`; exits on error or `--help`.
    pub fn parse(program: &str, about: &str, flags: &[Flag]) -> Args {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        match Args::parse_from(program, about, flags, &argv) {
            Ok(a) => a,
            Err(ParseExit::Help(u)) => {
                print_usage(&u);
                process::exit(0);
            }
            Err(ParseExit::Bad(msg, _)) => usage_error(program, &msg),
        }
    }

    /// Parse a `frota-ctl` subcommand's arguments. `Err(status)` means
    /// "exit with this": 0 after `--help` (the usage printed), 2 after a bad
    /// flag or a stray argument (one line saying which, one pointing at
    /// `--help`). Every setting is a `--flag`: an argument without `--` is
    /// a mistake (a forgotten `--`, a missing quote), not silently ignored.
    pub fn parse_sub(
        program: &str,
        about: &str,
        flags: &[Flag],
        argv: &[String],
    ) -> Result<Args, i32> {
        let a = Args::parse_sub_with_paths(program, about, flags, argv)?;
        match a.positional.first() {
            None => Ok(a),
            Some(p) => Err(a.bad(&format!(
                "unexpected argument '{p}' (every setting is a --flag)"
            ))),
        }
    }

    /// [`Args::parse_sub`] for a subcommand that also takes arguments
    /// without `--` (files, directories): they are in `positional`.
    pub fn parse_sub_with_paths(
        program: &str,
        about: &str,
        flags: &[Flag],
        argv: &[String],
    ) -> Result<Args, i32> {
        match Args::parse_from(program, about, flags, argv) {
            Ok(a) => Ok(a),
            Err(ParseExit::Help(u)) => {
                print_usage(&format!("{u}{SUB_EXIT}"));
                Err(0)
            }
            Err(ParseExit::Bad(msg, _)) => {
                eprintln!("{}", bad_usage_text(program, &msg));
                Err(2)
            }
        }
    }

    pub fn parse_from(
        program: &str,
        about: &str,
        flags: &[Flag],
        argv: &[String],
    ) -> Result<Args, ParseExit> {
        let usage = usage(program, about, flags);
        let mut values = HashMap::new();
        let mut switches = Vec::new();
        let mut positional = Vec::new();
        let mut defaults = HashMap::new();
        for f in flags {
            if let Some(d) = &f.value {
                if !d.is_empty() {
                    defaults.insert(f.name.to_string(), d.clone());
                }
            }
        }
        let mut it = argv.iter();
        while let Some(arg) = it.next() {
            if arg == "--help" || arg == "-h" {
                return Err(ParseExit::Help(usage));
            }
            let Some(flag) = arg.strip_prefix("--") else {
                positional.push(arg.clone());
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            let Some(spec) = flags.iter().find(|f| f.name == name) else {
                let hint = closest(name, flags.iter().map(|f| f.name))
                    .map(|c| format!(" (did you mean '--{c}'?)"))
                    .unwrap_or_default();
                return Err(ParseExit::Bad(
                    format!("unknown flag '--{name}'{hint}"),
                    usage,
                ));
            };
            match spec.value {
                None => switches.push(name.to_string()),
                Some(_) => {
                    let v = match inline {
                        Some(v) => v,
                        None => match it.next() {
                            Some(v) => v.clone(),
                            None => {
                                return Err(ParseExit::Bad(
                                    format!("flag '--{name}' needs a value"),
                                    usage,
                                ))
                            }
                        },
                    };
                    values.insert(name.to_string(), v);
                }
            }
        }
        for (k, v) in defaults {
            values.entry(k).or_insert(v);
        }
        Ok(Args {
            program: program.to_string(),
            usage,
            values,
            switches,
            positional,
        })
    }

    /// Exit 2 with `msg` and a pointer to `--help`.
    pub fn fail(&self, msg: &str) -> ! {
        usage_error(&self.program, msg)
    }

    /// Print `msg` and a pointer to `--help`; the usage-error status (2),
    /// for a caller that returns it instead of exiting.
    pub fn bad(&self, msg: &str) -> i32 {
        eprintln!("{}", bad_usage_text(&self.program, msg));
        2
    }

    /// The usage text (what `--help` prints).
    pub fn usage(&self) -> &str {
        &self.usage
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The flag's value (or its default); exits if it has neither.
    pub fn string(&self, name: &str) -> String {
        match self.get(name) {
            Some(v) => v.to_string(),
            None => self.fail(&format!("missing required flag '--{name}'")),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// Parse the value as `T`; exits with a clear message if it does not parse.
    pub fn value<T: FromStr>(&self, name: &str) -> T
    where
        T::Err: std::fmt::Display,
    {
        let raw = self.string(name);
        raw.parse()
            .unwrap_or_else(|e| self.fail(&format!("bad value '{raw}' for '--{name}': {e}")))
    }

    /// A duration given in milliseconds (see [`Args::try_millis`]); exits
    /// with a clear message if it is not one.
    pub fn millis(&self, name: &str) -> Duration {
        self.try_millis(name).unwrap_or_else(|e| self.fail(&e))
    }

    /// The flag's value (or its default); `Err` names the missing flag.
    pub fn try_string(&self, name: &str) -> Result<String, String> {
        self.get(name)
            .map(str::to_string)
            .ok_or_else(|| format!("missing required flag '--{name}'"))
    }

    /// The value parsed as `T`; `Err` names the flag and the bad value.
    pub fn try_value<T: FromStr>(&self, name: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        let raw = self.try_string(name)?;
        raw.parse()
            .map_err(|e| format!("bad value '{raw}' for '--{name}': {e}"))
    }

    /// A duration given in milliseconds. A `--*-timeout-ms` or
    /// `--*-interval-ms` of 0 is refused: a socket takes no 0 timeout (the
    /// node failed later, saying "cannot set a 0 duration timeout" about a
    /// peer), and a loop paced by a 0 interval spins.
    pub fn try_millis(&self, name: &str) -> Result<Duration, String> {
        let ms = self.try_value::<u64>(name)?;
        if ms == 0 && (name.ends_with("timeout-ms") || name.ends_with("interval-ms")) {
            return Err(format!("--{name} must be at least 1 (milliseconds)"));
        }
        Ok(Duration::from_millis(ms))
    }

    /// A flag whose empty value means "none".
    pub fn optional(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).map(str::to_string)
    }
}

/// Print a usage text to stdout; a closed pipe (`--help | head`) is not
/// worth a panic.
fn print_usage(u: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{u}");
}

pub enum ParseExit {
    Help(String),
    Bad(String, String),
}

/// `--help` fits a 100-column terminal: longer lines wrap at a word.
const HELP_WIDTH: usize = 100;

/// The column a flag's description starts at.
const HELP_INDENT: usize = 31;

fn usage(program: &str, about: &str, flags: &[Flag]) -> String {
    let mut u = wrap("", &format!("{program} — {about}"), 2);
    u.push_str(&format!("\nUsage: {program} [flags]\n\nFlags:\n"));
    for f in flags {
        let left = match f.value {
            Some(_) => format!("--{} <value>", f.name),
            None => format!("--{}", f.name),
        };
        let default = match &f.value {
            Some(d) if !d.is_empty() => format!(" [default:\u{a0}{}]", d.replace(' ', "\u{a0}")),
            _ => String::new(),
        };
        let head = format!("  {left:<28} ");
        let text = format!("{}{default}", f.help);
        u.push_str(&wrap(&head, &text, HELP_INDENT).replace('\u{a0}', " "));
    }
    u.push_str("  --help                       print this help\n");
    u.push_str(ENVIRONMENT);
    u
}

/// `head` then the words of `text`, as lines of at most [`HELP_WIDTH`]
/// columns broken at spaces (a no-break space holds a default's words
/// together), every line after the first indented by `indent`; each line
/// ends with a newline.
fn wrap(head: &str, text: &str, indent: usize) -> String {
    let mut out = String::new();
    let mut line = head.to_string();
    let mut fresh = true; // nothing of `text` on this line yet
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = line.chars().count();
        if !fresh && len + 1 + word.chars().count() > HELP_WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(indent);
            fresh = true;
        }
        if !fresh {
            line.push(' ');
        }
        line.push_str(word);
        fresh = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The environment every binary reads, for the end of every `--help`.
pub const ENVIRONMENT: &str = "
Environment:
  RUST_LOG=LEVEL      log to stderr at this level: error, warn, info (default), debug, trace;
                      per module too, e.g. RUST_LOG=frota::wire=trace logs every frame
  FROTA_TRACE=DIR     write every frame this process sends and receives to DIR/<node>-<pid>.jsonl;
                      `frota-ctl trace DIR` draws them as a ladder diagram
";

/// The end of a `frota-ctl` subcommand's `--help` (`frota-ctl --help`
/// has the full table; sending one message can also exit 3 and 4).
pub const SUB_EXIT: &str = "
Exit status: 0 when it passed (its last line says so); 1 when it failed, a node it could not
reach included (its last line says what); 2 for a bad command line (nothing was started).
";

/// What a bad command line prints: what was wrong, then where to look.
pub fn bad_usage_text(program: &str, msg: &str) -> String {
    format!("{program}: {msg}\n(run '{program} --help' to see every flag and its default)")
}

/// Print [`bad_usage_text`] to stderr and exit 2 (the usage-error status).
pub fn usage_error(program: &str, msg: &str) -> ! {
    eprintln!("{}", bad_usage_text(program, msg));
    process::exit(2);
}

/// The known name closest to `typed` (a typo of it), if any is close:
/// edit distance at most 2, or one is a prefix of the other.
pub fn closest<'a>(typed: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (edit_distance(typed, k), k))
        .filter(|(d, k)| *d <= 2 || (typed.len() >= 3 && k.starts_with(typed)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (up + 1).min(row[j] + 1).min(diag + usize::from(ca != *cb));
            diag = up;
        }
    }
    row[b.len()]
}

/// Start env_logger at `info` unless RUST_LOG says otherwise.
pub fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .try_init();
}

/// Print `msg` and exit 1: for runtime failures such as a busy port (the
/// message names the thing that failed and what to do about it).
pub fn die(program: &str, msg: impl std::fmt::Display) -> ! {
    eprintln!("{program}: {msg}");
    process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    /// A timeout or interval of 0 is a usage error naming the flag; other
    /// durations (a window, a grace period) may be 0.
    #[test]
    fn a_zero_timeout_or_interval_is_refused() {
        let flags = [
            opt("peer-timeout-ms", "100", "t"),
            opt("sync-interval-ms", "100", "i"),
            opt("pause-grace-ms", "100", "g"),
        ];
        let zero = |f: &str| {
            let a = Args::parse_from("p", "a", &flags, &argv(&[f, "0"]))
                .ok()
                .unwrap();
            a.try_millis(f.trim_start_matches("--"))
        };
        let e = zero("--peer-timeout-ms").unwrap_err();
        assert!(e.contains("--peer-timeout-ms must be at least 1"), "{e}");
        assert!(zero("--sync-interval-ms").is_err());
        assert_eq!(zero("--pause-grace-ms"), Ok(Duration::ZERO));
    }

    #[test]
    fn parses_values_switches_defaults() {
        let flags = [
            opt("listen", "127.0.0.1:7001", "addr"),
            switch("verbose", "v"),
        ];
        let a = Args::parse_from("p", "a", &flags, &argv(&["--verbose", "x"]))
            .ok()
            .unwrap();
        assert_eq!(a.get("listen"), Some("127.0.0.1:7001"));
        assert!(a.has("verbose"));
        assert_eq!(a.positional, vec!["x"]);
        let a = Args::parse_from("p", "a", &flags, &argv(&["--listen=1:2"]))
            .ok()
            .unwrap();
        assert_eq!(a.get("listen"), Some("1:2"));
        assert!(matches!(
            Args::parse_from("p", "a", &flags, &argv(&["--nope"])),
            Err(ParseExit::Bad(..))
        ));
        assert!(matches!(
            Args::parse_from("p", "a", &flags, &argv(&["--listen"])),
            Err(ParseExit::Bad(..))
        ));
    }
}
