//! The keymap: the only place a key press becomes something the app understands. Each
//! [`Command`] has a config name, a description and the screens it works on; the defaults can
//! be overridden per command in the `[keys]` section of the config. The help overlay and the
//! hint bar read this map, so they always show the keys that actually work. Text prompts
//! (filter, note) take characters as input, also translated here.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Result, anyhow, bail};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Where the steward is, which decides what a key means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    Queue,
    Cluster,
    Merges,
    /// A question on screen (run the approved merges?) waiting for its answer.
    Confirm,
}

impl Context {
    pub fn title(self) -> &'static str {
        match self {
            Context::Queue => "Queue",
            Context::Cluster => "Cluster",
            Context::Merges => "Merges",
            Context::Confirm => "Confirm",
        }
    }
}

macro_rules! commands {
    ($( $variant:ident, $name:literal, [$($key:literal),*], [$($ctx:ident),*], $desc:literal; )*) => {
        /// Everything a steward can ask for from the keyboard.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Command { $($variant),* }

        impl Command {
            pub const ALL: &'static [Command] = &[$(Command::$variant),*];

            /// The name used in the `[keys]` config section.
            pub fn name(self) -> &'static str {
                match self { $(Command::$variant => $name),* }
            }

            pub fn description(self) -> &'static str {
                match self { $(Command::$variant => $desc),* }
            }

            fn default_keys(self) -> &'static [&'static str] {
                match self { $(Command::$variant => &[$($key),*]),* }
            }

            pub fn contexts(self) -> &'static [Context] {
                match self { $(Command::$variant => &[$(Context::$ctx),*]),* }
            }
        }
    };
}

commands! {
    Up, "up", ["k", "up"], [Queue, Cluster, Merges], "previous field / row";
    Down, "down", ["j", "down"], [Queue, Cluster, Merges], "next field / row";
    Left, "left", ["h", "left"], [Cluster], "previous record";
    Right, "right", ["l", "right"], [Cluster], "next record";
    PageUp, "page_up", ["pageup"], [Queue, Cluster, Merges], "page up";
    PageDown, "page_down", ["pagedown"], [Queue, Cluster, Merges], "page down";
    Top, "top", ["g", "home"], [Queue, Cluster, Merges], "first row";
    Bottom, "bottom", ["G", "end"], [Queue, Cluster, Merges], "last row";
    Open, "open", ["enter"], [Queue, Merges], "open the cluster";
    TakeValue, "take_value", ["space"], [Cluster], "take this value for the field";
    MakePrimary, "make_primary", ["p"], [Cluster], "make this record the primary";
    Exclude, "exclude", ["x"], [Cluster], "exclude / include this record";
    Approve, "approve", ["a"], [Cluster], "approve the merge";
    Reject, "reject", ["r"], [Cluster], "reject: not duplicates";
    Defer, "defer", ["d"], [Cluster], "defer the decision";
    Next, "next", ["n"], [Cluster], "skip to the next cluster";
    Undo, "undo", ["u"], [Queue, Cluster], "undo the last decision";
    Note, "note", ["N"], [Cluster], "add a note";
    Explain, "explain", ["e"], [Cluster], "why these match (scores)";
    Fold, "fold", ["z"], [Cluster], "hide / show agreeing fields";
    Stack, "stack", ["v", "enter"], [Cluster], "every record's value, stacked";
    TakeRecord, "take_record", ["T"], [Cluster], "take every field from this record";
    TypeValue, "type_value", ["i"], [Cluster], "type the surviving value";
    ClearValue, "clear_value", ["c"], [Cluster], "clear the surviving value";
    Filter, "filter", ["/"], [Queue], "filter as you type: any value, record id, status:NAME";
    Sort, "sort", ["s"], [Queue], "sort by score, size, age";
    Status, "status", ["f"], [Queue], "cycle the status filter";
    Merges, "merges", ["m"], [Queue], "merges view";
    BulkReject, "bulk_reject", ["R"], [Queue], "reject every cluster the filter shows (asks first)";
    BulkDefer, "bulk_defer", ["D"], [Queue], "defer every cluster the filter shows (asks first)";
    Retry, "retry", ["R"], [Merges], "retry the merge job";
    ApplyMerges, "apply", ["A"], [Queue, Merges], "run the approved merges now";
    Lineage, "lineage", ["L"], [Cluster], "where this record's data came from";
    Refresh, "refresh", ["ctrl-r"], [Queue, Merges], "reload from the workspace";
    Confirm, "confirm", ["y"], [Confirm], "yes, do it";
    Cancel, "cancel", ["n", "esc", "q"], [Confirm], "no, not now";
    Help, "help", ["?"], [Queue, Cluster, Merges], "this help";
    Back, "back", ["q", "esc"], [Queue, Cluster, Merges], "back (quit from the queue)";
    Quit, "quit", ["ctrl-c"], [Queue, Cluster, Merges, Confirm], "quit now";
}

impl Command {
    /// Whether the command decides something about what is on screen (a cluster, a value, a
    /// question). Such a key acts only if what it was meant for had been drawn when it was
    /// pressed; typed ahead across a change of screen it is dropped, never replayed onto
    /// something the steward has not seen. Navigation replays.
    pub fn decides(self) -> bool {
        matches!(
            self,
            Command::Approve
                | Command::Reject
                | Command::Defer
                | Command::TakeValue
                | Command::TakeRecord
                | Command::TypeValue
                | Command::ClearValue
                | Command::MakePrimary
                | Command::Exclude
                | Command::Note
                | Command::Confirm
                | Command::Retry
        )
    }
}

/// A key with its modifiers, as written in the config (`a`, `N`, `enter`, `ctrl-r`, `?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    /// Only Ctrl and Alt: Shift is already in the character (`N` is Shift-n).
    pub mods: KeyModifiers,
}

impl Key {
    fn from_event(ev: &KeyEvent) -> Key {
        Key {
            code: ev.code,
            mods: ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT),
        }
    }

    pub fn parse(text: &str) -> Result<Key> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = text;
        loop {
            let lower = rest.to_ascii_lowercase();
            if rest.len() > 1 && lower.starts_with("ctrl-") {
                mods |= KeyModifiers::CONTROL;
                rest = &rest[5..];
            } else if rest.len() > 1 && lower.starts_with("alt-") {
                mods |= KeyModifiers::ALT;
                rest = &rest[4..];
            } else {
                break;
            }
        }
        let code = match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "space" => KeyCode::Char(' '),
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "backspace" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            f if f.len() > 1 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                KeyCode::F(f[1..].parse().unwrap_or(1))
            }
            _ => {
                let mut chars = rest.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if !c.is_control() => {
                        // Ctrl-R arrives as Ctrl + 'r'.
                        if mods.contains(KeyModifiers::CONTROL) {
                            KeyCode::Char(c.to_ascii_lowercase())
                        } else {
                            KeyCode::Char(c)
                        }
                    }
                    _ => bail!("unknown key {text:?}"),
                }
            }
        };
        Ok(Key { code, mods })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("Alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("S-Tab"),
            KeyCode::Backspace => f.write_str("Bksp"),
            KeyCode::Delete => f.write_str("Del"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::F(n) => write!(f, "F{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// What a key press means in a text prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Insert(char),
    Backspace,
    Submit,
    Cancel,
}

/// Command name -> keys, as configured; the keys replace the command's defaults.
pub type KeyOverrides = BTreeMap<String, Vec<String>>;

#[derive(Debug, Clone)]
pub struct Keymap {
    /// Per command, its keys, in the order they are shown.
    bindings: BTreeMap<Command, Vec<Key>>,
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap::new(&KeyOverrides::new()).unwrap_or_else(|_| Keymap {
            bindings: BTreeMap::new(),
        })
    }
}

impl Keymap {
    /// The defaults with `overrides` applied. Unknown command names, unparsable keys and a key
    /// bound to two commands on the same screen are refused, naming the `keys.` entry.
    pub fn new(overrides: &KeyOverrides) -> Result<Keymap> {
        let mut bindings = BTreeMap::new();
        for &cmd in Command::ALL {
            let keys = cmd
                .default_keys()
                .iter()
                .map(|k| Key::parse(k))
                .collect::<Result<Vec<_>>>()?;
            bindings.insert(cmd, keys);
        }
        for (name, keys) in overrides {
            let cmd = Command::ALL
                .iter()
                .copied()
                .find(|c| c.name() == name)
                .ok_or_else(|| {
                    anyhow!(
                        "keys.{name}: unknown command (known: {})",
                        Command::ALL
                            .iter()
                            .map(|c| c.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            let parsed = keys
                .iter()
                .map(|k| Key::parse(k).map_err(|e| anyhow!("keys.{name}: {e}")))
                .collect::<Result<Vec<_>>>()?;
            bindings.insert(cmd, parsed);
        }
        let map = Keymap { bindings };
        map.check_conflicts()?;
        Ok(map)
    }

    fn check_conflicts(&self) -> Result<()> {
        let mut seen: BTreeMap<(Context, String), Command> = BTreeMap::new();
        for (&cmd, keys) in &self.bindings {
            for key in keys {
                for &ctx in cmd.contexts() {
                    if let Some(other) = seen.insert((ctx, key.to_string()), cmd)
                        && other != cmd
                    {
                        bail!(
                            "keys: {key} is bound to both {} and {} on the {} screen",
                            other.name(),
                            cmd.name(),
                            ctx.title().to_lowercase()
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The command a key press means on a screen, if any. Key releases are ignored.
    pub fn command(&self, ctx: Context, ev: &KeyEvent) -> Option<Command> {
        if ev.kind == KeyEventKind::Release {
            return None;
        }
        let key = Key::from_event(ev);
        self.bindings
            .iter()
            .find(|(cmd, keys)| cmd.contexts().contains(&ctx) && keys.contains(&key))
            .map(|(cmd, _)| *cmd)
    }

    /// What a key press means in a text prompt.
    pub fn edit(&self, ev: &KeyEvent) -> Option<Edit> {
        if ev.kind == KeyEventKind::Release {
            return None;
        }
        if ev.modifiers.contains(KeyModifiers::CONTROL) {
            return match ev.code {
                KeyCode::Char('c') => Some(Edit::Cancel),
                _ => None,
            };
        }
        match ev.code {
            KeyCode::Enter => Some(Edit::Submit),
            KeyCode::Esc => Some(Edit::Cancel),
            KeyCode::Backspace => Some(Edit::Backspace),
            KeyCode::Char(c) => Some(Edit::Insert(c)),
            _ => None,
        }
    }

    pub fn keys(&self, cmd: Command) -> &[Key] {
        self.bindings.get(&cmd).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The keys of a command as shown to the steward: `j/↓`.
    pub fn label(&self, cmd: Command) -> String {
        self.keys(cmd)
            .iter()
            .map(Key::to_string)
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Every command of a screen with its keys, for the help overlay.
    pub fn help(&self, ctx: Context) -> Vec<(String, &'static str)> {
        Command::ALL
            .iter()
            .filter(|c| c.contexts().contains(&ctx) && !self.keys(**c).is_empty())
            .map(|c| (self.label(*c), c.description()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn default_keys_follow_the_issue() {
        let km = Keymap::default();
        let c = |ctx, code| km.command(ctx, &press(code, KeyModifiers::NONE));
        assert_eq!(c(Context::Queue, KeyCode::Enter), Some(Command::Open));
        assert_eq!(
            c(Context::Cluster, KeyCode::Char('a')),
            Some(Command::Approve)
        );
        assert_eq!(
            c(Context::Cluster, KeyCode::Char(' ')),
            Some(Command::TakeValue)
        );
        assert_eq!(c(Context::Cluster, KeyCode::Left), Some(Command::Left));
        assert_eq!(c(Context::Queue, KeyCode::Char('a')), None);
        // Shift is part of the character.
        assert_eq!(
            km.command(
                Context::Cluster,
                &press(KeyCode::Char('N'), KeyModifiers::SHIFT)
            ),
            Some(Command::Note)
        );
        assert_eq!(
            km.command(
                Context::Cluster,
                &press(KeyCode::Char('c'), KeyModifiers::CONTROL)
            ),
            Some(Command::Quit)
        );
    }

    #[test]
    fn overrides_replace_defaults_and_bad_ones_are_named() {
        let mut o = KeyOverrides::new();
        o.insert("approve".into(), vec!["y".into(), "ctrl-a".into()]);
        let km = Keymap::new(&o).unwrap();
        assert_eq!(km.label(Command::Approve), "y/Ctrl-a");
        assert_eq!(
            km.command(
                Context::Cluster,
                &press(KeyCode::Char('a'), KeyModifiers::NONE)
            ),
            None
        );

        o.insert("aprove".into(), vec!["y".into()]);
        let err = Keymap::new(&o).unwrap_err().to_string();
        assert!(err.contains("keys.aprove"), "{err}");

        let mut o = KeyOverrides::new();
        o.insert("reject".into(), vec!["a".into()]);
        let err = Keymap::new(&o).unwrap_err().to_string();
        assert!(err.contains("approve") && err.contains("reject"), "{err}");

        let mut o = KeyOverrides::new();
        o.insert("defer".into(), vec!["shift-".into()]);
        assert!(
            Keymap::new(&o)
                .unwrap_err()
                .to_string()
                .contains("keys.defer")
        );
    }
}
